//! Shipped configurations are valid, and the reference configuration documents every key.

mod common;

use lapicque::config::Config;
use std::collections::BTreeSet;

/// Dotted key paths of a TOML table, with population and projection names replaced by `*`.
fn keys(table: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
    for (k, v) in table {
        let k = if prefix == "population" || prefix == "projection" {
            "*"
        } else {
            k.as_str()
        };
        let path = if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => keys(t, &path, out),
            _ => {
                out.insert(path);
            }
        }
    }
}

#[test]
fn every_shipped_config_validates() {
    let mut n = 0;
    for entry in std::fs::read_dir(common::repo().join("configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            Config::from_toml(&text, &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let o = std::process::Command::new(common::binary())
                .arg("check")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            n += 1;
        }
    }
    assert!(
        n >= 3,
        "expected brunel, smoke and reference configs, found {n}"
    );
}

#[test]
fn reference_config_documents_every_key() {
    let text = std::fs::read_to_string(common::repo().join("configs/reference.toml")).unwrap();
    // Keys shown commented out (those without a default or mutually exclusive) count as
    // documented.
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(k, _)| {
                    k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                }) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut documented = BTreeSet::new();
    keys(
        &uncommented.parse::<toml::Table>().unwrap(),
        "",
        &mut documented,
    );

    // Every key the program knows appears in the resolved configuration (defaults filled in),
    // except optional keys without a default; add those by setting them.
    let config = Config::from_toml(
        &text,
        &[
            "observables.rates.stop=1000".into(),
            "observables.moments.stop=1000".into(),
            "observables.histogram.stop=1000".into(),
            "observables.balance.stop=1000".into(),
            "observables.statistics.stop=1000".into(),
            "observables.statistics.start=0".into(),
            "observables.statistics.fano_window=10".into(),
            "observables.snapshots.stop=1000".into(),
            "observables.record.stop=1000".into(),
            "observables.record.neurons.E=[0,1,2]".into(),
            "population.E.record_spikes=100".into(),
            "population.E.diffusion=0.5".into(),
            "meanfield.v_min=-40".into(),
            "meanfield.v_max=40".into(),
            // Sampled trees and pair histogram (exact by default: not written then).
            "observables.tree.example.sample=0.5".into(),
            "observables.tree.example.replicates=5".into(),
            "observables.pair_histogram.sample=0.5".into(),
            "observables.pair_histogram.replicates=5".into(),
        ],
    )
    .unwrap();
    let mut known = BTreeSet::new();
    keys(
        &config.resolved_toml().parse::<toml::Table>().unwrap(),
        "",
        &mut known,
    );
    known.insert("projection.*.p".into());
    known.insert("projection.*.indegree".into());
    let undocumented: Vec<_> = known.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "keys missing from configs/reference.toml: {undocumented:?}"
    );
    let unknown: Vec<_> = documented.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "configs/reference.toml documents keys that do not exist: {unknown:?}"
    );
}

/// `check --resolved` prints a configuration that applies the overrides and, read back,
/// describes the same network.
#[test]
fn check_resolved_prints_a_config_that_reads_back() {
    let smoke = common::repo().join("configs/smoke.toml");
    let o = std::process::Command::new(common::binary())
        .arg("check")
        .arg(&smoke)
        .args(["--set", "population.E.size=123", "--resolved"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let printed = String::from_utf8(o.stdout).unwrap();
    let again = Config::from_toml(&printed, &[]).unwrap();
    assert_eq!(again.populations[0].size, 123);
    let direct = Config::from_toml(
        &std::fs::read_to_string(&smoke).unwrap(),
        &["population.E.size=123".into()],
    )
    .unwrap();
    assert_eq!(again.resolved_toml(), direct.resolved_toml());
}

/// `check` describes each population by its own model (drift, spike rule, noise, synapses,
/// labels) and lists the aggregate terms, whatever the model: it once called every population
/// "lif" and reported a network coupled only through aggregate terms as having no coupling.
#[test]
fn check_describes_each_model_and_the_aggregate_terms() {
    let check = |name: &str| {
        let o = std::process::Command::new(common::binary())
            .arg("check")
            .arg(common::repo().join(format!("configs/{name}.toml")))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let labels = check("multi_agent_labels");
    for want in [
        "threshold spikes at v_th 20 mV",
        "labels: 2 classes, efficacies [0.2, 1.0], rates depend on potential, environment lognormal (mean 1.000000, sd 0.500000), redrawn at 1 Hz",
        "E_drive    E -> E: chemical",
        "times the source's efficacy",
        "EE_spikes  E -> E: jump",
        "projections: none",
        "plus coupling through 5 aggregate terms",
    ] {
        assert!(labels.contains(want), "{want:?} not in\n{labels}");
    }
    let strong = check("strong_coupling");
    assert!(strong.contains("fhn: a 0.7, b 0.8"), "{strong}");
    assert!(strong.contains("no reset"), "{strong}");
    assert!(strong.contains("EE_gap     E -> E: electrical"), "{strong}");
    assert!(!strong.contains("lif:"), "{strong}");
    let balanced = check("balanced_kinetic");
    assert!(
        balanced.contains("escape spikes { kind = \"sigmoid\""),
        "{balanced}"
    );
    assert!(balanced.contains("sqrt noise"), "{balanced}");
    assert!(balanced.contains("20 coordinate bins"), "{balanced}");
    let brunel = check("brunel");
    assert!(
        brunel.contains("Poisson drive 20000 Hz x 0.1 mV"),
        "{brunel}"
    );
    assert!(brunel.contains("expected synapses: 15625000\n"), "{brunel}");
}

/// A run shortened with `--set simulation.t_stop=50` (the README's workflow) is accepted for
/// every shipped configuration: windows reaching past the end are cut there and windows
/// starting after it sample nothing, each with one warning line naming the key; defaults
/// (the statistics window, the Fano window) adapt to the run; a window that ends before it
/// starts is still refused.
#[test]
fn shortened_runs_cut_windows_with_a_warning() {
    let check = |config: &std::path::Path, sets: &[&str]| {
        let mut cmd = std::process::Command::new(common::binary());
        cmd.arg("check").arg(config);
        for s in sets {
            cmd.args(["--set", s]);
        }
        cmd.output().unwrap()
    };
    for entry in std::fs::read_dir(common::repo().join("configs")).unwrap() {
        let path = entry.unwrap().path();
        let o = check(&path, &["simulation.t_stop=50"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{}: {err}", path.display());
        assert!(
            err.lines()
                .all(|l| l.starts_with("lapicque: warning: observables.")),
            "{}: {err}",
            path.display()
        );
    }
    let escape = common::repo().join("configs/nonexchangeable_escape.toml");
    let o = check(&escape, &["simulation.t_stop=50"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "observables.statistics.start = 200 ms lies after simulation.t_stop = 50 ms: nothing is sampled"
        ),
        "{err}"
    );
    let reference = common::repo().join("configs/reference.toml");
    let err =
        String::from_utf8_lossy(&check(&reference, &["simulation.t_stop=50"]).stderr).into_owned();
    assert!(
        err.contains("observables.tree.example.stop = 1000 ms lies after simulation.t_stop = 50 ms: cut there"),
        "{err}"
    );
    // Defaults adapt: no warning, and the Fano window follows a long rate bin.
    let smoke = common::repo().join("configs/smoke.toml");
    let text = std::fs::read_to_string(&smoke).unwrap();
    for (sets, start, fano) in [
        (vec!["simulation.t_stop=50"], 25.0, 10.0),
        (
            vec!["observables.rates.every=1000", "simulation.t_stop=3000"],
            200.0,
            1000.0,
        ),
        (vec!["observables.rates.every=3"], 100.0, 12.0),
    ] {
        let o: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let c = Config::from_toml(&text, &o).unwrap();
        assert!(c.warnings.is_empty(), "{sets:?}: {:?}", c.warnings);
        assert_eq!(c.statistics.start as f64 * c.dt, start, "{sets:?}");
        assert_eq!(
            (c.statistics.fano_bins * c.rates.every) as f64 * c.dt,
            fano,
            "{sets:?}"
        );
    }
    // `check` shows the observables as they will be taken.
    let o = check(
        &smoke,
        &["simulation.t_stop=50", "observables.record.neurons.E=[0,3]"],
    );
    let described = String::from_utf8_lossy(&o.stdout);
    for want in [
        "rates       1 ms bins from 0 to 50 ms",
        "histograms  80 bins on [-20, 20) mV, every 10 ms from 0 to 50 ms",
        "statistics  window [25, 50] ms, Fano window 10 ms",
        "record      v of E 2 neuron(s), every 1 ms from 0 to 50 ms",
    ] {
        assert!(described.contains(want), "{want:?} not in\n{described}");
    }
    let o = check(
        &smoke,
        &[
            "observables.moments.start=30",
            "observables.moments.stop=20",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("observables.moments.stop = 20: must not lie before start"),
        "{err}"
    );
}

/// Named parameters: `"= ..."` values are evaluated with `[parameters]` before the
/// configuration is read, so a sweep is one `--set parameters.g=...`; the resolved
/// configuration holds the numbers (a whole number as an integer, as an in-degree must be);
/// an unknown name, a misspelt `--set parameters.x` or a non-finite result is one line naming
/// the key.
#[test]
fn named_parameters_and_expressions_resolve_to_numbers() {
    let text = "[parameters]\ng = 5\nJ = 0.1\nK = 40\n\
                [population.E]\nsize = 100\n[population.I]\nsize = 25\n\
                [projection.IE]\nsource = \"I\"\ntarget = \"E\"\nrule = \"fixed_indegree\"\n\
                indegree = \"= K / 4\"\nweight = \"= -g * J\"\ndelay = \"= 15 * 0.1\"\n";
    let c = Config::from_toml(text, &[]).unwrap();
    let p = &c.projections[0];
    assert_eq!(p.weight, -5.0 * 0.1);
    assert_eq!(p.delay_steps, 15);
    assert!(matches!(
        p.rule,
        lapicque::config::ConnRule::FixedIndegree { indegree: 10, .. }
    ));
    let swept = Config::from_toml(text, &["parameters.g=4".into()]).unwrap();
    assert_eq!(swept.projections[0].weight, -4.0 * 0.1);
    let resolved = swept.resolved_toml();
    assert!(resolved.contains("weight = -0.4"), "{resolved}");
    assert!(resolved.contains("indegree = 10"), "{resolved}");
    let again = Config::from_toml(&resolved, &[]).unwrap();
    assert_eq!(again.projections[0].weight, swept.projections[0].weight);
    let err = |sets: &[&str], text: &str| {
        let o: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Config::from_toml(text, &o).unwrap_err().to_string()
    };
    let e = err(&["parameters.G=4"], text);
    assert!(e.contains("no parameter \"G\" (it has: J, K, g)"), "{e}");
    let e = err(&[], &text.replace("-g * J", "-h * J"));
    assert!(
        e.contains("projection.IE.weight = \"= -h * J\": h is not a parameter"),
        "{e}"
    );
    let e = err(&["parameters.J=0"], &text.replace("-g * J", "-g / J"));
    assert!(
        e.contains("projection.IE.weight") && e.contains("not a finite number"),
        "{e}"
    );
}

/// `check --ranks P` prints the estimate `lapicque run` checks before it builds: its largest
/// part for Brunel is the E -> E table, 10,000 targets x 1,000 synapses x 2 bytes (at most
/// 65,536 neurons per rank) over the ranks, plus its source index (24 bytes per 64 sources and
/// 2 per source present: 0.02 MiB on one rank).
#[test]
fn check_prints_the_memory_estimate_of_a_rank() {
    let brunel = common::repo().join("configs/brunel.toml");
    let estimate = |ranks: &str| {
        let o = std::process::Command::new(common::binary())
            .arg("check")
            .arg(&brunel)
            .args(["--ranks", ranks])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8(o.stdout).unwrap();
        let line = out
            .lines()
            .find(|l| l.starts_with("memory estimate on "))
            .unwrap_or_else(|| panic!("no estimate in {out}"))
            .to_string();
        line
    };
    let mib = |bytes: f64| format!("{:.1} MiB", bytes / 1048576.0);
    let one = estimate("1");
    let table = 2.0 * 10_000.0 * 1_000.0;
    assert!(
        one.contains(&format!(
            "(most: projection.EE.indegree = 1000, {})",
            mib(table + 10_000.0 * (24.0 / 64.0 + 2.0))
        )),
        "{one}"
    );
    let four = estimate("4");
    assert!(four.starts_with("memory estimate on 4 rank(s): "), "{four}");
    assert!(
        four.contains(&format!(
            "projection.EE.indegree = 1000, {}",
            mib(table / 4.0 + 10_000.0 * (24.0 / 64.0 + 2.0))
        )),
        "{four}"
    );
}
