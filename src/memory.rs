//! What a run will hold in memory, estimated from the configuration before anything is built,
//! and what a node has to give: a run that cannot fit is refused with the setting that costs
//! the most, instead of aborting in an allocation after minutes of building.

use crate::config::{Config, ConnRule};

/// One part of a rank's memory: the setting that sizes it and its cost.
#[derive(Debug, Clone)]
pub struct Part {
    pub key: String,
    pub value: String,
    /// \[bytes\] on one rank.
    pub bytes: f64,
    /// \[bytes\] one rank spills to the temporary directory over the run (series beyond
    /// their in-memory buffers, [`crate::spill`]).
    pub spilled: f64,
    /// \[bytes\] the part adds to the output file (from all ranks together).
    pub written: f64,
}

impl Part {
    fn held(key: String, value: String, bytes: f64) -> Self {
        Part {
            key,
            value,
            bytes,
            spilled: 0.0,
            written: 0.0,
        }
    }

    /// A part made of `series` spilling series ([`crate::spill::Series`]) of `total` bytes
    /// together: at most [`crate::spill::SERIES_BUFFER`] bytes of each in memory, the rest in
    /// the temporary directory; `written` of them end in the output file.
    fn series(key: &str, value: String, total: f64, series: usize, written: f64) -> Self {
        let held = total.min((series * crate::spill::SERIES_BUFFER) as f64);
        Part {
            key: key.into(),
            value,
            bytes: held,
            spilled: total - held,
            written,
        }
    }
}

/// The large parts of one rank's memory on `ranks` ranks (the rank with the most neurons).
/// Spike trains are not included: their size depends on the rates the run will have.
pub fn parts(config: &Config, ranks: usize) -> Vec<Part> {
    let r = ranks.max(1) as f64;
    let n_local = (config.n_neurons() as f64 / r).ceil();
    let dt = config.dt;
    let mut out = Vec::new();
    // Synapse tables: 2 or 4 bytes per synapse of a local target, and the source index.
    let per_synapse = crate::connectivity::target_bytes(n_local as u64) as f64;
    for p in &config.projections {
        let (key, value) = match &p.rule {
            ConnRule::FixedIndegree { indegree, .. } => ("indegree", indegree.to_string()),
            ConnRule::Bernoulli { p, .. } => ("p", p.to_string()),
            ConnRule::File(f) => ("file", f.path.clone()),
        };
        out.push(Part::held(
            format!("projection.{}.{key}", p.name),
            value,
            per_synapse * config.expected_synapses(p) / r
                + crate::connectivity::SourceIndex::estimate_bytes(
                    config.populations[p.source].size as f64,
                    config.expected_synapses(p) / r,
                    p.delay_set().len() as f64,
                ),
        ));
    }
    // Ring buffers: one slot per delay step and local neuron (two with split channels), and
    // at most one 2-byte arrival count per distinct constant weight (exchange::Counting).
    if let Some(p) = config.projections.iter().max_by_key(|p| p.delay_steps) {
        let rings = if config.split_inhibitory() { 2.0 } else { 1.0 };
        let mut weights: Vec<u64> = config
            .projections
            .iter()
            .filter(|p| !p.per_synapse_weights())
            .map(|p| p.weight.to_bits())
            .collect();
        weights.sort_unstable();
        weights.dedup();
        let per_slot = rings * 8.0 + 2.0 * weights.len() as f64;
        out.push(Part::held(
            format!("projection.{}.delay", p.name),
            (f64::from(p.delay_steps) * dt).to_string(),
            per_slot * (f64::from(p.delay_steps) + 1.0) * n_local,
        ));
    }
    // Neuron state: V, refractory counter, random stream, per-neuron accumulators.
    out.push(Part::held(
        "population".into(),
        format!("{} neurons", config.n_neurons()),
        n_local * (8.0 + 4.0 + 32.0 + 6.0 * 8.0),
    ));
    let pops = config.populations.len() as f64;
    let n_pop = config.populations.len();
    let time = |every: u64| (every as f64 * dt).to_string();
    // The series of the observables (whole run), held up to a buffer each and spilled beyond;
    // all but the snapshots are replicated on every rank and written once.
    // Rate counts and their pending partial sums; the file holds the rates and bin times.
    let bins = (config.rates.stop - config.rates.start) as f64 / config.rates.every as f64;
    out.push(Part::series(
        "observables.rates.every",
        time(config.rates.every),
        2.0 * 8.0 * pops * bins,
        1,
        8.0 * (pops + 1.0) * bins,
    ));
    if let Some(h) = &config.histogram {
        let total = 2.0 * 8.0 * pops * h.schedule.count() as f64 * (h.bins * h.xi_bins) as f64;
        out.push(Part::series(
            "observables.histogram.every",
            time(h.schedule.every),
            total,
            1 + 3 * n_pop,
            total,
        ));
    }
    if let Some(m) = &config.moments {
        let count = m.count() as f64;
        out.push(Part::series(
            "observables.moments.every",
            time(m.every),
            4.0 * 8.0 * pops * count,
            1 + 2 * n_pop,
            8.0 * (2.0 * pops + 1.0) * count,
        ));
    }
    if let Some(s) = &config.snapshots {
        // Each rank's own neurons: the file holds every rank's.
        out.push(Part::series(
            "observables.snapshots.every",
            time(s.every),
            12.0 * n_local * s.count() as f64,
            3,
            12.0 * config.n_neurons() as f64 * s.count() as f64,
        ));
    }
    if let Some(b) = &config.balance {
        let count = b.count() as f64;
        out.push(Part::series(
            "observables.balance.every",
            time(b.every),
            4.0 * 16.0 * config.projections.len() as f64 * count,
            1,
            // Four inputs per population and the times.
            8.0 * (4.0 * pops + 1.0) * count,
        ));
    }
    for a in &config.aggregates {
        out.push(Part::held(
            format!("aggregate.{}.bins", a.name),
            a.bins.to_string(),
            8.0 * (a.bins * a.bins) as f64,
        ));
    }
    out
}

/// Memory this process may still use \[bytes\]: the least of the node's available memory, the
/// control group's limit and the address-space limit; `None` where none is known.
pub fn available() -> Option<f64> {
    let mut limits = Vec::new();
    if let Ok(m) = std::fs::read_to_string("/proc/meminfo") {
        if let Some(kib) = m
            .lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        {
            limits.push(kib * 1024.0);
        }
    }
    // Control group v2: the limit less what the group already uses.
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
    };
    if let (Some(max), Some(used)) = (
        read("/sys/fs/cgroup/memory.max"),
        read("/sys/fs/cgroup/memory.current"),
    ) {
        limits.push((max - used).max(0.0));
    }
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut rl) } == 0
        && rl.rlim_cur != libc::RLIM_INFINITY
    {
        limits.push(rl.rlim_cur as f64);
    }
    limits.into_iter().reduce(f64::min)
}

/// A stable number for this node's host name, to count the ranks that share a node.
pub fn host_key() -> u64 {
    use std::hash::{Hash, Hasher};
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.trim().hash(&mut h);
    h.finish()
}

/// Whether `ranks_here` ranks with these parts fit in `available` bytes of memory; the reason
/// if not.
pub fn verdict(
    parts: &[Part],
    ranks_here: usize,
    available: f64,
) -> Option<(String, String, String)> {
    refusal(
        parts,
        |p| p.bytes,
        Some(ranks_here),
        available,
        "here",
        "available",
    )
}

/// Whether the spill files of `ranks_here` ranks fit in the `free` bytes of the temporary
/// directory; the reason if not.
pub fn disk_verdict(
    parts: &[Part],
    ranks_here: usize,
    free: f64,
) -> Option<(String, String, String)> {
    let dir = std::env::temp_dir();
    let place = format!("in the temporary directory {}", dir.display());
    refusal(
        parts,
        |p| p.spilled,
        Some(ranks_here),
        free,
        &place,
        "free there",
    )
}

/// Whether the series the output file will hold fit in the `room` bytes its directory `dir`
/// has (`what` says which limit that is), beside the spill files of `spilling` ranks where
/// the temporary directory is on that file system; the reason if not. Spike trains are not
/// counted (their size depends on the rates the run will have).
pub fn output_verdict(
    parts: &[Part],
    dir: &std::path::Path,
    spilling: usize,
    (room, what): (f64, &str),
) -> Option<(String, String, String)> {
    let place = format!("for the output in {}", dir.display());
    let cost = |p: &Part| p.written + p.spilled * spilling as f64;
    refusal(parts, cost, None, room, &place, what)
}

/// [`output_verdict`] for an output file at `output` written by a run with `ranks_here`
/// ranks on this node: against the free space of its directory's file system (beside the
/// spill files where the temporary directory is on it), then against the file size limit
/// (the spill files are files of their own).
pub fn output_verdict_here(
    parts: &[Part],
    output: &std::path::Path,
    ranks_here: usize,
) -> Option<(String, String, String)> {
    let dir = directory_of(output);
    let spilling = if same_file_system(dir, &std::env::temp_dir()) {
        ranks_here
    } else {
        0
    };
    free_bytes(dir)
        .and_then(|free| output_verdict(parts, dir, spilling, (free, "free there")))
        .or_else(|| {
            file_size_limit()
                .and_then(|limit| output_verdict(parts, dir, 0, (limit, "file size limit allows")))
        })
}

/// This process's file size limit (`ulimit -f`) \[bytes\]; `None` where unlimited.
pub fn file_size_limit() -> Option<f64> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut rl) } == 0;
    (ok && rl.rlim_cur != libc::RLIM_INFINITY).then_some(rl.rlim_cur as f64)
}

/// `ranks_here` ranks need `cost` of every part (a cost per rank), or the parts need it once
/// (`None`): the part that costs the most, its value and the reason, when they need more than
/// `have`.
fn refusal(
    parts: &[Part],
    cost: impl Fn(&Part) -> f64,
    ranks_here: Option<usize>,
    have: f64,
    place: &str,
    what: &str,
) -> Option<(String, String, String)> {
    let sum: f64 = parts.iter().map(&cost).sum();
    let need = sum * ranks_here.unwrap_or(1) as f64;
    if need <= have {
        return None;
    }
    let big = parts
        .iter()
        .max_by(|a, b| cost(a).total_cmp(&cost(b)))
        .expect("a run has neuron state");
    let mib = |b: f64| match b / 1048576.0 {
        m if m < 10.0 => format!("{m:.1} MiB"),
        m => format!("{m:.0} MiB"),
    };
    Some((
        big.key.clone(),
        big.value.clone(),
        match ranks_here {
            Some(ranks) => format!(
                "needs ~{} {place} ({} per rank x {ranks} rank(s) on this node; this setting {} per rank), more than the {} {what}",
                mib(need),
                mib(sum),
                mib(cost(big)),
                mib(have)
            ),
            None => format!(
                "needs ~{} {place} (this setting {}), more than the {} {what}",
                mib(need),
                mib(cost(big)),
                mib(have)
            ),
        },
    ))
}

/// The directory a file `path` is in (`.` for a bare name).
pub fn directory_of(path: &std::path::Path) -> &std::path::Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    }
}

/// Whether two directories are on one file system (`false` where unknown).
pub fn same_file_system(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    }
}

/// Free bytes of the file system holding `dir` for an unprivileged user; `None` where unknown.
pub fn free_bytes(dir: &std::path::Path) -> Option<f64> {
    let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(dir.as_os_str())).ok()?;
    // SAFETY: statvfs fills the struct it is given from a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0;
    ok.then_some(st.f_bavail as f64 * st.f_frsize as f64)
}

/// Peak resident memory of this process so far \[bytes\] (Linux `VmHWM`; 0 where unknown).
pub fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Returns `v` after asking the kernel to back its allocation with transparent huge pages
/// (2 MiB) where it spans at least 8 MiB, to be called before its pages are first touched.
/// Delivery reads synapse tables of gigabytes at random places: with 4 KiB pages nearly every
/// lookup also misses the TLB and walks the page tables. A hint (Linux `madvise`
/// `MADV_HUGEPAGE`, honoured when `/sys/kernel/mm/transparent_hugepage/enabled` is `always`
/// or `madvise`): it changes neither contents nor results, and nothing where it is refused.
pub fn huge<T>(v: Vec<T>) -> Vec<T> {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 2 << 20;
        let bytes = v.capacity() * std::mem::size_of::<T>();
        let start = v.as_ptr() as usize;
        let (a, e) = (start.next_multiple_of(PAGE), (start + bytes) / PAGE * PAGE);
        if bytes >= 4 * PAGE && e > a {
            // SAFETY: [a, e) lies inside `v`'s allocation; MADV_HUGEPAGE only changes how the
            // kernel backs those pages, never their contents or their mapping's validity.
            unsafe { libc::madvise(a as *mut libc::c_void, e - a, libc::MADV_HUGEPAGE) };
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(sets: &[&str]) -> Config {
        let text = "[population.E]\nsize = 1000\n[projection.EE]\nsource = \"E\"\ntarget = \"E\"\n\
                    rule = \"fixed_indegree\"\nindegree = 10\nweight = 0.1\ndelay = 1.0\n";
        let o: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Config::from_toml(text, &o).unwrap()
    }

    /// The synapse table of a fixed in-degree projection is 2 bytes x N x K over the ranks
    /// (500 neurons per rank: 16-bit targets),
    /// plus its source index (every source present, 5e10 synapses per 1000 sources on a rank:
    /// 16 blocks and a closing one of 24 bytes, 4 bytes per source); a large in-degree is named
    /// as the reason.
    #[test]
    fn the_largest_part_is_named() {
        let c = config(&["projection.EE.indegree=100000000"]);
        let p = parts(&c, 2);
        let syn = p
            .iter()
            .find(|p| p.key == "projection.EE.indegree")
            .unwrap();
        assert_eq!(
            syn.bytes,
            2.0 * 1000.0 * 1e8 / 2.0 + 17.0 * 24.0 + 4.0 * 1000.0
        );
        let (key, value, reason) = verdict(&p, 2, 1e9).unwrap();
        assert_eq!(
            (key.as_str(), value.as_str()),
            ("projection.EE.indegree", "100000000")
        );
        assert!(reason.contains("2 rank(s)"), "{reason}");
        assert!(verdict(&parts(&config(&[]), 2), 2, 1e9).is_none());
        // A ring buffer of 1e5 ms at dt = 0.1 ms: 1e6 + 1 slots of 8 bytes per neuron, and
        // 2 for the count of arrivals through the one constant weight.
        let c = config(&["projection.EE.delay=100000"]);
        let ring = parts(&c, 1)
            .into_iter()
            .find(|p| p.key == "projection.EE.delay")
            .unwrap();
        assert_eq!(ring.bytes, 10.0 * 1_000_001.0 * 1000.0);
    }

    /// A long run's moments (time, mean and variance per sample: 24 bytes for one population)
    /// are held up to a buffer per series and spill the rest: 10^7 samples fit in memory and
    /// are refused only by a temporary directory too small for their 240 MB.
    #[test]
    fn series_spill_to_the_temporary_directory() {
        let c = config(&[
            "simulation.t_stop=10000000",
            "observables.moments.every=1",
            "observables.histogram.every=0",
            "observables.balance.every=0",
        ]);
        let p = parts(&c, 1);
        let m = p
            .iter()
            .find(|p| p.key == "observables.moments.every")
            .unwrap();
        assert!(m.bytes <= 3.0 * 65536.0, "{}", m.bytes);
        assert!(m.spilled >= 24.0 * 1e7, "{}", m.spilled);
        assert!(verdict(&p, 1, 1e9).is_none());
        let (key, value, reason) = disk_verdict(&p, 1, 1e8).unwrap();
        assert_eq!(
            (key.as_str(), value.as_str()),
            ("observables.moments.every", "1")
        );
        assert!(reason.contains("temporary directory"), "{reason}");
        assert!(disk_verdict(&p, 1, 1e12).is_none());
        // The output holds the whole series (moments ~240 MB, rates at 1 ms ~160 MB): refused
        // by 100 MB free; 500 MB suffice unless the spill files (~640 MB more) share its file
        // system.
        let dir = std::path::Path::new("out");
        let (key, _, reason) = output_verdict(&p, dir, 0, (1e8, "free there")).unwrap();
        assert_eq!(key, "observables.moments.every");
        assert!(reason.contains("for the output in out"), "{reason}");
        assert!(output_verdict(&p, dir, 0, (5e8, "free there")).is_none());
        assert!(output_verdict(&p, dir, 1, (5e8, "free there")).is_some());
    }

    /// Snapshots are each rank's own neurons: the output holds every rank's, a rank one share.
    #[test]
    fn the_output_holds_every_ranks_snapshots() {
        let c = config(&["observables.snapshots.every=1"]);
        let p = parts(&c, 4);
        let s = p
            .iter()
            .find(|p| p.key == "observables.snapshots.every")
            .unwrap();
        assert_eq!(s.written, 4.0 * (s.bytes + s.spilled));
        assert_eq!(
            s.written,
            12.0 * 1000.0 * c.snapshots.as_ref().unwrap().count() as f64
        );
    }
}
