//! The step loop.
//!
//! Schedule of step `n` (from time `n dt` to `(n + 1) dt`), on every rank:
//!
//! 1. **update**: every local neuron advances one step, consuming ring-buffer slot `n` (the
//!    synaptic input arriving in this step); the gids that spike are collected in ascending
//!    order.
//! 2. **observe**: at sample boundaries `b = n + 1`, local partial sums for moments and
//!    histograms of V; they are reduced across ranks in batches after an exchange.
//! 3. **exchange**: one all-gather-v of the spiking gids. Blocks are contiguous and gathered in
//!    rank order, so every rank holds the same globally ascending list.
//! 4. **deliver**: each spike adds its weight into slot `n + delay` of its local targets; the
//!    population spike counts are taken from the global list.
//!
//! With `simulation.exchange = "window"` (and `"auto"`, the default, unless a window's largest
//! message could exceed one MPI message), steps 3 and 4 run once per window of `W` steps, `W`
//! the smallest delay: a spike emitted in the window lands at least `W` steps later, after the
//! window, so no neuron reads an input before it has been delivered. With `"step"`, `W = 1`.
//! Either way the spikes of step `n` are delivered before step `n + 1 - W + d` reads them, for
//! every delay `d >= W`, and the additions into each ring-buffer slot come in the same order.

use crate::checkpoint;
use crate::comm::Comm;
use crate::config::Config;
use crate::connectivity::Connectivity;
use crate::exchange::RingBuffer;
use crate::model::lif::{LifState, DIVERGED};
use crate::observables::Recorder;
use crate::partition::Partition;
use crate::progress::Progress;
use crate::rng::{self, Purpose, Stream};
use crate::trees::TreeRecorder;
use crate::Error;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Sampled observables are reduced across ranks once this many local partial values wait
/// (and at the end), not at every sample.
const REDUCE_BATCH: usize = 1 << 16;

/// Wall time per phase on one rank [s].
#[derive(Clone, Copy, Debug, Default)]
pub struct Timers {
    pub build: f64,
    pub update: f64,
    /// The spike all-gather, without the waiting below.
    pub exchange: f64,
    /// Waiting in the all-gather for slower ranks (load imbalance).
    pub wait: f64,
    pub deliver: f64,
    pub observe: f64,
    pub output: f64,
}

impl Timers {
    pub const NAMES: [&'static str; 7] = [
        "build", "update", "exchange", "wait", "deliver", "observe", "output",
    ];

    pub fn values(&self) -> [f64; 7] {
        [
            self.build,
            self.update,
            self.exchange,
            self.wait,
            self.deliver,
            self.observe,
            self.output,
        ]
    }
}

/// Peak resident memory of this process so far [bytes] (Linux `VmHWM`; 0 where unknown).
pub fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// The dynamic state of a rank's neurons: everything a checkpoint saves.
pub struct Dynamic {
    /// Membrane potential of each local neuron [mV].
    pub v: Vec<f64>,
    /// Remaining refractory steps of each local neuron.
    pub refractory: Vec<u32>,
    /// Each local neuron's dynamics stream.
    pub rngs: Vec<Stream>,
    /// Synaptic input scheduled for the coming steps.
    pub ring: RingBuffer,
    pub recorder: Recorder,
    pub trees: TreeRecorder,
    /// Local spikes as (gid, step), in step order and ascending gid within a step (a resumed
    /// run holds the spikes before its first step sorted by gid, which the writers keep).
    pub spikes: Vec<(u32, u32)>,
}

/// How a run is steered from outside.
pub struct Control<'a> {
    /// Set (by a signal handler) to ask for a checkpoint and a stop; every rank learns of it at
    /// the next spike exchange, so all stop at the same step.
    pub stop: &'a AtomicBool,
    /// Where checkpoints are written.
    pub checkpoint: &'a Path,
    /// A verified checkpoint to continue from, and its step.
    pub restart: Option<(&'a Path, u64)>,
}

impl<'a> Control<'a> {
    /// A run from the start that no signal stops (periodic checkpoints, if configured, go to
    /// `checkpoint`).
    pub fn uninterrupted(checkpoint: &'a Path) -> Self {
        static NEVER: AtomicBool = AtomicBool::new(false);
        Control {
            stop: &NEVER,
            checkpoint,
            restart: None,
        }
    }
}

/// What one rank holds at the end of a run.
pub struct RunResult {
    /// The gids this rank owned.
    pub local: Range<u64>,
    pub recorder: Recorder,
    pub trees: TreeRecorder,
    /// Local spikes as (gid, step), sorted by step within each gid.
    pub spikes: Vec<(u32, u32)>,
    /// Final membrane potential of each local neuron [mV].
    pub v: Vec<f64>,
    /// Final remaining refractory steps of each local neuron.
    pub refractory: Vec<u32>,
    pub n_synapses: u64,
    /// Synaptic events delivered to this rank's neurons.
    pub events: u64,
    /// Peak resident memory once the network and state are built [bytes].
    pub build_memory: u64,
    /// Bytes held by synapse tables, ring buffers and neuron state on this rank.
    pub bytes: u64,
    pub timers: Timers,
}

/// Local index ranges of each population on the rank that owns `local`.
fn blocks(config: &Config, local: &Range<u64>) -> Vec<(usize, Range<usize>)> {
    config
        .populations
        .iter()
        .enumerate()
        .filter_map(|(p, pop)| {
            let g = pop.gids();
            let (s, e) = (g.start.max(local.start), g.end.min(local.end));
            (s < e).then(|| (p, (s - local.start) as usize..(e - local.start) as usize))
        })
        .collect()
}

/// Words before the per-step counts in each rank's exchange message: the gid + 1 of a neuron
/// whose state diverged (0: none), the step, within the window, when it did, whether this
/// rank was asked to stop, and the microseconds it worked since the previous exchange.
///
/// The last word measures waiting without another collective: every rank leaves an
/// all-gather at about the same moment, so in the next one rank `r` waits for the slowest,
/// `max_k work_k - work_r`.
const HEADER: usize = 4;

pub fn run(
    config: &Config,
    comm: &dyn Comm,
    progress: &mut Progress,
    control: &Control,
) -> Result<RunResult, Error> {
    let mut timers = Timers::default();
    let t = Instant::now();
    let partition = Partition::new(config.n_neurons(), comm.size());
    let local = partition.range(comm.rank());
    let n_local = (local.end - local.start) as usize;
    let blocks = blocks(config, &local);

    let conn = Connectivity::build(config, local.clone());
    let gids = local.clone();
    let mut state = Dynamic {
        v: gids
            .clone()
            .map(|g| {
                config.populations[config.population_of(g)]
                    .model
                    .initial_v(config.seed, g)
            })
            .collect(),
        refractory: vec![0u32; n_local],
        rngs: gids
            .map(|g| rng::stream(config.seed, g, Purpose::Dynamics))
            .collect(),
        ring: RingBuffer::new(conn.max_delay(), n_local),
        recorder: Recorder::new(config, local.clone(), blocks.clone()),
        trees: TreeRecorder::new(config, local.clone()),
        spikes: Vec::new(),
    };
    let mut n0 = 0;
    if let Some((path, step)) = control.restart {
        checkpoint::read(path, config, comm, &local, step, &mut state)?;
        n0 = step;
    }
    let steppers: Vec<_> = config
        .populations
        .iter()
        .map(|p| p.model.stepper(config.dt))
        .collect();
    let state_bytes = n_local as u64 * (8 + 4 + std::mem::size_of::<Stream>() as u64);
    let bytes = conn.bytes() + state.ring.bytes() + state_bytes;
    let n_synapses = conn.n_synapses();
    timers.build = t.elapsed().as_secs_f64();
    let build_memory = peak_rss_bytes();

    // Everything sampled at step boundary `b`; `fired`: the local gids that spiked in the step
    // ending there. Tree observables are collectives: every rank samples the same boundaries.
    let observe = |b: u64, fired: &[u32], state: &mut Dynamic| {
        if state.trees.fires(b) {
            state.trees.sample(b, &state.v, fired, &conn, comm);
        }
        let (v, recorder) = (&state.v, &mut state.recorder);
        let time = b as f64 * config.dt;
        recorder.snapshot(b, time, v, &state.refractory);
        if config.moments.is_some_and(|s| s.fires(b)) {
            recorder.sample_moments(b, time, v);
        }
        if let Some(h) = config.histogram.as_ref().filter(|h| h.schedule.fires(b)) {
            recorder.sample_histogram(time, v, h);
        }
    };
    if n0 == 0 {
        observe(0, &[], &mut state);
    }

    let record_spikes = config.raw.output.spikes;
    // The gids whose spikes are written (`record_spikes` of each population).
    let recorded: Vec<Range<u32>> = config
        .populations
        .iter()
        .map(|p| {
            let start = u32::try_from(p.gid_start).expect("validated: gids fit u32");
            start..start + u32::try_from(p.record_spikes).expect("validated: gids fit u32")
        })
        .collect();
    let mut per_projection = vec![0u64; config.projections.len()];
    let window = config.exchange_window();
    // Per window, what this rank sends: a header (a diverged neuron, see HEADER), the number of
    // spikes of each step, then their gids.
    let mut send: Vec<u32> = Vec::new();
    let mut gathered = Vec::new();
    let mut parts: Vec<(usize, usize)> = Vec::new();
    let mut step_spikes = Vec::new();
    let mut events = 0u64;
    let mut since_exchange = Instant::now();
    while n0 < config.n_steps {
        let w = window.min(config.n_steps - n0) as usize;
        send.clear();
        send.resize(HEADER + w, 0);
        for k in 0..w {
            let n = n0 + k as u64;
            let t = Instant::now();
            let before = send.len();
            let input = state.ring.slot_mut(n);
            for (p, r) in &blocks {
                let neurons = LifState {
                    v: &mut state.v[r.clone()],
                    refractory: &mut state.refractory[r.clone()],
                    rng: &mut state.rngs[r.clone()],
                    input: &mut input[r.clone()],
                };
                let first =
                    u32::try_from(local.start + r.start as u64).expect("validated: gids fit u32");
                steppers[*p].advance(neurons, first, &mut send);
            }
            let (header, fired) = send.split_at_mut(before);
            for g in fired.iter_mut().filter(|g| **g & DIVERGED != 0) {
                *g &= !DIVERGED;
                if header[0] == 0 {
                    header[0] = *g + 1;
                    header[1] = k as u32;
                }
            }
            send[HEADER + k] =
                u32::try_from(send.len() - before).expect("fewer than 2^32 local neurons");
            let fired = &send[before..];
            state.recorder.count_intervals(n, fired);
            if record_spikes {
                let step = u32::try_from(n).expect("validated: fewer than 2^32 steps");
                state.spikes.extend(
                    fired
                        .iter()
                        .filter(|&&g| recorded.iter().any(|r| r.contains(&g)))
                        .map(|&g| (g, step)),
                );
            }
            let t1 = Instant::now();
            timers.update += (t1 - t).as_secs_f64();
            observe(n + 1, &send[before..], &mut state);
            timers.observe += t1.elapsed().as_secs_f64();
            progress.tick(n + 1);
        }

        send[2] = u32::from(control.stop.load(Ordering::Relaxed));
        let work = u32::try_from(since_exchange.elapsed().as_micros()).unwrap_or(u32::MAX);
        send[3] = work;
        let t = Instant::now();
        comm.all_gather_u32(&send, &mut gathered);
        let t1 = Instant::now();
        since_exchange = t1;

        // Each rank's part: the header, `w` counts, then its gids step by step. Concatenating the ranks'
        // gids of one step in rank order gives that step's global, ascending list, and steps
        // are delivered in order: the same additions in the same order as exchanging every
        // step, so the window changes no result.
        parts.clear();
        let mut pos = 0;
        let mut diverged = None;
        let mut stop = false;
        let mut slowest = 0;
        while pos < gathered.len() {
            stop |= gathered[pos + 2] != 0;
            slowest = slowest.max(gathered[pos + 3]);
            if gathered[pos] != 0 && diverged.is_none() {
                diverged = Some((
                    u64::from(gathered[pos] - 1),
                    n0 + u64::from(gathered[pos + 1]),
                ));
            }
            let counts = pos + HEADER;
            let total: usize = gathered[counts..counts + w]
                .iter()
                .map(|&c| c as usize)
                .sum();
            parts.push((counts, counts + w));
            pos = counts + w + total;
        }
        let gather = (t1 - t).as_secs_f64();
        let wait = (f64::from(slowest - work) * 1e-6).min(gather);
        timers.wait += wait;
        timers.exchange += gather - wait;
        // Every rank sees the same messages, so all stop together, at the same place.
        if let Some((gid, step)) = diverged {
            progress.finish();
            return Err(Error::Diverged {
                gid,
                population: config.populations[config.population_of(gid)].name.clone(),
                time: (step + 1) as f64 * config.dt,
            });
        }
        for k in 0..w {
            step_spikes.clear();
            for (counts, next) in parts.iter_mut() {
                let c = gathered[*counts + k] as usize;
                step_spikes.extend_from_slice(&gathered[*next..*next + c]);
                *next += c;
            }
            per_projection.fill(0);
            events += state
                .ring
                .deliver(n0 + k as u64, &conn, &step_spikes, &mut per_projection);
            state.recorder.count_input(n0 + k as u64, &per_projection);
            state.recorder.count_spikes(n0 + k as u64, &step_spikes);
        }
        timers.deliver += t1.elapsed().as_secs_f64();
        n0 += w as u64;
        let periodic = config
            .checkpoint_every
            .is_some_and(|e| n0 / e != (n0 - w as u64) / e);
        let stop = stop && n0 < config.n_steps;
        let save = (periodic || stop) && n0 < config.n_steps;
        if save || state.recorder.pending() >= REDUCE_BATCH || n0 == config.n_steps {
            let t = Instant::now();
            state.recorder.reduce(comm);
            timers.observe += t.elapsed().as_secs_f64();
        }
        if save {
            let t = Instant::now();
            checkpoint::write(control.checkpoint, config, comm, &local, n0, &state)?;
            timers.output += t.elapsed().as_secs_f64();
        }
        if stop {
            progress.finish();
            return Err(Error::Stopped {
                time: n0 as f64 * config.dt,
                checkpoint: control.checkpoint.display().to_string(),
            });
        }
    }
    progress.finish();

    let Dynamic {
        v,
        refractory,
        recorder,
        trees,
        spikes,
        ..
    } = state;
    Ok(RunResult {
        events,
        build_memory,
        local,
        recorder,
        trees,
        spikes,
        v,
        refractory,
        n_synapses,
        bytes,
        timers,
    })
}
