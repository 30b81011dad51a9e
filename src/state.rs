//! The state of a rank's neurons during a run (what the step loop advances and a checkpoint
//! saves and restores), and what a rank holds when the run ends.

use crate::aggregate::Aggregates;
use crate::config::Config;
use crate::exchange::RingBuffer;
use crate::observables::Recorder;
use crate::rng::Stream;
use crate::trees::TreeRecorder;
use std::ops::Range;

/// The dynamic state of a rank's neurons: everything a checkpoint saves.
pub struct Dynamic {
    /// Membrane potential of each local neuron \[mV\].
    pub v: Vec<f64>,
    /// Remaining refractory steps of each local neuron.
    pub refractory: Vec<u32>,
    /// Each local neuron's dynamics stream.
    pub rngs: Vec<Stream>,
    /// Synaptic input scheduled for the coming steps (negative values, weight times efficacy,
    /// onto current and conductance synapses in `ring_i`).
    pub ring: RingBuffer,
    pub ring_i: Option<RingBuffer>,
    pub recorder: Recorder,
    pub trees: TreeRecorder,
    /// Local spikes as (gid, step), in step order and ascending gid within a step (a resumed
    /// run holds the spikes before its first step sorted by gid, which the writers keep).
    pub spikes: Vec<(u32, u32)>,
    /// State beyond V of the general models (empty vectors where no population uses them).
    pub extra: Extra,
    pub aggregates: Aggregates,
}

/// The state variables of general models, per local neuron (see [`crate::model::neuron`]).
pub struct Extra {
    /// FitzHugh-Nagumo recovery variable.
    pub w: Vec<f64>,
    /// Synaptic currents or conductances, excitatory and inhibitory.
    pub syn_e: Vec<f64>,
    pub syn_i: Vec<f64>,
    /// Labels, `stride` per neuron, and their environments, `stride^2` per neuron.
    pub lambda: Vec<f64>,
    pub beta: Vec<f64>,
    /// The largest number of label classes (0: no labels).
    pub stride: usize,
    /// Whether some population is FitzHugh-Nagumo, or has current or conductance synapses.
    pub fhn: bool,
    pub syn: bool,
}

impl Extra {
    pub fn new(config: &Config, local: &Range<u64>) -> Extra {
        let n = (local.end - local.start) as usize;
        let pops = &config.populations;
        let any =
            |f: &dyn Fn(&crate::model::neuron::Neuron) -> bool| pops.iter().any(|p| f(&p.model));
        let per = |used: bool, f: &dyn Fn(u64) -> f64| -> Vec<f64> {
            if used {
                local.clone().map(f).collect()
            } else {
                Vec::new()
            }
        };
        let stride = pops
            .iter()
            .filter_map(|p| p.model.labels.as_ref().map(|l| l.k()))
            .max()
            .unwrap_or(0);
        let fhn = any(&|m| m.kind == crate::config::ModelKind::Fhn);
        let syn = any(&|m| m.synapse != crate::config::SynapseKind::Delta);
        let mut extra = Extra {
            w: per(fhn, &|g| pops[config.population_of(g)].model.w_init),
            syn_e: per(syn, &|_| 0.0),
            syn_i: per(syn, &|_| 0.0),
            lambda: vec![0.0; n * stride],
            beta: vec![0.0; n * stride * stride],
            stride,
            fhn,
            syn,
        };
        if stride > 0 {
            for (i, g) in local.clone().enumerate() {
                if let Some(l) = &pops[config.population_of(g)].model.labels {
                    let k = l.k();
                    l.init(
                        config.seed,
                        g,
                        &mut extra.lambda[i * stride..i * stride + k],
                        &mut extra.beta[i * stride * stride..i * stride * stride + k * k],
                    );
                }
            }
        }
        extra
    }

    /// The outgoing efficacy `sum_k lambda_k u_k` of local neuron `i` of a population with
    /// `labels` (1 without).
    pub fn efficacy(&self, labels: Option<&crate::model::labels::Labels>, i: usize) -> f64 {
        labels.map_or(1.0, |l| {
            l.efficacy(&self.lambda[i * self.stride..i * self.stride + l.k()])
        })
    }
}

/// Wall time per phase on one rank \[s\].
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

/// What one rank holds at the end of a run.
pub struct RunResult {
    /// The gids this rank owned.
    pub local: Range<u64>,
    pub recorder: Recorder,
    pub trees: TreeRecorder,
    /// Local spikes as (gid, step), sorted by step within each gid.
    pub spikes: Vec<(u32, u32)>,
    /// Final membrane potential of each local neuron \[mV\].
    pub v: Vec<f64>,
    /// Final remaining refractory steps of each local neuron.
    pub refractory: Vec<u32>,
    /// Final state of general models (labels, recovery variable, synaptic variables).
    pub extra: Extra,
    pub n_synapses: u64,
    /// Synaptic events delivered to this rank's neurons.
    pub events: u64,
    /// Peak resident memory once the network and state are built \[bytes\].
    pub build_memory: u64,
    /// Bytes held by synapse tables, ring buffers and neuron state on this rank.
    pub bytes: u64,
    pub timers: Timers,
}
