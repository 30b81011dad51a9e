//! `lapicque inspect`: a readable summary of an output file.

use crate::h5::{num, text};
use crate::observables::{moments, rates, spikes, statistics};
use crate::output::{Kind, POPULATIONS, TIMERS};
use crate::Error;
use hdf5::File;
use std::fmt::Write as _;
use std::path::Path;

/// Mean over neurons with at least three spikes of the coefficient of variation of their
/// inter-spike intervals; spikes sorted by node id, then time.
pub fn mean_cv(node_ids: &[u64], times: &[f64]) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    let mut i = 0;
    while i < node_ids.len() {
        let j = i + node_ids[i..].partition_point(|&x| x == node_ids[i]);
        if j - i >= 3 {
            let isi: Vec<f64> = times[i..j].windows(2).map(|w| w[1] - w[0]).collect();
            let m = isi.iter().sum::<f64>() / isi.len() as f64;
            let var = isi.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (isi.len() - 1) as f64;
            sum += var.sqrt() / m;
            n += 1;
        }
        i = j;
    }
    (n > 0).then(|| sum / n as f64)
}

pub fn inspect(path: &Path) -> Result<String, Error> {
    let mut out = String::new();
    let refuse = |reason: String| Error::Argument {
        key: "FILE".into(),
        value: path.display().to_string(),
        reason,
    };
    let f = File::open(path).map_err(|e| {
        refuse(format!(
            "cannot be opened as HDF5: {}",
            e.to_string().replace('\n', " ")
        ))
    })?;
    let kind = match Kind::of(&f) {
        Some(kind) => kind,
        None if text(&f, "format").as_deref() == Some("lapicque-checkpoint") => {
            return Err(refuse(format!(
                "is a lapicque checkpoint (step {}), not an output; continue it with `lapicque run CONFIG --restart FILE`",
                num::<u64>(&f, "step").unwrap_or(0)
            )))
        }
        None => {
            return Err(refuse(
                "is not a lapicque output (its root attribute format is not \"lapicque\")".into(),
            ))
        }
    };
    let status = text(&f, "status")
        .unwrap_or_else(|| "INCOMPLETE (no status: the writer did not finish)".into());
    let t_stop: f64 = num(&f, "t_stop").unwrap_or(f64::NAN);
    let _ = writeln!(out, "{}: {status}", path.display());
    let writer = format!(
        "lapicque {} ({})",
        text(&f, "lapicque_version").unwrap_or_default(),
        text(&f, "git_commit").unwrap_or_default()
    );
    let n_neurons = num::<u64>(&f, "n_neurons").unwrap_or(0);
    let dt = num::<f64>(&f, "dt").unwrap_or(f64::NAN);
    match kind {
        Kind::Run => {
            let _ = writeln!(
                out,
                "{writer}, {} rank(s), seed {}, {} -> {}, {:.2} s wall",
                num::<u64>(&f, "n_ranks").unwrap_or(0),
                num::<u64>(&f, "seed").unwrap_or(0),
                text(&f, "started").unwrap_or_default(),
                text(&f, "finished").unwrap_or_default(),
                num::<f64>(&f, "wall_time").unwrap_or(f64::NAN),
            );
            let _ = writeln!(
                out,
                "network: {n_neurons} neurons, {} synapses; {t_stop} ms at dt = {dt} ms",
                num::<u64>(&f, "n_synapses").unwrap_or(0),
            );
        }
        Kind::Meanfield => {
            let mf = f.group(crate::meanfield::run::GROUP).ok();
            let solver = mf
                .as_ref()
                .and_then(|g| text(g, "solver"))
                .unwrap_or_default();
            let converged = mf.as_ref().and_then(|g| num::<u8>(g, "converged")) == Some(1);
            let _ = writeln!(
                out,
                "{writer}: the mean-field limit (solver {solver}; stationary state {})",
                if converged {
                    "converged"
                } else {
                    "not converged"
                }
            );
            let _ = writeln!(
                out,
                "limit of a network of {n_neurons} neurons; {t_stop} ms at dt = {dt} ms"
            );
        }
    }
    let _ = writeln!(
        out,
        "{:<12} {:>9} {:>10} {:>10} {:>8} {:>7} {:>7} {:>12} {:>9}",
        "population",
        "size",
        "spikes",
        "rate [Hz]",
        "CV(ISI)",
        "Fano",
        "chi",
        "<V> end [mV]",
        "sd V [mV]"
    );
    let pops = f.group(POPULATIONS)?;
    for name in pops.member_names()? {
        let g = pops.group(&name)?;
        let size: u64 = num(&g, "size").unwrap_or(0);
        let (spikes, cv) = match f.group(&format!("{}/{name}", spikes::GROUP)) {
            Ok(s) => {
                let ids = s.dataset("node_ids")?.read_raw::<u64>()?;
                let ts = s.dataset("timestamps")?.read_raw::<f64>()?;
                (ids.len().to_string(), mean_cv(&ids, &ts))
            }
            Err(_) => ("-".into(), None),
        };
        let rates = f
            .dataset(&format!("{}/{name}", rates::GROUP))?
            .read_raw::<f64>()?;
        let rate = if rates.is_empty() {
            f64::NAN
        } else {
            rates.iter().sum::<f64>() / rates.len() as f64
        };
        let last = |k: &str| -> Option<f64> {
            f.dataset(&format!("{}/{name}/{k}", moments::GROUP))
                .ok()?
                .read_raw::<f64>()
                .ok()?
                .last()
                .copied()
        };
        // The run's own statistics (over its analysis window) where the file has them.
        let stats = f.group(&format!("{}/{name}", statistics::GROUP)).ok();
        let stat = |k: &str| stats.as_ref().and_then(|g| num::<f64>(g, k));
        let cv = stat("cv_isi").or(cv);
        let fmt = |x: Option<f64>, p: usize| x.map_or("-".to_string(), |x| format!("{x:.p$}"));
        let _ = writeln!(
            out,
            "{:<12} {:>9} {:>10} {:>10.3} {:>8} {:>7} {:>7} {:>12} {:>9}",
            name,
            size,
            spikes,
            rate,
            fmt(cv, 3),
            fmt(stat("fano_factor"), 2),
            fmt(stat("chi"), 3),
            fmt(last("mean"), 3),
            fmt(last("variance").map(f64::sqrt), 3)
        );
    }
    if let Ok(ds) = f.dataset(&format!("{TIMERS}/seconds")) {
        let shape = ds.shape();
        let t = ds.read_raw::<f64>()?;
        let (ranks, phases) = (shape[0], shape[1]);
        let _ = writeln!(
            out,
            "where the time went [s], mean / max over {ranks} rank(s):"
        );
        // The file names its phases (older files have fewer).
        let names = text(&ds, "phases").unwrap_or_default();
        for (k, name) in names.split(',').enumerate().take(phases) {
            let col: Vec<f64> = (0..ranks).map(|r| t[r * phases + k]).collect();
            let mean = col.iter().sum::<f64>() / ranks as f64;
            let max = col.iter().cloned().fold(0.0, f64::max);
            let _ = writeln!(out, "  {name:<10} {mean:>9.3} / {max:>9.3}");
        }
    }
    if let Ok(ds) = f.dataset(&format!("{TIMERS}/peak_memory")) {
        let m = ds.read_raw::<u64>()?;
        let max = m.iter().copied().max().unwrap_or(0) as f64 / 1048576.0;
        let total = m.iter().sum::<u64>() as f64 / 1048576.0;
        let _ = writeln!(
            out,
            "peak memory: {max:.1} MiB on the largest rank, {total:.1} MiB over all ranks"
        );
    }
    Ok(out)
}
