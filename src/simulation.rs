//! The step loop.
//!
//! Schedule of step `n` (from time `n dt` to `(n + 1) dt`), on every rank:
//!
//! 1. **update**: every local neuron advances one step, consuming ring-buffer slot `n` (the
//!    synaptic input arriving in this step); the gids that spike are collected in ascending
//!    order.
//! 2. **observe**: at every boundary `b = n + 1`, each observable
//!    ([`crate::observables`]) takes its local part; they are reduced across ranks in batches
//!    after an exchange.
//! 3. **exchange**: one all-gather-v of the spiking gids (or, with `simulation.collective =
//!    "all_to_all"`, an all-to-all-v sending each spike only to the ranks holding targets of its
//!    source). Blocks are contiguous and gathered in rank order, so every rank holds the
//!    globally ascending list (or the part of it with local targets).
//! 4. **deliver**: each spike adds its weight into slot `n + delay` of its local targets.
//!
//! With `simulation.exchange = "window"` (and `"auto"`, the default, unless a window's largest
//! message could exceed one MPI message), steps 3 and 4 run once per window of `W` steps, `W`
//! the smallest delay: a spike emitted in the window lands at least `W` steps later, after the
//! window, so no neuron reads an input before it has been delivered. With `"step"`, `W = 1`.
//! Either way the spikes of step `n` are delivered before step `n + 1 - W + d` reads them, for
//! every delay `d >= W`, and the additions into each ring-buffer slot come in the same order.

use crate::aggregate::Aggregates;
use crate::checkpoint;
use crate::comm::Comm;
use crate::config::Config;
use crate::connectivity::Connectivity;
use crate::emulate::{Emulation, Emulator};
use crate::exchange::{Counting, Exchange, RingBuffer, Route, Targeted};
use crate::memory::peak_rss_bytes;
use crate::model::lif::{LifState, LifUpdate};
use crate::model::neuron::{GeneralState, GeneralStep};
use crate::observables::{Boundary, Observers, REDUCE_BATCH};
use crate::partition::Partition;
use crate::progress::Progress;
use crate::rng::{self, Purpose, Stream};
use crate::state::{Dynamic, Extra, RunResult, Timers};
use crate::stimulus::{Stimuli, Targets};
use crate::Error;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The update of one population.
// One per population: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Stepper {
    Lif(LifUpdate),
    General(GeneralStep),
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
    /// Run one rank of an emulated decomposition instead of this process's share
    /// ([`crate::emulate`]).
    pub emulate: Option<&'a Emulation>,
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
            emulate: None,
        }
    }
}

/// Local index ranges of each population on the rank that owns `local`.
fn blocks(config: &Config, local: &Range<u64>) -> Vec<(usize, Range<usize>)> {
    config
        .populations
        .iter()
        .enumerate()
        .map(|(p, pop)| (p, pop.local_range(local)))
        .filter(|(_, r)| !r.is_empty())
        .collect()
}

pub fn run(
    config: &Config,
    comm: &dyn Comm,
    progress: &mut Progress,
    control: &Control,
) -> Result<RunResult, Error> {
    let mut timers = Timers::default();
    let t = Instant::now();
    let (rank, ranks) = control
        .emulate
        .map_or((comm.rank(), comm.size()), |e| (e.rank, e.ranks));
    let partition = Partition::new(config.n_neurons(), ranks);
    let local = partition.range(rank);
    let n_local = (local.end - local.start) as usize;
    let blocks = blocks(config, &local);

    let conn = crate::comm::first_error(comm, Connectivity::build(config, local.clone()))?;
    let gids = local.clone();
    let extra = Extra::new(config, &local);
    // Spikes carry their source's efficacy when some population has labels.
    let payload = extra.stride > 0;
    let ring = |negative| {
        let counting = Counting::new(config, &conn, payload, negative);
        RingBuffer::new(conn.max_delay(), n_local, counting)
    };
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
        ring: ring(false),
        ring_i: config.split_inhibitory().then(|| ring(true)),
        observers: Observers::new(config, local.clone(), &blocks),
        extra,
        aggregates: Aggregates::new(config, &local),
    };
    let mut n0 = 0;
    if let Some((path, step)) = control.restart {
        // A damaged file may fail on one rank only: all learn of it before the first exchange.
        let read = checkpoint::read(path, comm, &local, step, &mut state);
        crate::comm::agree(comm, read)?;
        n0 = step;
    }
    // Heterogeneous parameters are drawn here, at every start, from their own streams.
    let steppers: Result<Vec<Stepper>, _> = config
        .populations
        .iter()
        .enumerate()
        .map(|(k, p)| {
            Ok(
                if p.model
                    .is_plain_lif(Aggregates::reaches(config, k) || config.drives_current(k))
                {
                    Stepper::Lif(crate::model::vary::lif_update(config, k, &local)?)
                } else {
                    Stepper::General(p.model.stepper(config.dt))
                },
            )
        })
        .collect();
    let steppers = crate::comm::first_error(comm, steppers)?;
    let general: Vec<bool> = steppers
        .iter()
        .map(|s| matches!(s, Stepper::General(_)))
        .collect();
    let mut stimuli = Stimuli::new(config, &local, &general, n0);
    let labels: Vec<_> = config
        .populations
        .iter()
        .map(|p| p.model.labels.as_ref())
        .collect();
    let mut efficacy = vec![1.0; if payload { n_local } else { 0 }];
    let mut agg_a = vec![0.0; n_local];
    let mut agg_c = vec![0.0; n_local];
    let mut agg_jump = vec![0.0; n_local];
    let mut agg_slope = vec![0.0; n_local];
    let mut agg_slope_rate = vec![0.0; n_local];
    let mut label_x = vec![0.0; config.populations.len()];
    let mut no_input_i: Vec<f64> = Vec::new();
    let signed: Vec<bool> = (0..config.projections.len())
        .map(|k| config.signed_channels(k))
        .collect();
    let state_bytes = n_local as u64 * (8 + 4 + std::mem::size_of::<Stream>() as u64);
    let bytes = conn.bytes() + state.ring.bytes() + state_bytes;
    let n_synapses = conn.n_synapses();
    timers.build = t.elapsed().as_secs_f64();
    let build_memory = peak_rss_bytes();

    // Every observable at step boundary `b`; `fired`: the local gids that spiked in the step
    // ending there. Some samples are collectives: every rank samples the same boundaries.
    let observe = |b: u64, fired: &[u32], state: &mut Dynamic| {
        state.observers.at_boundary(&Boundary {
            b,
            time: config.time(b),
            v: &state.v,
            refractory: &state.refractory,
            extra: &state.extra,
            fired,
            conn: &conn,
            comm,
        });
    };
    if n0 == 0 {
        observe(0, &[], &mut state);
    }

    // What each projection delivered in each step of a window.
    let mut per_step: Vec<Vec<crate::exchange::Delivered>> = Vec::new();
    let window = config.exchange_window();
    let route = match (control.emulate, config.raw.simulation.collective) {
        (Some(e), _) => Route::Emulated(Box::new(Emulator::new(config, e, &partition, payload)?)),
        (None, crate::config::Collective::AllToAll) => {
            Route::Targeted(Targeted::new(&conn, &partition, &local, comm))
        }
        (None, crate::config::Collective::AllGather) => Route::AllGather,
    };
    let mut exchange = Exchange::new(payload, route);
    let mut arrived = crate::exchange::Window::default();
    let mut events = 0u64;
    let mut since_exchange = Instant::now();
    while n0 < config.n_steps {
        let w = window.min(config.n_steps - n0) as usize;
        exchange.begin_window(n0, w);
        for k in 0..w {
            let n = n0 + k as u64;
            let t = Instant::now();
            exchange.begin_step();
            if !state.aggregates.is_empty() {
                // The efficacies at the start of the step, which aggregate sums read (spikes
                // carry theirs from the end of the step, below).
                if payload {
                    for (p, r) in &blocks {
                        for i in r.clone() {
                            efficacy[i] = state.extra.efficacy(labels[*p], i);
                        }
                    }
                }
                state.aggregates.compute(
                    comm,
                    &config.populations,
                    config.dt,
                    crate::aggregate::Sources {
                        v: &state.v,
                        w: &state.extra.w,
                        efficacy: &efficacy,
                    },
                    &mut state.rngs,
                    crate::aggregate::Input {
                        a: &mut agg_a,
                        c: &mut agg_c,
                        jump: &mut agg_jump,
                        slope: &mut agg_slope,
                        slope_rate: &mut agg_slope_rate,
                    },
                    &mut label_x,
                );
                state
                    .observers
                    .aggregate_input(n, state.aggregates.balance());
            }
            if !stimuli.is_empty() {
                if state.aggregates.is_empty() && stimuli.feeds_general() {
                    agg_a.fill(0.0);
                    agg_jump.fill(0.0);
                }
                stimuli.apply(
                    config,
                    n,
                    Targets {
                        input: state.ring.slot_mut(n),
                        drift: &mut agg_a,
                        jump: &mut agg_jump,
                        rngs: &mut state.rngs,
                    },
                );
            }
            let input = state.ring.slot_mut(n);
            let input_i = match state.ring_i.as_mut() {
                Some(ring) => ring.slot_mut(n),
                None => &mut no_input_i[..],
            };
            let x = &mut state.extra;
            let stride = x.stride;
            for (p, r) in &blocks {
                let first =
                    u32::try_from(local.start + r.start as u64).expect("validated: gids fit u32");
                let part = |v: &mut Vec<f64>, per: usize| -> std::ops::Range<usize> {
                    if v.is_empty() {
                        0..0
                    } else {
                        r.start * per..r.end * per
                    }
                };
                match &steppers[*p] {
                    Stepper::Lif(step) => step.advance(
                        LifState {
                            v: &mut state.v[r.clone()],
                            refractory: &mut state.refractory[r.clone()],
                            rng: &mut state.rngs[r.clone()],
                            input: &mut input[r.clone()],
                        },
                        first,
                        exchange.outbox(),
                    ),
                    Stepper::General(step) => {
                        let (rw, re, rl, rb) = (
                            part(&mut x.w, 1),
                            part(&mut x.syn_e, 1),
                            part(&mut x.lambda, stride),
                            part(&mut x.beta, stride * stride),
                        );
                        let ri = if input_i.is_empty() { 0..0 } else { r.clone() };
                        step.advance(
                            GeneralState {
                                v: &mut state.v[r.clone()],
                                refractory: &mut state.refractory[r.clone()],
                                rng: &mut state.rngs[r.clone()],
                                input: &mut input[r.clone()],
                                input_i: &mut input_i[ri],
                                w: &mut x.w[rw],
                                syn_e: &mut x.syn_e[re.clone()],
                                syn_i: &mut x.syn_i[re],
                                lambda: &mut x.lambda[rl],
                                beta: &mut x.beta[rb],
                                label_stride: stride,
                                agg_a: &agg_a[r.clone()],
                                agg_c: &agg_c[r.clone()],
                                agg_jump: &agg_jump[r.clone()],
                                agg_slope: &agg_slope[r.clone()],
                                agg_slope_rate: &agg_slope_rate[r.clone()],
                                label_aggregate: label_x[*p],
                            },
                            first,
                            exchange.outbox(),
                        );
                    }
                }
            }
            let count = exchange.end_step(k);
            if !state.aggregates.is_empty() {
                let base = local.start;
                let fired = exchange
                    .fired()
                    .iter()
                    .map(|&g| (u64::from(g) - base) as usize);
                state.aggregates.set_spiked(fired);
            }
            if payload {
                // Each spike's efficacy at the end of the step.
                for j in 0..count {
                    let g = u64::from(exchange.fired()[j]);
                    let i = (g - local.start) as usize;
                    exchange
                        .push_efficacy(state.extra.efficacy(labels[config.population_of(g)], i));
                }
            }
            let fired = exchange.fired();
            let t1 = Instant::now();
            timers.update += (t1 - t).as_secs_f64();
            observe(n + 1, fired, &mut state);
            timers.observe += t1.elapsed().as_secs_f64();
            progress.tick(n + 1);
        }

        let work = u32::try_from(since_exchange.elapsed().as_micros()).unwrap_or(u32::MAX);
        let t = Instant::now();
        let synthetic = exchange.synthetic;
        let received = exchange.exchange(comm, control.stop.load(Ordering::Relaxed), work);
        let t1 = Instant::now();
        since_exchange = t1;
        let gather = (t1 - t).as_secs_f64() - (exchange.synthetic - synthetic);
        let wait = (f64::from(received.slowest - work) * 1e-6).min(gather);
        timers.wait += wait;
        timers.exchange += gather - wait;
        // Every rank sees the same messages, so all stop together, at the same place.
        if let Some((gid, k)) = received.diverged {
            progress.finish();
            return Err(Error::Diverged {
                gid,
                population: config.populations[config.population_of(gid)].name.clone(),
                time: (n0 + k + 1) as f64 * config.dt,
            });
        }
        let stop = received.stop;
        arrived.reset(w);
        for (k, (spikes, scales)) in arrived.steps.iter_mut().enumerate() {
            exchange.step(k, spikes, scales);
        }
        per_step.resize_with(w, || vec![Default::default(); config.projections.len()]);
        for d in per_step.iter_mut() {
            d.fill(Default::default());
        }
        events += crate::exchange::deliver(
            &mut state.ring,
            state.ring_i.as_mut(),
            &signed,
            n0,
            &conn,
            &mut arrived,
            &mut per_step,
        );
        for (k, d) in per_step.iter().enumerate() {
            state.observers.delivered(n0 + k as u64, d);
        }
        n0 += w as u64;
        // No spike still to come reaches the next window's steps (the window is at most the
        // smallest delay); each step is settled once, after the window before it.
        let complete = n0..n0 + window.min(config.n_steps - n0);
        state.ring.settle(complete.clone());
        if let Some(ring) = state.ring_i.as_mut() {
            ring.settle(complete);
        }
        timers.deliver += t1.elapsed().as_secs_f64();
        let periodic = config
            .checkpoint_every
            .is_some_and(|e| n0 / e != (n0 - w as u64) / e);
        let stop = stop && n0 < config.n_steps;
        if stop && control.emulate.is_some() {
            progress.finish();
            return Err(Error::StoppedEmulated {
                time: n0 as f64 * config.dt,
            });
        }
        let save = (periodic || stop) && n0 < config.n_steps;
        if save || state.observers.pending() >= REDUCE_BATCH || n0 == config.n_steps {
            let t = Instant::now();
            state.observers.reduce(comm);
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
        observers,
        extra,
        ..
    } = state;
    Ok(RunResult {
        events,
        build_memory,
        local,
        observers,
        v,
        refractory,
        extra,
        n_synapses,
        bytes,
        timers,
        emulated: control.emulate.map(|e| (e.rank, e.ranks)),
    })
}
