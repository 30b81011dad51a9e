//! The commands: `run` (collective, every rank) and `check`.

use crate::checkpoint;
use crate::claim;
use crate::cli::{CheckArgs, RunArgs};
use crate::comm::Comm;
use crate::config::{Config, ConnRule};
use crate::memory;
use crate::observables::histograms::Histograms;
use crate::observables::rates::Rates;
use crate::output::{self, Provenance};
use crate::progress::Progress;
use crate::simulation;
use crate::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Instant, SystemTime};

/// The text of a configuration file. Only regular files are read: opening a FIFO or a device
/// would wait for a writer that may never come.
fn read_text(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("is not a regular file (a directory, FIFO, socket or device)".into());
    }
    std::fs::read_to_string(path).map_err(|e| e.to_string())
}

/// Rank 0 reads the file and broadcasts its text, so every rank parses the same bytes and
/// reaches the same verdict (no rank waits in a collective another has left).
fn read_config_everywhere(path: &Path, comm: &dyn Comm) -> Result<String, Error> {
    let mut buf = Vec::new();
    if comm.rank() == 0 {
        match read_text(path) {
            Ok(text) => {
                buf.push(1);
                buf.extend_from_slice(text.as_bytes());
            }
            Err(e) => {
                buf.push(0);
                buf.extend_from_slice(e.as_bytes());
            }
        }
    }
    comm.broadcast_bytes(&mut buf);
    let body = String::from_utf8_lossy(&buf[1..]).into_owned();
    if buf.first() == Some(&1) {
        Ok(body)
    } else {
        Err(Error::Read {
            path: path.display().to_string(),
            reason: body,
        })
    }
}

/// Rank 0 checks that an output file (`key`: the setting that names it) can be created before
/// any work is done, and claims it for this run ([`claim`]); all ranks learn the verdict. The
/// claim lives on rank 0 until it is dropped.
fn claim_output(
    key: &str,
    path: &Path,
    force: bool,
    comm: &dyn Comm,
) -> Result<Option<claim::Claim>, Error> {
    let mut verdict = Vec::new();
    let mut held = None;
    if comm.rank() == 0 {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let problem = if path.to_str().is_none() {
            Some("is not valid UTF-8 (HDF5 takes file names as UTF-8)".to_string())
        } else if path.file_name().is_none() {
            Some("does not name a file".to_string())
        } else if !dir.is_dir() {
            Some(format!("directory {} does not exist", dir.display()))
        } else if path.is_dir() {
            Some("is a directory".to_string())
        } else {
            // The claim comes before the check for an existing file, so that of two runs
            // started together one is refused here rather than both replacing the file.
            match claim::take(path) {
                Err(reason) => Some(reason),
                Ok(_) if path.exists() && !force => {
                    Some("exists; pass --force to replace it".to_string())
                }
                Ok(c) => {
                    held = Some(c);
                    None
                }
            }
        };
        verdict = problem.unwrap_or_default().into_bytes();
    }
    comm.broadcast_bytes(&mut verdict);
    if verdict.is_empty() {
        Ok(held)
    } else {
        Err(Error::Argument {
            key: key.into(),
            value: path.display().to_string(),
            reason: String::from_utf8_lossy(&verdict).into_owned(),
        })
    }
}

/// Every rank compares what it will hold ([`memory::parts`]) and spill to the temporary
/// directory times the ranks on its node with what the node has, and the series a run's
/// `output` will hold with the free space of its file system, before anything is built; all
/// learn the first refusal.
fn fits(
    config: &Config,
    comm: &dyn Comm,
    ranks: usize,
    output: Option<&Path>,
) -> Result<(), Error> {
    let here = memory::host_key();
    let ranks_here = comm
        .all_gather_u64(here)
        .iter()
        .filter(|&&h| h == here)
        .count();
    let parts = memory::parts(config, ranks);
    let verdict = memory::available()
        .and_then(|avail| memory::verdict(&parts, ranks_here, avail))
        .or_else(|| {
            memory::free_bytes(&std::env::temp_dir())
                .and_then(|free| memory::disk_verdict(&parts, ranks_here, free))
        })
        .or_else(|| memory::output_verdict_here(&parts, output?, ranks_here));
    let local = match verdict {
        Some((key, value, reason)) => Err(Error::Argument { key, value, reason }),
        None => Ok(()),
    };
    crate::comm::agree(comm, local)
}

/// The emulated decomposition asked for on the command line, checked: one process, a rank
/// below P, neither a restart nor periodic checkpoints (an emulated run holds one rank's share).
fn emulation(
    args: &RunArgs,
    config: &Config,
    comm: &dyn Comm,
) -> Result<Option<crate::emulate::Emulation>, Error> {
    let Some(ranks) = args.emulate_ranks else {
        return Ok(None);
    };
    let refuse = |key: &str, value: String, reason: String| {
        Err(Error::Argument {
            key: key.into(),
            value,
            reason,
        })
    };
    let rank = args.as_rank.unwrap_or(0);
    if ranks == 0 || ranks > crate::config::MAX_EMULATED_RANKS {
        return refuse(
            "--emulate-ranks",
            ranks.to_string(),
            format!("must lie in 1..={}", crate::config::MAX_EMULATED_RANKS),
        );
    }
    if rank >= ranks {
        return refuse(
            "--as-rank",
            rank.to_string(),
            format!("must be below --emulate-ranks = {ranks}"),
        );
    }
    if comm.size() != 1 {
        return refuse(
            "--emulate-ranks",
            ranks.to_string(),
            format!(
                "emulates ranks in one process, but this job has {} ranks; start it without \
                 mpirun (or with -n 1)",
                comm.size()
            ),
        );
    }
    if let Some(r) = &args.restart {
        return refuse(
            "--restart",
            r.display().to_string(),
            "an emulated run cannot continue a checkpoint".into(),
        );
    }
    if let Some(every) = config.checkpoint_every {
        return refuse(
            "checkpoint.every",
            config.time(every).to_string(),
            "an emulated run holds one rank's share and writes no checkpoint".into(),
        );
    }
    let given =
        match &args.emulate_rates {
            None => None,
            Some(text) => Some(crate::emulate::parse_rates(text, config).map_err(|reason| {
                Error::Argument {
                    key: "--emulate-rates".into(),
                    value: text.clone(),
                    reason,
                }
            })?),
        };
    Ok(Some(crate::emulate::Emulation::new(
        config,
        ranks,
        rank,
        args.emulate_replay.clone(),
        given,
    )))
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Prints what validation noticed without refusing, one line each, to stderr.
fn warn(config: &Config) {
    for w in &config.warnings {
        eprintln!("lapicque: warning: {w}");
    }
}

/// `lapicque run`: every rank calls this. `stop` is set by a signal handler to ask for a
/// checkpoint and a stop.
pub fn run(args: &RunArgs, comm: &dyn Comm, stop: &AtomicBool) -> Result<(), Error> {
    let wall = Instant::now();
    let mut started = now().into_bytes();
    comm.broadcast_bytes(&mut started);
    let text = read_config_everywhere(&args.config.config, comm)?;
    let config = args.config.apply(&text)?;
    if comm.rank() == 0 {
        warn(&config);
    }
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(&config.raw.output.path));
    let checkpoint_path = checkpoint::path_for(&config, &path);
    // However spelled: the clean-up at the end of a run removes the checkpoint.
    if claim::same_file(&checkpoint_path, &path) {
        return Err(Error::Argument {
            key: "checkpoint.path".into(),
            value: checkpoint_path.display().to_string(),
            reason: format!("must differ from the output path {}", path.display()),
        });
    }
    // Both files are claimed for the whole run (the claims are released when `run` returns).
    let _output_claim = claim_output("output.path", &path, args.force, comm)?;
    // The checkpoint a run resumes from is replaced by its next checkpoint; any other existing
    // file needs --force, like the output.
    let resumes_from_it = args
        .restart
        .as_deref()
        .is_some_and(|r| claim::same_file(r, &checkpoint_path));
    let _checkpoint_claim = claim_output(
        "checkpoint.path",
        &checkpoint_path,
        args.force || resumes_from_it,
        comm,
    )?;
    let emulation = emulation(args, &config, comm)?;
    let ranks = emulation.as_ref().map_or(comm.size(), |e| e.ranks);
    fits(&config, comm, ranks, Some(&path))?;
    let restart = match &args.restart {
        Some(p) => Some((p.as_path(), checkpoint::verify(p, &config, comm)?)),
        None => None,
    };
    let talk = comm.rank() == 0;
    if talk {
        eprintln!(
            "lapicque: {} neurons, {} ms at dt = {} ms, {}",
            config.n_neurons(),
            config.n_steps as f64 * config.dt,
            config.dt,
            match &emulation {
                Some(e) => format!(
                    "rank {} of {} emulated (other ranks' spikes {})",
                    e.rank,
                    e.ranks,
                    e.describe(&config)
                ),
                None => format!("{} rank(s)", comm.size()),
            }
        );
    }

    let mut progress = Progress::new(
        talk,
        config.n_steps,
        config.dt,
        config.raw.output.progress_interval,
    )
    .starting_at(restart.map_or(0, |(_, step)| step));
    if let (Some((p, step)), true) = (restart, talk) {
        eprintln!(
            "lapicque: resuming from {} at t = {} ms",
            p.display(),
            step as f64 * config.dt
        );
    }
    let control = simulation::Control {
        stop,
        checkpoint: &checkpoint_path,
        restart,
        emulate: emulation.as_ref(),
    };
    let result = simulation::run(&config, comm, &mut progress, &control)?;

    let output_start = Instant::now();
    let mut finished = now().into_bytes();
    comm.broadcast_bytes(&mut finished);
    let mut elapsed = wall.elapsed().as_secs_f64().to_le_bytes().to_vec();
    comm.broadcast_bytes(&mut elapsed);
    let prov = Provenance {
        started: String::from_utf8_lossy(&started).into_owned(),
        finished: String::from_utf8_lossy(&finished).into_owned(),
        wall_time: f64::from_le_bytes(elapsed[..8].try_into().expect("8 bytes broadcast")),
        output_start,
    };
    output::write(&path, &config, comm, &result, &prov)?;
    // The output supersedes every checkpoint of this run.
    if talk && checkpoint_path.exists() {
        let _ = std::fs::remove_file(&checkpoint_path);
    }

    let n_syn: u64 = comm.all_gather_u64(result.n_synapses).iter().sum();
    if talk {
        eprintln!(
            "lapicque: wrote {} ({} synapses, {:.2} s wall, {:.2} s per model second)",
            path.display(),
            n_syn,
            prov.wall_time,
            prov.wall_time / (config.n_steps as f64 * config.dt / 1000.0)
        );
        let r = config.rates;
        let window = if (r.start, r.stop) == (0, config.n_steps) {
            String::new()
        } else {
            format!(
                " in [{}, {}] ms",
                r.start as f64 * config.dt,
                r.stop as f64 * config.dt
            )
        };
        for (i, p) in config.populations.iter().enumerate() {
            let rates = result.observers.get::<Rates>();
            let (spikes, rate) = (rates.spikes(i), rates.mean_rate(i));
            eprintln!(
                "lapicque:   population {:<12} {:>9} spikes, mean rate {rate:.3} Hz{window}",
                p.name, spikes
            );
        }
        if let Some(h) = &config.histogram {
            let hist = result.observers.get::<Histograms>();
            for (i, p) in config.populations.iter().enumerate() {
                match hist.coverage(i) {
                    Some(c) if c < 0.5 => eprintln!(
                        "lapicque: warning: observables.histogram: [{}, {}) mV held {:.1}% of population {} on average; its histograms miss most of its mass (set observables.histogram.v_min and v_max)",
                        h.v_min,
                        h.v_max,
                        100.0 * c,
                        p.name
                    ),
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// `lapicque edges`: every rank builds its share of the network and writes its targets'
/// synapses into one SONATA edges file (collectively, complete or absent).
pub fn edges(args: &crate::cli::EdgesArgs, comm: &dyn Comm) -> Result<(), Error> {
    let text = read_config_everywhere(&args.config.config, comm)?;
    let config = args.config.apply(&text)?;
    if comm.rank() == 0 {
        warn(&config);
    }
    let _claim = claim_output("--output", &args.output, args.force, comm)?;
    fits(&config, comm, comm.size(), None)?;
    let partition = crate::partition::Partition::new(config.n_neurons(), comm.size());
    let local = partition.range(comm.rank());
    let conn = crate::comm::first_error(
        comm,
        crate::connectivity::Connectivity::build(&config, local.clone()),
    )?;
    crate::sonata::write_sonata(&args.output, &config, comm, &conn, &local)?;
    let total: u64 = comm.all_gather_u64(conn.n_synapses()).iter().sum();
    if comm.rank() == 0 {
        eprintln!(
            "lapicque: {total} synapses of {} projection(s) written to {}",
            config.projections.len(),
            args.output.display()
        );
    }
    Ok(())
}

/// `lapicque meanfield`: solves the limit equations of a configuration (one process).
pub fn meanfield(args: &crate::cli::MeanfieldArgs) -> Result<String, Error> {
    let comm = crate::comm::SerialComm;
    let text = read_config_everywhere(&args.config.config, &comm)?;
    let config = args.config.apply(&text)?;
    warn(&config);
    if args.balance {
        return crate::meanfield::run::balance_report(&config);
    }
    let path = args.output.clone().unwrap_or_else(|| {
        let p = PathBuf::from(&config.raw.output.path);
        p.with_extension("meanfield.h5")
    });
    let _claim = claim_output("output.path", &path, args.force, &comm)?;
    crate::meanfield::meanfield(&config, &path)
}

/// `lapicque check`: validates and describes the resolved network (or, with `--resolved`,
/// returns the resolved configuration as TOML).
/// One line on a population's model: drift, spike rule, noise, synapses, drive and labels.
fn describe_neuron(n: &crate::model::neuron::Neuron, dt: f64) -> String {
    use crate::config::{toml_name, ModelKind, NoiseKind, SpikeRule, SynapseKind};
    let b = &n.base;
    let mut parts = vec![match n.kind {
        ModelKind::Lif => format!(
            "lif: tau_m {} ms, e_l {} mV, i_e {} mV/ms",
            b.tau_m, b.e_l, b.i_e
        ),
        ModelKind::Perfect => format!("perfect: i_e {} mV/ms", b.i_e),
        ModelKind::Linear => format!(
            "linear: a {} mV/ms, c {} 1/ms, i_e {} mV/ms",
            n.lin.0, n.lin.1, b.i_e
        ),
        ModelKind::ExpIf => format!(
            "exp_if: tau_m {} ms, e_l {} mV, delta_t {} mV, v_t {} mV, i_e {} mV/ms",
            b.tau_m, b.e_l, n.exp.0, n.exp.1, b.i_e
        ),
        ModelKind::Fhn => format!(
            "fhn: a {}, b {}, eps {} 1/ms, i_e {} mV/ms",
            n.fhn.0, n.fhn.1, n.fhn.2, b.i_e
        ),
    }];
    let t_ref = f64::from(b.ref_steps) * dt;
    parts.push(match (n.spike, &n.escape) {
        (SpikeRule::Escape, Some(e)) => format!(
            "escape spikes {}, reset {} mV, t_ref {t_ref} ms",
            toml_name(e),
            b.v_reset
        ),
        (SpikeRule::None, _) => {
            format!("no reset (upward crossings of v_th {} mV counted)", b.v_th)
        }
        _ => format!(
            "threshold spikes at v_th {} mV, reset {} mV, t_ref {t_ref} ms",
            b.v_th, b.v_reset
        ),
    });
    parts.push(match n.noise {
        NoiseKind::Additive => format!("additive noise sigma {} mV/ms^0.5", b.sigma),
        NoiseKind::Affine => format!(
            "affine noise max(0, {} + {} V) mV/ms^0.5",
            b.sigma, n.sigma_v
        ),
        NoiseKind::Sqrt => format!("sqrt noise {} sqrt(|V - {}|) mV/ms^0.5", b.sigma, n.e_noise),
    });
    parts.push(match n.synapse {
        SynapseKind::Delta => "delta synapses".into(),
        SynapseKind::Current => format!(
            "current synapses (tau_syn {} / {} ms)",
            n.tau_syn.0, n.tau_syn.1
        ),
        SynapseKind::Conductance => format!(
            "conductance synapses (tau_syn {} / {} ms, e_rev {} / {} mV)",
            n.tau_syn.0, n.tau_syn.1, n.e_rev.0, n.e_rev.1
        ),
    });
    if b.poisson_rate > 0.0 {
        parts.push(format!(
            "Poisson drive {} Hz x {} mV",
            b.poisson_rate, b.poisson_weight
        ));
    }
    if let Some(l) = &n.labels {
        parts.push(format!(
            "labels: {} classes, efficacies {:?}, rates depend on {}, environment {}, redrawn at {} Hz",
            l.k(),
            l.efficacies(),
            toml_name(&l.dependence()),
            l.environment(),
            l.refresh_rate()
        ));
    }
    parts.join("; ")
}

pub fn check(args: &CheckArgs) -> Result<String, Error> {
    let path = &args.config.config;
    let text = read_text(path).map_err(|reason| Error::Read {
        path: path.display().to_string(),
        reason,
    })?;
    let c = args.config.apply(&text)?;
    warn(&c);
    if args.resolved {
        return Ok(c.resolved_toml());
    }
    let mut out = String::new();
    let _ = writeln!(out, "{}: valid", path.display());
    let _ = writeln!(
        out,
        "simulation: dt = {} ms, t_stop = {} ms ({} steps), seed = {}",
        c.dt,
        c.n_steps as f64 * c.dt,
        c.n_steps,
        c.seed
    );
    let _ = writeln!(out, "populations ({} neurons):", c.n_neurons());
    for p in &c.populations {
        let _ = writeln!(
            out,
            "  {:<10} {:>9} neurons, gids {}..{}, {}",
            p.name,
            p.size,
            p.gid_start,
            p.gid_start + p.size,
            describe_neuron(&p.model, c.dt)
        );
        for e in &p.model.vary.entries {
            let _ = writeln!(
                out,
                "                  varied per neuron (replaces the scalar): {}",
                e.describe()
            );
        }
    }
    if !c.aggregates.is_empty() {
        let _ = writeln!(out, "aggregate terms:");
    }
    for a in &c.aggregates {
        use crate::config::toml_name;
        let mut parts = vec![
            toml_name(&a.kind),
            format!("J = {} (j0 n^(alpha - 1))", a.j),
            format!("s = {}", toml_name(&a.s)),
        ];
        if a.kind == crate::aggregate::AggregateKind::Chemical {
            parts.push(format!("reversal {} mV", a.reversal));
        }
        if a.efficacy {
            parts.push("times the source's efficacy".into());
        }
        if a.target_efficacy {
            parts.push("times the target's efficacy".into());
        }
        if a.bins > 1 {
            parts.push(format!("{} coordinate bins", a.bins));
        }
        let _ = writeln!(
            out,
            "  {:<10} {} -> {}: {}",
            a.name,
            c.populations[a.source].name,
            c.populations[a.target].name,
            parts.join(", ")
        );
    }
    if !c.stimuli.is_empty() {
        let _ = writeln!(out, "stimuli:");
    }
    for s in &c.stimuli {
        let _ = writeln!(
            out,
            "  {:<10} -> {}{}: {}",
            s.name,
            c.populations[s.target].name,
            s.region
                .map_or(String::new(), |(lo, hi)| format!(" (x in [{lo}, {hi}))")),
            s.describe()
        );
    }
    let mut total = 0.0;
    let _ = writeln!(
        out,
        "projections:{}",
        if c.projections.is_empty() {
            " none"
        } else {
            ""
        }
    );
    for proj in &c.projections {
        let n = c.expected_synapses(proj);
        total += n;
        let rule = match &proj.rule {
            ConnRule::FixedIndegree {
                indegree,
                autapses,
                multapses,
            } => {
                format!("fixed_indegree {indegree} (autapses {autapses}, multapses {multapses})")
            }
            ConnRule::Bernoulli { p, autapses } => {
                format!("bernoulli p = {p} (autapses {autapses})")
            }
            ConnRule::File(f) => format!("{} edges from {} ({})", f.count, f.path, f.population),
        };
        let _ = writeln!(
            out,
            "  {:<10} {} -> {}: {rule}, weight {} mV, delay {} steps, ~{n:.0} synapses",
            proj.name,
            c.populations[proj.source].name,
            c.populations[proj.target].name,
            proj.weight,
            proj.delay_steps
        );
    }
    let _ = writeln!(
        out,
        "expected synapses: {total:.0}{}",
        if c.aggregates.is_empty() {
            String::new()
        } else {
            format!(
                " (plus coupling through {} aggregate terms, which store no synapses)",
                c.aggregates.len()
            )
        }
    );
    // What `lapicque run` checks before it builds anything (memory::parts).
    let ranks = args.ranks.max(1);
    let parts = memory::parts(&c, ranks);
    let mib = |f: fn(&memory::Part) -> f64| parts.iter().map(f).sum::<f64>() / 1048576.0;
    let largest = parts
        .iter()
        .max_by(|a, b| a.bytes.total_cmp(&b.bytes))
        .expect("a run has neuron state");
    let _ = writeln!(
        out,
        "memory estimate on {ranks} rank(s): {:.1} MiB per rank (most: {} = {}, {:.1} MiB), \
         {:.1} MiB per rank spilled to the temporary directory, {:.1} MiB of series in the \
         output; recorded spikes not counted",
        mib(|p| p.bytes),
        largest.key,
        largest.value,
        largest.bytes / 1048576.0,
        mib(|p| p.spilled),
        mib(|p| p.written),
    );
    describe_observables(&c, &mut out);
    Ok(out)
}

/// The observables as they will be taken: schedules and ranges after defaults and cuts.
fn describe_observables(c: &Config, out: &mut String) {
    let ms = |steps: u64| c.time(steps);
    let window = |s: &crate::config::Schedule| {
        format!(
            "every {} ms from {} to {} ms",
            ms(s.every),
            ms(s.start),
            ms(s.stop)
        )
    };
    let bins = |s: &crate::config::Schedule| {
        format!(
            "{} ms bins from {} to {} ms",
            ms(s.every),
            ms(s.start),
            ms(s.stop)
        )
    };
    let _ = writeln!(out, "observables:");
    let _ = writeln!(out, "  rates       {}", bins(&c.rates));
    if let Some(m) = &c.moments {
        let _ = writeln!(out, "  moments     {}", window(m));
    }
    if let Some(h) = &c.histogram {
        let _ = writeln!(
            out,
            "  histograms  {} bins on [{}, {}) mV, {}",
            h.bins,
            h.v_min,
            h.v_max,
            window(&h.schedule)
        );
    }
    if let Some(b) = &c.balance {
        let _ = writeln!(out, "  balance     {}", bins(b));
    }
    let s = &c.statistics;
    let _ = writeln!(
        out,
        "  statistics  window [{}, {}] ms, Fano window {} ms",
        ms(s.start),
        ms(s.stop),
        ms(s.fano_bins * c.rates.every)
    );
    if let Some(sn) = &c.snapshots {
        let _ = writeln!(out, "  snapshots   {}", window(sn));
    }
    if let Some(r) = &c.record {
        let who: Vec<String> = r
            .neurons
            .iter()
            .map(|(p, ids)| format!("{} {} neuron(s)", c.populations[*p].name, ids.len()))
            .collect();
        let what: Vec<&str> = r.variables.iter().map(|v| v.name()).collect();
        let _ = writeln!(
            out,
            "  record      {} of {}, {}",
            what.join(", "),
            who.join(", "),
            window(&r.schedule)
        );
    }
    for t in &c.trees.trees {
        let _ = writeln!(out, "  tree {}  {}", t.name, window(&t.schedule));
    }
    if let Some(p) = &c.trees.pair_histogram {
        let _ = writeln!(
            out,
            "  pair histogram  {} bins, {}",
            p.bins,
            window(&p.schedule)
        );
    }
}
