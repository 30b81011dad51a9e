//! The incoming synapses of one rank's neurons, grouped by source (CSR) so that delivering a
//! spike walks one contiguous run of target indices.
//!
//! A synapse costs 4 bytes (the target's local index); weight and delay are stored once per
//! projection, where they are constant.

use crate::config::Config;
use crate::network;
use std::ops::Range;

/// One projection's synapses onto this rank's neurons.
pub struct ProjectionTable {
    /// Gid of the source population's first neuron.
    pub source_start: u64,
    /// `targets[offsets[s]..offsets[s + 1]]` are the local targets of source offset `s`,
    /// ascending (repeated for multapses).
    pub offsets: Vec<u64>,
    pub targets: Vec<u32>,
    /// [mV]
    pub weight: f64,
    pub delay_steps: u32,
}

impl ProjectionTable {
    pub fn n_sources(&self) -> u64 {
        self.offsets.len() as u64 - 1
    }

    pub fn targets_of(&self, source_offset: u64) -> &[u32] {
        let s = source_offset as usize;
        &self.targets[self.offsets[s] as usize..self.offsets[s + 1] as usize]
    }
}

pub struct Connectivity {
    pub tables: Vec<ProjectionTable>,
}

impl Connectivity {
    /// Builds the incoming synapses of the neurons `local` (a contiguous gid range).
    pub fn build(config: &Config, local: Range<u64>) -> Connectivity {
        let mut sources = Vec::new();
        let tables = config
            .projections
            .iter()
            .enumerate()
            .map(|(k, proj)| {
                let src = &config.populations[proj.source];
                let tgt = config.populations[proj.target].gids();
                let mine = tgt.start.max(local.start)..tgt.end.min(local.end);
                // Two passes over the same streams: count the synapses of each source, then
                // regenerate them and place each target directly (a counting sort without
                // storing the (source, target) pairs), so building never needs more than the
                // final 4 bytes per synapse. Targets come in ascending order within a source.
                let mut offsets = vec![0u64; src.size as usize + 1];
                for gid in mine.clone() {
                    sources.clear();
                    network::sources_of(config, k, gid, &mut sources);
                    for &s in &sources {
                        offsets[s as usize + 1] += 1;
                    }
                }
                for i in 1..offsets.len() {
                    offsets[i] += offsets[i - 1];
                }
                let mut fill = offsets.clone();
                let mut targets = vec![0u32; offsets[src.size as usize] as usize];
                for gid in mine {
                    sources.clear();
                    network::sources_of(config, k, gid, &mut sources);
                    let t = (gid - local.start) as u32;
                    for &s in &sources {
                        targets[fill[s as usize] as usize] = t;
                        fill[s as usize] += 1;
                    }
                }
                ProjectionTable {
                    source_start: src.gid_start,
                    offsets,
                    targets,
                    weight: proj.weight,
                    delay_steps: proj.delay_steps,
                }
            })
            .collect();
        Connectivity { tables }
    }

    pub fn n_synapses(&self) -> u64 {
        self.tables.iter().map(|t| t.targets.len() as u64).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.tables
            .iter()
            .map(|t| 4 * t.targets.len() as u64 + 8 * t.offsets.len() as u64)
            .sum()
    }

    pub fn max_delay(&self) -> u32 {
        self.tables.iter().map(|t| t.delay_steps).max().unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splitting the neurons over ranks gives the same synapses as one rank builds.
    #[test]
    fn union_over_blocks_equals_the_whole() {
        let text = "[population.E]\nsize = 120\n[population.I]\nsize = 30\n\
            [projection.EI]\nsource = \"E\"\ntarget = \"I\"\nrule = \"fixed_indegree\"\nindegree = 12\nweight = 0.1\ndelay = 1.0\n\
            [projection.IE]\nsource = \"I\"\ntarget = \"E\"\nrule = \"bernoulli\"\np = 0.2\nweight = -0.5\ndelay = 2.0\n";
        let c = Config::from_toml(text, &[]).unwrap();
        let edges = |conn: &Connectivity, base: u64| -> Vec<(usize, u64, u64)> {
            let mut e = Vec::new();
            for (k, t) in conn.tables.iter().enumerate() {
                for s in 0..t.n_sources() {
                    for &tg in t.targets_of(s) {
                        e.push((k, t.source_start + s, base + u64::from(tg)));
                    }
                }
            }
            e
        };
        let mut whole = edges(&Connectivity::build(&c, 0..150), 0);
        let mut parts: Vec<_> = [0..37, 37..101, 101..150]
            .into_iter()
            .flat_map(|r| edges(&Connectivity::build(&c, r.clone()), r.start))
            .collect();
        whole.sort_unstable();
        parts.sort_unstable();
        assert_eq!(whole, parts);
        assert_eq!(whole.iter().filter(|e| e.0 == 0).count(), 30 * 12);
    }
}
