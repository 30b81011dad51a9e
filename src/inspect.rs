//! `lapicque inspect`: a readable summary of an output file.

use crate::Error;
use hdf5::types::VarLenUnicode;
use hdf5::{File, Location};
use std::fmt::Write as _;
use std::path::Path;

/// A string attribute, if present.
pub(crate) fn text(loc: &Location, name: &str) -> Option<String> {
    loc.attr(name)
        .ok()?
        .read_scalar::<VarLenUnicode>()
        .ok()
        .map(|s| s.as_str().to_string())
}

/// A scalar attribute, if present.
pub(crate) fn num<T: hdf5::H5Type>(loc: &Location, name: &str) -> Option<T> {
    loc.attr(name).ok()?.read_scalar::<T>().ok()
}

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
    let f = File::open(path)?;
    let status = text(&f, "status")
        .unwrap_or_else(|| "INCOMPLETE (no status: the run did not finish writing)".into());
    let t_stop: f64 = num(&f, "t_stop").unwrap_or(f64::NAN);
    let _ = writeln!(out, "{}: {status}", path.display());
    let _ = writeln!(
        out,
        "lapicque {} ({}), {} rank(s), seed {}, {} -> {}, {:.2} s wall",
        text(&f, "lapicque_version").unwrap_or_default(),
        text(&f, "git_commit").unwrap_or_default(),
        num::<u64>(&f, "n_ranks").unwrap_or(0),
        num::<u64>(&f, "seed").unwrap_or(0),
        text(&f, "started").unwrap_or_default(),
        text(&f, "finished").unwrap_or_default(),
        num::<f64>(&f, "wall_time").unwrap_or(f64::NAN),
    );
    let _ = writeln!(
        out,
        "network: {} neurons, {} synapses; {} ms at dt = {} ms",
        num::<u64>(&f, "n_neurons").unwrap_or(0),
        num::<u64>(&f, "n_synapses").unwrap_or(0),
        t_stop,
        num::<f64>(&f, "dt").unwrap_or(f64::NAN)
    );
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
    let pops = f.group("populations")?;
    for name in pops.member_names()? {
        let g = pops.group(&name)?;
        let size: u64 = num(&g, "size").unwrap_or(0);
        let (spikes, cv) = match f.group(&format!("spikes/{name}")) {
            Ok(s) => {
                let ids = s.dataset("node_ids")?.read_raw::<u64>()?;
                let ts = s.dataset("timestamps")?.read_raw::<f64>()?;
                (ids.len().to_string(), mean_cv(&ids, &ts))
            }
            Err(_) => ("-".into(), None),
        };
        let rates = f.dataset(&format!("rates/{name}"))?.read_raw::<f64>()?;
        let rate = if rates.is_empty() {
            f64::NAN
        } else {
            rates.iter().sum::<f64>() / rates.len() as f64
        };
        let last = |k: &str| -> Option<f64> {
            f.dataset(&format!("moments/{name}/{k}"))
                .ok()?
                .read_raw::<f64>()
                .ok()?
                .last()
                .copied()
        };
        // The run's own statistics (over its analysis window) where the file has them.
        let stats = f.group(&format!("statistics/{name}")).ok();
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
    if let Ok(ds) = f.dataset("timers/seconds") {
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
    if let Ok(ds) = f.dataset("timers/peak_memory") {
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
