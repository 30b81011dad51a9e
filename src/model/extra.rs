//! The state variables of the general models beyond V and the refractory counter, per local
//! neuron, and the one list of their columns (name, width, units, meaning) that the
//! checkpoint, the output's final state and recording read.

use crate::config::Config;
use std::ops::Range;

/// One per-neuron column of [`Extra`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    W,
    SynE,
    SynI,
    Lambda,
    Beta,
}

impl Column {
    pub const ALL: [Column; 5] = [
        Column::W,
        Column::SynE,
        Column::SynI,
        Column::Lambda,
        Column::Beta,
    ];

    /// Its name in files and configurations.
    pub fn name(self) -> &'static str {
        match self {
            Column::W => "w",
            Column::SynE => "syn_e",
            Column::SynI => "syn_i",
            Column::Lambda => "lambda",
            Column::Beta => "beta",
        }
    }

    pub fn units(self) -> &'static str {
        match self {
            Column::W | Column::Lambda | Column::Beta => "1",
            Column::SynE | Column::SynI => "mV/ms or 1/ms",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Column::W => "FitzHugh-Nagumo recovery variable (0 for other models)",
            Column::SynE => "excitatory synaptic current [mV/ms] or conductance [1/ms] (0 for delta synapses)",
            Column::SynI => "inhibitory synaptic current [mV/ms] or conductance [1/ms] (0 for delta synapses)",
            Column::Lambda => "label: probabilities over the population's K efficacy classes, zero-padded to the largest K",
            Column::Beta => "random environment of the labels' transitions (K_max x K_max, row major, zero-padded)",
        }
    }
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
        let any = |f: &dyn Fn(&super::neuron::Neuron) -> bool| pops.iter().any(|p| f(&p.model));
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
    pub fn efficacy(&self, labels: Option<&super::labels::Labels>, i: usize) -> f64 {
        labels.map_or(1.0, |l| {
            l.efficacy(&self.lambda[i * self.stride..i * self.stride + l.k()])
        })
    }
}

impl Extra {
    /// Values per neuron of `column`.
    pub fn width(&self, column: Column) -> usize {
        match column {
            Column::W | Column::SynE | Column::SynI => 1,
            Column::Lambda => self.stride,
            Column::Beta => self.stride * self.stride,
        }
    }

    /// Whether `column` is held (the same on every rank): w with a FitzHugh-Nagumo
    /// population, the synaptic variables with current or conductance synapses, labels and
    /// environments with labels.
    pub fn holds(&self, column: Column) -> bool {
        match column {
            Column::W => self.fhn,
            Column::SynE | Column::SynI => self.syn,
            Column::Lambda | Column::Beta => self.stride > 0,
        }
    }

    /// The columns held.
    pub fn columns(&self) -> impl Iterator<Item = Column> + '_ {
        Column::ALL.into_iter().filter(|&c| self.holds(c))
    }

    /// The values of `column`, `width` per local neuron (empty when not held).
    pub fn values(&self, column: Column) -> &[f64] {
        match column {
            Column::W => &self.w,
            Column::SynE => &self.syn_e,
            Column::SynI => &self.syn_i,
            Column::Lambda => &self.lambda,
            Column::Beta => &self.beta,
        }
    }

    pub fn values_mut(&mut self, column: Column) -> &mut Vec<f64> {
        match column {
            Column::W => &mut self.w,
            Column::SynE => &mut self.syn_e,
            Column::SynI => &mut self.syn_i,
            Column::Lambda => &mut self.lambda,
            Column::Beta => &mut self.beta,
        }
    }
}
