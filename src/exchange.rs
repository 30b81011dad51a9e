//! Spike delivery: per-neuron delay ring buffers and the scatter of exchanged spikes into them.
//!
//! Slot `n % slots` holds the summed weight arriving at each local neuron in step `n`. A spike
//! emitted in step `n` through a synapse of delay `d >= 1` lands in slot `n + d`, never in the
//! slot being read, so reading and delivering do not race.
//!
//! The weights arriving at one neuron in one step are added in a fixed order (projection, then
//! source gid ascending, then synapse order), which does not depend on the decomposition, so the
//! floating-point sums are identical for every number of ranks.

use crate::connectivity::Connectivity;

pub struct RingBuffer {
    slots: usize,
    n: usize,
    data: Vec<f64>,
}

impl RingBuffer {
    pub fn new(max_delay: u32, n_local: usize) -> Self {
        let slots = max_delay as usize + 1;
        RingBuffer {
            slots,
            n: n_local,
            data: vec![0.0; slots * n_local],
        }
    }

    /// The inputs arriving in step `step`, one per local neuron.
    pub fn slot_mut(&mut self, step: u64) -> &mut [f64] {
        let s = (step % self.slots as u64) as usize;
        &mut self.data[s * self.n..(s + 1) * self.n]
    }

    /// Adds the synaptic effect of `spikes` (global gids, ascending), emitted in step `step`;
    /// returns the number of synaptic events delivered on this rank and adds those of each
    /// projection to `per_table`.
    pub fn deliver(
        &mut self,
        step: u64,
        conn: &Connectivity,
        spikes: &[u32],
        per_table: &mut [u64],
    ) -> u64 {
        let mut total = 0;
        for (table, count) in conn.tables.iter().zip(per_table) {
            let mut events = 0;
            let slot = self.slot_mut(step + u64::from(table.delay_steps));
            let lo = spikes.partition_point(|&g| u64::from(g) < table.source_start);
            let end = table.source_start + table.n_sources();
            let hi = spikes.partition_point(|&g| u64::from(g) < end);
            let w = table.weight;
            let spikes = &spikes[lo..hi];
            for (i, &g) in spikes.iter().enumerate() {
                // Touch the start of the next spike's run: the load is independent of the
                // scatter below, so its cache miss overlaps with it (a software prefetch).
                if let Some(&next) = spikes.get(i + 1) {
                    let run = table.targets_of(u64::from(next) - table.source_start);
                    std::hint::black_box(run.first());
                }
                let targets = table.targets_of(u64::from(g) - table.source_start);
                events += targets.len() as u64;
                for &t in targets {
                    slot[t as usize] += w;
                }
            }
            *count += events;
            total += events;
        }
        total
    }

    /// Number of slots: the largest delay + 1.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The contents as seen from step `step`, neuron-major: entry `i * slots + k` is the input
    /// arriving at local neuron `i` in step `step + k`. Independent of how neurons are spread
    /// over ranks, so a checkpoint written on R ranks can be read on any other number.
    pub fn to_neuron_major(&self, step: u64) -> Vec<f64> {
        let mut out = vec![0.0; self.data.len()];
        for k in 0..self.slots {
            let s = ((step + k as u64) % self.slots as u64) as usize;
            for (i, &x) in self.data[s * self.n..(s + 1) * self.n].iter().enumerate() {
                out[i * self.slots + k] = x;
            }
        }
        out
    }

    /// Restores the contents from [`RingBuffer::to_neuron_major`] at the same `step`.
    pub fn set_neuron_major(&mut self, step: u64, values: &[f64]) {
        assert_eq!(values.len(), self.data.len(), "ring buffer size");
        for k in 0..self.slots {
            let s = ((step + k as u64) % self.slots as u64) as usize;
            for (i, x) in self.data[s * self.n..(s + 1) * self.n]
                .iter_mut()
                .enumerate()
            {
                *x = values[i * self.slots + k];
            }
        }
    }

    pub fn bytes(&self) -> u64 {
        8 * self.data.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The neuron-major view taken at one step and restored at the same step into a buffer
    /// whose slots are laid out differently reads back the same input for every future step.
    #[test]
    fn neuron_major_round_trip_preserves_future_inputs() {
        let mut a = RingBuffer::new(3, 5);
        for (j, x) in a.data.iter_mut().enumerate() {
            *x = j as f64 * 0.5 + 1.0;
        }
        let step = 7;
        let view = a.to_neuron_major(step);
        assert_eq!(view[2 * 4 + 1], a.slot_mut(step + 1)[2]);
        let mut b = RingBuffer::new(3, 5);
        b.set_neuron_major(step, &view);
        for k in 0..4 {
            assert_eq!(a.slot_mut(step + k).to_vec(), b.slot_mut(step + k).to_vec());
        }
    }
}
