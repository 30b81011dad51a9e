//! The spike exchange: the message every rank sends each window ([`Exchange`]), per-neuron
//! delay ring buffers, and the scatter of exchanged spikes into them ([`deliver`]).
//!
//! Slot `n % slots` holds the summed weight arriving at each local neuron in step `n`. A spike
//! emitted in step `n` through a synapse of delay `d >= 1` lands in slot `n + d`, never in the
//! slot being read, so reading and delivering do not race.
//!
//! The weights arriving at one neuron in one step are added in a fixed order (projection, then
//! source gid ascending, then synapse order), which does not depend on the decomposition, so the
//! floating-point sums are identical for every number of ranks; arrivals through constant
//! weights are counted instead and added last, `weight * count` per distinct weight
//! ([`Counting`]).

use crate::comm::Comm;
use crate::config::{Config, ConnRule};
use crate::connectivity::{prefetch, prefetch_all, Connectivity, Loc, Local, ProjectionTable};
use crate::model::lif::DIVERGED;
use crate::with_targets;
use std::ops::Range;

/// Words before the per-step counts in each rank's exchange message: the gid + 1 of a neuron
/// whose state diverged (0: none), the step, within the window, when it did, whether this
/// rank was asked to stop, and the microseconds it worked since the previous exchange.
///
/// The last word measures waiting without another collective: every rank leaves an
/// all-gather at about the same moment, so in the next one rank `r` waits for the slowest,
/// `max_k work_k - work_r`.
pub(crate) const HEADER: usize = 4;

/// What every rank learns from one exchange, the same on all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// The first neuron (lowest rank, then earliest step) whose state diverged: its gid and
    /// the step within the window.
    pub diverged: Option<(u64, u64)>,
    /// Whether some rank was asked to stop.
    pub stop: bool,
    /// The longest any rank worked since the previous exchange \[µs\].
    pub slowest: u32,
}

/// The spike exchange of a window of steps. Each rank sends one message: a header of four words (`HEADER`), the
/// number of its spikes in each step, then step by step their gids (ascending), each step's
/// gids followed by their efficacies as two words each (the bits of an `f64`) where spikes
/// carry one. The [`Route`] gives every rank every message (or the part of it that concerns
/// the rank); the ranks' gids of one step, concatenated in rank order, are that step's globally
/// ascending list (or the part of it with local targets), so delivering the steps in order
/// makes the same additions in the same order as exchanging every step.
pub struct Exchange {
    carries_efficacy: bool,
    route: Route,
    /// The first step of the current window.
    first_step: u64,
    send: Vec<u32>,
    gathered: Vec<u32>,
    /// Per rank, after [`Exchange::exchange`]: where its counts start, and its next unread
    /// word.
    parts: Vec<(usize, usize)>,
    steps: usize,
    /// Where the current step's gids start in `send`, and how many there are.
    step_start: usize,
    step_count: usize,
    /// \[s\] Spent making the other ranks' messages of an emulated run (inside
    /// [`Exchange::exchange`], but not the collective's cost).
    pub synthetic: f64,
}

/// How the ranks' messages travel.
pub enum Route {
    /// Every rank's whole message to every rank: one all-gather-v.
    AllGather,
    /// Each spike only to the ranks that hold targets of its source (an all-to-all-v; every
    /// rank still gets every header).
    Targeted(Targeted),
    /// One rank of a decomposition emulated in one process: the other ranks' messages are made
    /// up ([`crate::emulate`]).
    Emulated(Box<dyn OtherRanks>),
}

/// The other ranks of an emulated decomposition.
pub trait OtherRanks {
    /// Every rank's message of the window of `steps` steps from `first_step`, concatenated in
    /// rank order into `out`, the emulated rank's being `own`.
    fn messages(&mut self, own: &[u32], first_step: u64, steps: usize, out: &mut Vec<u32>);
}

/// The routing table of [`Route::Targeted`]: for each rank, which local neurons it needs.
pub struct Targeted {
    /// Per rank `q`, a bitmap over the local neurons (bit `i` of word `i / 32`): `q` holds
    /// targets of local neuron `i`.
    needs: Vec<Vec<u32>>,
    /// The gid of local neuron 0.
    first_gid: u64,
    /// The parts of the current message, rank by rank, and their lengths.
    parts: Vec<u32>,
    counts: Vec<usize>,
}

impl Targeted {
    /// The routing table of the rank holding `local` under `partition` (collective): every rank
    /// marks the sources with synapses on it and sends each rank the marks of its neurons.
    pub fn new(
        conn: &Connectivity,
        partition: &crate::partition::Partition,
        local: &std::ops::Range<u64>,
        comm: &dyn Comm,
    ) -> Self {
        let ranks = comm.size();
        // One bitmap per rank over its neurons, concatenated: the sources present here.
        let ranges: Vec<_> = (0..ranks).map(|q| partition.range(q)).collect();
        let counts: Vec<usize> = ranges
            .iter()
            .map(|r| (r.end - r.start).div_ceil(32) as usize)
            .collect();
        let starts: Vec<usize> = counts
            .iter()
            .scan(0, |at, &c| {
                let s = *at;
                *at += c;
                Some(s)
            })
            .collect();
        let mut send = vec![0u32; counts.iter().sum()];
        for table in &conn.tables {
            for (s, _, _) in table.runs() {
                let g = table.source_start + s;
                let q = partition.owner(g);
                let i = (g - ranges[q].start) as usize;
                send[starts[q] + i / 32] |= 1 << (i % 32);
            }
        }
        let mut got = Vec::new();
        comm.all_to_all_u32(&send, &counts, &mut got);
        let words = (local.end - local.start).div_ceil(32) as usize;
        let needs = got.chunks(words.max(1)).map(<[u32]>::to_vec).collect();
        Targeted {
            needs: if words == 0 {
                vec![Vec::new(); ranks]
            } else {
                needs
            },
            first_gid: local.start,
            parts: Vec::new(),
            counts: vec![0; ranks],
        }
    }

    /// Cuts `message` (a window of `steps` steps, `words` words per spike) into one part per
    /// rank: the header, and per step the spikes that rank needs.
    fn split(&mut self, message: &[u32], steps: usize, words: usize) {
        self.parts.clear();
        let mut kept = Vec::new();
        for (q, needs) in self.needs.iter().enumerate() {
            let start = self.parts.len();
            self.parts.extend_from_slice(&message[..HEADER + steps]);
            let mut at = HEADER + steps;
            for k in 0..steps {
                let n = message[HEADER + k] as usize;
                let gids = &message[at..at + n];
                kept.clear();
                kept.extend((0..n).filter(|&j| {
                    let i = (u64::from(gids[j]) - self.first_gid) as usize;
                    needs[i / 32] >> (i % 32) & 1 == 1
                }));
                self.parts.extend(kept.iter().map(|&j| gids[j]));
                if words == 3 {
                    // The efficacies follow the step's gids, two words each.
                    let effs = &message[at + n..at + 3 * n];
                    for &j in &kept {
                        self.parts.extend_from_slice(&effs[2 * j..2 * j + 2]);
                    }
                }
                self.parts[start + HEADER + k] = kept.len() as u32;
                at += words * n;
            }
            self.counts[q] = self.parts.len() - start;
        }
    }
}

impl Exchange {
    /// `carries_efficacy`: spikes carry their source's efficacy (some population has labels).
    pub fn new(carries_efficacy: bool, route: Route) -> Self {
        Exchange {
            carries_efficacy,
            route,
            first_step: 0,
            send: Vec::new(),
            gathered: Vec::new(),
            parts: Vec::new(),
            steps: 0,
            step_start: 0,
            step_count: 0,
            synthetic: 0.0,
        }
    }

    /// Starts a window of `steps` steps, the first of them step `first_step`.
    pub fn begin_window(&mut self, first_step: u64, steps: usize) {
        self.first_step = first_step;
        self.send.clear();
        self.send.resize(HEADER + steps, 0);
        self.steps = steps;
    }

    /// Starts a step: the neuron updates append the gids that spike to [`Exchange::outbox`],
    /// ascending, with [`DIVERGED`] set on a neuron whose state is no longer finite.
    pub fn begin_step(&mut self) {
        self.step_start = self.send.len();
        self.step_count = 0;
    }

    pub fn outbox(&mut self) -> &mut Vec<u32> {
        &mut self.send
    }

    /// Ends step `k` of the window: the first diverged neuron goes into the header (the marks
    /// are cleared) and the step's count is written. Returns the count.
    pub fn end_step(&mut self, k: usize) -> usize {
        let (header, fired) = self.send.split_at_mut(self.step_start);
        for g in fired.iter_mut().filter(|g| **g & DIVERGED != 0) {
            *g &= !DIVERGED;
            if header[0] == 0 {
                header[0] = *g + 1;
                header[1] = k as u32;
            }
        }
        self.step_count = self.send.len() - self.step_start;
        self.send[HEADER + k] =
            u32::try_from(self.step_count).expect("fewer than 2^32 local neurons");
        self.step_count
    }

    /// The local gids that spiked in the step just ended.
    pub fn fired(&self) -> &[u32] {
        &self.send[self.step_start..self.step_start + self.step_count]
    }

    /// Appends the efficacy of the step's next spike, in the order of [`Exchange::fired`]
    /// (only where spikes carry one).
    pub fn push_efficacy(&mut self, e: f64) {
        debug_assert!(self.carries_efficacy);
        let bits = e.to_bits();
        self.send.push(bits as u32);
        self.send.push((bits >> 32) as u32);
    }

    /// The collective: every rank's message to every rank. `stop`: this rank was asked to
    /// stop; `work`: microseconds it worked since the previous exchange.
    pub fn exchange(&mut self, comm: &dyn Comm, stop: bool, work: u32) -> Received {
        self.send[2] = u32::from(stop);
        self.send[3] = work;
        let words_per_spike = if self.carries_efficacy { 3 } else { 1 };
        match &mut self.route {
            Route::AllGather => comm.all_gather_u32(&self.send, &mut self.gathered),
            Route::Targeted(t) => {
                t.split(&self.send, self.steps, words_per_spike);
                comm.all_to_all_u32(&t.parts, &t.counts, &mut self.gathered);
            }
            Route::Emulated(e) => {
                let t = std::time::Instant::now();
                e.messages(&self.send, self.first_step, self.steps, &mut self.gathered);
                self.synthetic += t.elapsed().as_secs_f64();
            }
        }
        let g = &self.gathered;
        let mut r = Received {
            diverged: None,
            stop: false,
            slowest: 0,
        };
        self.parts.clear();
        let mut pos = 0;
        while pos < g.len() {
            r.stop |= g[pos + 2] != 0;
            r.slowest = r.slowest.max(g[pos + 3]);
            if g[pos] != 0 && r.diverged.is_none() {
                r.diverged = Some((u64::from(g[pos] - 1), u64::from(g[pos + 1])));
            }
            let counts = pos + HEADER;
            let total: usize = g[counts..counts + self.steps]
                .iter()
                .map(|&c| c as usize)
                .sum();
            self.parts.push((counts, counts + self.steps));
            pos = counts + self.steps + total * words_per_spike;
        }
        r
    }

    /// The global spikes of step `k` of the window, ascending, and their efficacies (left
    /// empty where spikes carry none). Called for `k = 0, 1, ...` in turn after
    /// [`Exchange::exchange`].
    pub fn step(&mut self, k: usize, spikes: &mut Vec<u32>, efficacies: &mut Vec<f64>) {
        spikes.clear();
        efficacies.clear();
        let g = &self.gathered;
        for (counts, next) in self.parts.iter_mut() {
            let c = g[*counts + k] as usize;
            spikes.extend_from_slice(&g[*next..*next + c]);
            *next += c;
            if self.carries_efficacy {
                efficacies.extend(
                    g[*next..*next + 2 * c]
                        .chunks_exact(2)
                        .map(|b| f64::from_bits(u64::from(b[0]) | (u64::from(b[1]) << 32))),
                );
                *next += 2 * c;
            }
        }
    }
}

/// What the spikes of one step delivered through one projection on this rank.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Synaptic events.
    pub events: u64,
    /// The input, exact integer sums (the same for any decomposition) split into positive and
    /// negative parts. Where weights are per synapse: the sum over events of the synapse's
    /// weight cut to a multiple of 2^-32 mV times the spike's efficacy cut to a multiple of
    /// 2^-32 (1 without labels), in units of 2^-64 mV, by the sign of that product. Where the
    /// projection's weight `w` is constant: the sum over events of the spike's efficacy alone
    /// (1 without labels), in units of 2^-32, by the efficacy's sign, so that `w` times it is
    /// the input with `w` exact.
    pub input: [i128; 2],
}

/// The most bytes of counts one table's merged window may touch (one slot per step of the
/// window: 2 bytes per local neuron each), against a 1 MiB L2 cache per core; beyond it each step
/// is counted apart. Measured: merging made 10^6 neurons on 2 ranks (500,000 per rank, 15
/// steps: 15 MB of counts) 1.5-1.8x slower in delivery, and Brunel (12,500: 375 KB) faster.
const MERGE_BYTES: usize = 512 * 1024;

/// Spikes looked up together in delivery, a stage of the pipeline of [`each_run`] (16 and 32
/// measured alike at 1,024 emulated ranks).
const CHUNK: usize = 16;

/// 1 in units of 2^-32, the scale of a spike without an efficacy.
const ONE: i128 = 1 << 32;

/// Constant-weight tables whose arrivals are counted rather than summed (see
/// [`RingBuffer`]): for each table, the class of its weight in this ring, if counted.
#[derive(Clone, Debug, Default)]
pub struct Counting {
    class_of: Vec<Option<usize>>,
    weights: Vec<f64>,
}

impl Counting {
    /// The counted classes of `ring` (`negative` false) and `ring_i` (true). A table is counted
    /// where its weight is constant, spikes carry no efficacy (`payload` false) and the number of
    /// synapses of its class onto one neuron cannot exceed `u16::MAX` by the projections' rules
    /// (a fixed in-degree, or a Bernoulli rule's source population; never for edge files): a
    /// neuron's arrivals of one class in one step then fit in a count. The choice depends on the
    /// configuration alone, so it is the same for every decomposition. Tables of signed
    /// projections (onto current or conductance synapses) count into `ring_i` where their
    /// weight is negative.
    pub fn new(config: &Config, conn: &Connectivity, payload: bool, negative: bool) -> Counting {
        let ring_of = |k: usize| config.signed_channels(k) && config.projections[k].weight < 0.0;
        let bound = |k: usize| {
            let p = &config.projections[k];
            match &p.rule {
                ConnRule::FixedIndegree { indegree, .. } => Some(*indegree),
                ConnRule::Bernoulli { .. } => Some(config.populations[p.source].size),
                ConnRule::File(_) => None,
            }
        };
        let counted = |t: &ProjectionTable| {
            let k = t.projection;
            let eligible = !payload && t.weights.is_empty() && ring_of(k) == negative;
            bound(k).filter(|_| eligible)
        };
        // Distinct weights in table order: their bits, the projections of each and the
        // largest number of their synapses onto one neuron (a projection's tables, one per
        // delay, share its in-degree).
        let mut classes: Vec<(u64, Vec<usize>, u64)> = Vec::new();
        for t in &conn.tables {
            let Some(b) = counted(t) else { continue };
            let bits = t.weight.to_bits();
            let i = match classes.iter().position(|c| c.0 == bits) {
                Some(i) => i,
                None => {
                    classes.push((bits, Vec::new(), 0));
                    classes.len() - 1
                }
            };
            let (_, projections, indegree) = &mut classes[i];
            if !projections.contains(&t.projection) {
                projections.push(t.projection);
                *indegree = indegree.saturating_add(b);
            }
        }
        // A class whose arrivals could overflow a count is summed instead.
        let weights: Vec<u64> = classes
            .iter()
            .filter(|c| c.2 <= u64::from(u16::MAX))
            .map(|c| c.0)
            .collect();
        let class_of = conn
            .tables
            .iter()
            .map(|t| {
                let bits = t.weight.to_bits();
                counted(t).and_then(|_| weights.iter().position(|&w| w == bits))
            })
            .collect();
        Counting {
            class_of,
            weights: weights.into_iter().map(f64::from_bits).collect(),
        }
    }

    /// The number of counted weights.
    pub fn classes(&self) -> usize {
        self.weights.len()
    }
}

/// The input scheduled for the next `slots` steps of each local neuron.
///
/// Spikes through tables with one weight for all synapses (see [`Counting`]) are counted per
/// target in 16-bit integers, one array per distinct weight and slot, and added to the
/// floating-point slot, `weight * count` per class, in [`RingBuffer::settle`] before the slot
/// is read: a quarter of the memory the scattered writes touch. Every other spike adds its
/// weight into the slot directly. Both orders are fixed by the configuration (deliveries in
/// table and spike order, then the classes in order), so the sums are identical for any
/// number of ranks.
pub struct RingBuffer {
    slots: usize,
    n: usize,
    data: Vec<f64>,
    counting: Counting,
    /// Slot `s`, class `c`: `counts[counts_at(s, c, classes, n)]`.
    counts: Vec<u16>,
}

impl RingBuffer {
    pub fn new(max_delay: u32, n_local: usize, counting: Counting) -> Self {
        let slots = max_delay as usize + 1;
        RingBuffer {
            slots,
            n: n_local,
            data: crate::memory::huge(vec![0.0; slots * n_local]),
            counts: crate::memory::huge(vec![0; slots * counting.classes() * n_local]),
            counting,
        }
    }

    /// The inputs arriving in step `step`, one per local neuron (complete once
    /// [`RingBuffer::settle`] has been called for the step).
    pub fn slot_mut(&mut self, step: u64) -> &mut [f64] {
        let s = (step % self.slots as u64) as usize;
        &mut self.data[s * self.n..(s + 1) * self.n]
    }

    /// Adds the counted arrivals of the steps `steps` to their slots (`weight * count`, class
    /// by class) and clears the counts. Call it once for each step, when no more spikes can
    /// reach it (at the same point of the run on every decomposition: adding a zero count turns
    /// an input of -0.0 into +0.0).
    pub fn settle(&mut self, steps: Range<u64>) {
        let n = self.n;
        let classes = self.counting.classes();
        for step in steps {
            let s = (step % self.slots as u64) as usize;
            let slot = &mut self.data[s * n..(s + 1) * n];
            let counts = &mut self.counts[counts_at(s, 0, classes, n).start..][..classes * n];
            settle_slot(slot, counts, &self.counting.weights);
        }
    }

    /// Adds the synaptic effect of `spikes` (global gids, ascending), emitted in step `step`,
    /// through every table; returns the number of synaptic events delivered on this rank and
    /// adds what each projection delivered to `per_projection` (indexed by projection, not by
    /// table).
    pub fn deliver(
        &mut self,
        step: u64,
        conn: &Connectivity,
        spikes: &[u32],
        per_projection: &mut [Delivered],
    ) -> u64 {
        let mut window = Window {
            steps: vec![(spikes.to_vec(), Vec::new())],
            ..Default::default()
        };
        let mut per_step = vec![per_projection.to_vec()];
        let total = deliver(self, None, &[], step, conn, &mut window, &mut per_step);
        per_projection.copy_from_slice(&per_step[0]);
        total
    }

    /// Adds the effect of `spikes` through one table that is not counted: each synapse's weight
    /// (times the spike's scale, when `scales` is not empty) into slot `step + delay` of its
    /// target, or, with `negative`, each negative value into that ring's slot instead. Returns
    /// the events and the input delivered.
    fn deliver_table(
        &mut self,
        negative: Option<&mut RingBuffer>,
        step: u64,
        table: &ProjectionTable,
        spikes: &[u32],
        scales: &[f64],
    ) -> Delivered {
        let mut events = 0;
        let mut input = [0i128; 2];
        let at = step + u64::from(table.delay_steps);
        let slot = self.slot_mut(at);
        let mut slot_neg = negative.map(|r| r.slot_mut(at));
        let bound = table.targets_below();
        assert!(
            bound <= slot.len() && slot_neg.as_ref().is_none_or(|n| bound <= n.len()),
            "a synapse's target beyond the rank's {} neurons",
            slot.len()
        );
        let (spikes, lo) = sources_of(table, spikes);
        let w = table.weight;
        let scales = if scales.is_empty() {
            &[][..]
        } else {
            &scales[lo..lo + spikes.len()]
        };
        each_run(table, spikes, |i, loc, range| {
            let n_targets = range.len();
            events += n_targets as u64;
            let scale = scales.get(i).copied();
            let e = scale.map_or(ONE, crate::fixed::fixed);
            if table.weights.is_empty() {
                input[usize::from(e < 0)] += e * n_targets as i128;
            } else {
                // A negative efficacy turns positive weights into negative input.
                let [pos, neg] = table.weight_sums[table.index.run_number(loc)];
                let parts = if e < 0 { [neg, pos] } else { [pos, neg] };
                for (sum, part) in input.iter_mut().zip(parts) {
                    *sum += part * e;
                }
            }
            let into = Sink {
                slot: &mut *slot,
                negative: slot_neg.as_deref_mut(),
            };
            let weights = table.weights_at(range.clone());
            // SAFETY: the run's targets are the table's, below `targets_below()`, which is
            // at most the length of both slots (asserted above); its weights are as many.
            with_targets!(table.targets(), range, |t| unsafe {
                add_run(t, weights, w, scale, into)
            });
        });
        Delivered { events, input }
    }

    /// Counts the arrivals of `spikes` (gids, ascending; spike `i` emitted in step
    /// `first + steps[i]`, without efficacies) through `table`, whose weight is class `class`,
    /// into the counts of step `first + steps[i] + delay`; adds the events and input of step
    /// offset `k` to `out[k]`.
    fn count_table(
        &mut self,
        class: usize,
        first: u64,
        table: &ProjectionTable,
        (spikes, steps): (&[u32], &[u32]),
        out: &mut [Delivered],
    ) {
        let (spikes, lo) = sources_of(table, spikes);
        let steps = &steps[lo..lo + spikes.len()];
        let (n, slots, classes) = (self.n, self.slots as u64, self.counting.classes());
        assert!(
            table.targets_below() <= n,
            "a synapse's target beyond the rank's {n} neurons"
        );
        let counts = &mut self.counts;
        each_run(table, spikes, |i, _, range| {
            let k = steps[i] as usize;
            let s = ((first + k as u64 + u64::from(table.delay_steps)) % slots) as usize;
            let counts = &mut counts[counts_at(s, class, classes, n)];
            out[k].events += range.len() as u64;
            out[k].input[0] += ONE * range.len() as i128;
            // SAFETY: the run's targets are the table's, below `targets_below() <= n`
            // (asserted above), the length of one class's counts of a slot.
            with_targets!(table.targets(), range, |t| unsafe { count_run(t, counts) });
        });
    }

    /// Number of slots: the largest delay + 1.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The contents as seen from step `step`, neuron-major: entry `i * slots + k` is the input
    /// arriving at local neuron `i` in step `step + k` (without the counted arrivals, see
    /// [`RingBuffer::counts_neuron_major`]). Independent of how neurons are spread over ranks,
    /// so a checkpoint written on R ranks can be read on any other number.
    pub fn to_neuron_major(&self, step: u64) -> Vec<f64> {
        to_neuron_major(&self.data, self.slots, 1, self.n, step)
    }

    /// Restores the contents from [`RingBuffer::to_neuron_major`] at the same `step`.
    pub fn set_neuron_major(&mut self, step: u64, values: &[f64]) {
        set_neuron_major(&mut self.data, values, self.slots, 1, self.n, step);
    }

    /// The counted arrivals as seen from step `step`, neuron-major: entry
    /// `(i * slots + k) * classes + c` is the count of class `c` arriving at local neuron `i`
    /// in step `step + k`.
    pub fn counts_neuron_major(&self, step: u64) -> Vec<u16> {
        let classes = self.counting.classes();
        to_neuron_major(&self.counts, self.slots, classes, self.n, step)
    }

    /// Restores the counts from [`RingBuffer::counts_neuron_major`] at the same `step`.
    pub fn set_counts_neuron_major(&mut self, step: u64, values: &[u16]) {
        let classes = self.counting.classes();
        set_neuron_major(&mut self.counts, values, self.slots, classes, self.n, step);
    }

    /// The number of counted weights (columns of counts per slot).
    pub fn classes(&self) -> usize {
        self.counting.classes()
    }

    /// The counted weights \[mV\], by class.
    pub fn weights(&self) -> &[f64] {
        &self.counting.weights
    }

    pub fn bytes(&self) -> u64 {
        8 * self.data.len() as u64 + 2 * self.counts.len() as u64
    }
}

/// `counts[t] += 1` for each target `t` of a run, four at a time and without a bounds check
/// per target (deliver 0.87x of the checked loop, Brunel, 1 rank).
///
/// # Safety
/// Every target must lie inside `counts`.
#[inline(always)]
unsafe fn count_run<T: Local>(targets: &[T], counts: &mut [u16]) {
    let mut chunks = targets.chunks_exact(4);
    for c in &mut chunks {
        for &t in c {
            // SAFETY: `t` lies inside `counts` (the caller's promise).
            unsafe { *counts.get_unchecked_mut(t.at()) += 1 };
        }
    }
    for &t in chunks.remainder() {
        counts[t.at()] += 1;
    }
}

/// `slot[i] += weights[c] * counts[c * n + i]` for each class `c` in order, clearing the
/// counts (`n` = `slot.len()`): in blocks of neurons that stay in L1 across the classes, with
/// AVX2 where the CPU has it (the same operations in the same order, so the same numbers).
fn settle_slot(slot: &mut [f64], counts: &mut [u16], weights: &[f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        unsafe { settle_slot_avx2(slot, counts, weights) };
        return;
    }
    settle_slot_base(slot, counts, weights);
}

/// [`settle_slot`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn settle_slot_avx2(slot: &mut [f64], counts: &mut [u16], weights: &[f64]) {
    settle_slot_base(slot, counts, weights);
}

#[inline(always)]
fn settle_slot_base(slot: &mut [f64], counts: &mut [u16], weights: &[f64]) {
    const BLOCK: usize = 1024;
    let n = slot.len();
    for (b, x) in slot.chunks_mut(BLOCK).enumerate() {
        for (c, &w) in weights.iter().enumerate() {
            let k = &mut counts[counts_at(0, c, weights.len(), n)][b * BLOCK..][..x.len()];
            for (x, k) in x.iter_mut().zip(k.iter_mut()) {
                *x += w * f64::from(*k);
                *k = 0;
            }
        }
    }
}

/// Where the counts of class `c` for slot `s` lie in [`RingBuffer`]'s counts (`classes`
/// classes, `n` neurons).
fn counts_at(s: usize, c: usize, classes: usize, n: usize) -> Range<usize> {
    let first = (s * classes + c) * n;
    first..first + n
}

/// `data` (slot `s`, column `c`, neuron `i` at `(s * width + c) * n + i`) seen from step
/// `step`, neuron-major: entry `(i * slots + k) * width + c` holds slot `step + k`.
fn to_neuron_major<T: Copy + Default>(
    data: &[T],
    slots: usize,
    width: usize,
    n: usize,
    step: u64,
) -> Vec<T> {
    let mut out = vec![T::default(); data.len()];
    for k in 0..slots {
        let s = ((step + k as u64) % slots as u64) as usize;
        for c in 0..width {
            let first = (s * width + c) * n;
            for (i, &x) in data[first..first + n].iter().enumerate() {
                out[(i * slots + k) * width + c] = x;
            }
        }
    }
    out
}

/// The inverse of [`to_neuron_major`] at the same `step`.
fn set_neuron_major<T: Copy>(
    data: &mut [T],
    values: &[T],
    slots: usize,
    width: usize,
    n: usize,
    step: u64,
) {
    assert_eq!(values.len(), data.len(), "ring buffer size");
    for k in 0..slots {
        let s = ((step + k as u64) % slots as u64) as usize;
        for c in 0..width {
            let first = (s * width + c) * n;
            for (i, x) in data[first..first + n].iter_mut().enumerate() {
                *x = values[(i * slots + k) * width + c];
            }
        }
    }
}

/// Where one run of a table adds its input: the floating-point slot, and the slot of negative
/// values (signed projections with per-synapse weights or efficacies).
struct Sink<'a> {
    slot: &'a mut [f64],
    negative: Option<&'a mut [f64]>,
}

/// Adds one spike's run: `targets` with per-synapse `weights` or the table's weight `w`, each
/// times the spike's efficacy `scale` (none: 1).
///
/// # Safety
/// Every target is below the length of `into`'s slots (a table's targets are below its
/// [`ProjectionTable::targets_below`], checked once per table against them), and `weights`,
/// where given, is as long as `targets`.
#[inline(always)]
unsafe fn add_run<T: Local>(
    targets: &[T],
    weights: Option<&[f32]>,
    w: f64,
    scale: Option<f64>,
    into: Sink,
) {
    let Sink { slot, negative } = into;
    // SAFETY (every access below): the caller's bound on the targets.
    let add = |slot: &mut [f64], t: T, x: f64| unsafe { *slot.get_unchecked_mut(t.at()) += x };
    match (weights, negative) {
        (None, neg) => {
            // One value for the whole run, hence one slot.
            let we = scale.map_or(w, |e| w * e);
            let slot = match neg {
                Some(neg) if we < 0.0 => neg,
                _ => slot,
            };
            for &t in targets {
                add(slot, t, we);
            }
        }
        (Some(weights), None) => match scale {
            None => {
                for (&t, &wk) in targets.iter().zip(weights) {
                    add(slot, t, f64::from(wk));
                }
            }
            Some(e) => {
                for (&t, &wk) in targets.iter().zip(weights) {
                    add(slot, t, f64::from(wk) * e);
                }
            }
        },
        (Some(weights), Some(neg)) => {
            let e = scale.unwrap_or(1.0);
            for (&t, &wk) in targets.iter().zip(weights) {
                let x = f64::from(wk) * e;
                if x < 0.0 {
                    add(neg, t, x);
                } else {
                    add(slot, t, x);
                }
            }
        }
    }
}

/// The spikes of `table`'s source population among `spikes` (gids, ascending), and the index of
/// the first.
fn sources_of<'a>(table: &ProjectionTable, spikes: &'a [u32]) -> (&'a [u32], usize) {
    let lo = spikes.partition_point(|&g| u64::from(g) < table.source_start);
    let end = table.source_start + table.n_sources();
    let hi = spikes.partition_point(|&g| u64::from(g) < end);
    (&spikes[lo..hi], lo)
}

/// Calls `f(i, j, range)` for each spike `i` of `spikes` (gids of `table`'s sources, ascending)
/// with synapses here: its run number and their positions, in order.
///
/// Runs lie at random places of a table much larger than the caches, and at many ranks so do
/// the index's blocks and starts. Spikes are looked up in chunks, in a pipeline of stages a
/// chunk apart, each asking the caches for what the next stage reads for every spike of its
/// chunk, so that the misses of a stage overlap: while chunk c is delivered, the first lines of
/// chunk c + 1's runs, the starts of chunk c + 2 and the blocks of chunk c + 3 are fetched;
/// each spike's whole run is fetched while the one before it is scattered.
#[inline(always)]
fn each_run(table: &ProjectionTable, spikes: &[u32], mut f: impl FnMut(usize, Loc, Range<usize>)) {
    let index = &table.index;
    let offset = |g: u32| u64::from(g) - table.source_start;
    let n_chunks = spikes.len().div_ceil(CHUNK) as isize;
    let chunk = |c: isize| {
        let c = c as usize;
        &spikes[c * CHUNK..((c + 1) * CHUNK).min(spikes.len())]
    };
    let mut located = [[None; CHUNK]; 2];
    // Where a spike's run lies and its positions (None: no synapses here).
    type Run = Option<(Loc, Range<usize>)>;
    let mut runs: [[Run; CHUNK]; 2] = std::array::from_fn(|_| std::array::from_fn(|_| None));
    for c in -3..n_chunks {
        if c + 3 < n_chunks {
            for &g in chunk(c + 3) {
                for line in index.block_lines(offset(g)) {
                    prefetch(line);
                }
            }
        }
        if (0..n_chunks).contains(&(c + 2)) {
            let located = &mut located[(c + 2) as usize % 2];
            for (l, &g) in located.iter_mut().zip(chunk(c + 2)) {
                *l = index.locate(offset(g));
                if let Some(loc) = *l {
                    prefetch(index.start_ptr(loc));
                }
            }
        }
        if (0..n_chunks).contains(&(c + 1)) {
            let next = chunk(c + 1);
            let located = &located[(c + 1) as usize % 2][..next.len()];
            for (run, l) in runs[(c + 1) as usize % 2].iter_mut().zip(located) {
                *run = l.map(|loc| (loc, index.range(loc)));
                if let Some((_, r)) = run {
                    with_targets!(table.targets(), r.clone(), |t| prefetch(t.as_ptr()));
                }
            }
        }
        if c < 0 {
            continue;
        }
        let first = c as usize * CHUNK;
        let runs = &runs[c as usize % 2][..chunk(c).len()];
        for (k, run) in runs.iter().enumerate() {
            if let Some(Some((_, r))) = runs.get(k + 1) {
                with_targets!(table.targets(), r.clone(), |t| prefetch_all(t));
                prefetch_all(table.weights_at(r.clone()).unwrap_or_default());
            }
            // A source without targets here costs one look at its block of the index.
            if let Some((loc, range)) = run.clone() {
                f(first + k, loc, range);
            }
        }
    }
}

/// The spikes of one exchange window, step by step, as [`deliver`] takes them.
pub struct Window {
    /// Per step of the window: the spikes (gids, ascending) and their efficacies (empty: 1).
    pub steps: Vec<(Vec<u32>, Vec<f64>)>,
    /// Every spike of the window as (gid, step), ascending: the order counted tables read.
    merged: Vec<u64>,
    gids: Vec<u32>,
    offsets: Vec<u32>,
    /// `MERGE_BYTES` (tests change it to take the other path).
    merge_bytes: usize,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            steps: Vec::new(),
            merged: Vec::new(),
            gids: Vec::new(),
            offsets: Vec::new(),
            merge_bytes: MERGE_BYTES,
        }
    }
}

impl Window {
    /// Makes room for `w` steps, keeping the memory of earlier windows ([`Exchange::step`]
    /// clears a step before filling it).
    pub fn reset(&mut self, w: usize) {
        self.steps.resize_with(w, Default::default);
    }
}

/// Delivers the spikes of `window` (emitted in steps `first`, `first + 1`, ...) through every
/// table: for the projections `k` with `signed[k]` (onto current or conductance synapses) each
/// value by its sign, the negative ones (weight times efficacy) into `ring_i`, the others into
/// `ring`; for the other projections everything into `ring`. A spike's efficacy multiplies its
/// weights. Returns the events delivered and adds what each projection delivered in step offset
/// `k` to `per_step[k]`.
///
/// Tables summed in floating point take the window step by step, each step table by table, the
/// order that makes the sums the same for any window. Counted tables (integers: any order gives
/// the same counts) take all the window's spikes at once, merged by gid, so that a table is
/// read in one ascending sweep rather than once per step, where the counts this touches fit
/// the caches (`MERGE_BYTES`); otherwise step by step.
#[allow(clippy::too_many_arguments)]
pub fn deliver(
    ring: &mut RingBuffer,
    mut ring_i: Option<&mut RingBuffer>,
    signed: &[bool],
    first: u64,
    conn: &Connectivity,
    window: &mut Window,
    per_step: &mut [Vec<Delivered>],
) -> u64 {
    let counted = |i: usize, r: &RingBuffer| r.counting.class_of.get(i).copied().flatten();
    let class_of = |i: usize, ring_i: &Option<&mut RingBuffer>| {
        counted(i, ring).map(|c| (false, c)).or_else(|| {
            ring_i
                .as_deref()
                .and_then(|r| counted(i, r))
                .map(|c| (true, c))
        })
    };
    let classes: Vec<Option<(bool, usize)>> = (0..conn.tables.len())
        .map(|i| class_of(i, &ring_i))
        .collect();
    let mut total = 0;
    let mut add = |d: Delivered, sum: &mut Delivered| {
        sum.events += d.events;
        sum.input[0] += d.input[0];
        sum.input[1] += d.input[1];
        total += d.events;
    };
    for (k, (spikes, scales)) in window.steps.iter().enumerate() {
        for (table, _) in conn
            .tables
            .iter()
            .zip(&classes)
            .filter(|(_, c)| c.is_none())
        {
            let negative = ring_i
                .as_deref_mut()
                .filter(|_| signed.get(table.projection).copied().unwrap_or(false));
            let d = ring.deliver_table(negative, first + k as u64, table, spikes, scales);
            add(d, &mut per_step[k][table.projection]);
        }
    }
    if classes.iter().all(Option::is_none) {
        return total;
    }
    let Window {
        steps,
        merged,
        gids,
        offsets,
        merge_bytes,
    } = window;
    // Merged, a table's counts go to one slot per step of the window: where those would not
    // stay in the caches (large ranks), each step is counted apart instead.
    let groups: Vec<Range<usize>> = if 2 * ring.n * steps.len() <= *merge_bytes {
        std::iter::once(0..steps.len()).collect()
    } else {
        (0..steps.len()).map(|k| k..k + 1).collect()
    };
    let mut out = vec![Delivered::default(); steps.len()];
    for ks in groups {
        merged.clear();
        for k in ks {
            merged.extend(steps[k].0.iter().map(|&g| u64::from(g) << 32 | k as u64));
        }
        merged.sort_unstable();
        gids.clear();
        gids.extend(merged.iter().map(|&x| (x >> 32) as u32));
        offsets.clear();
        offsets.extend(merged.iter().map(|&x| x as u32));
        for (table, &class) in conn.tables.iter().zip(&classes) {
            let Some((negative, c)) = class else { continue };
            let target = match (negative, ring_i.as_deref_mut()) {
                (true, Some(r)) => r,
                _ => &mut *ring,
            };
            out.fill(Delivered::default());
            target.count_table(c, first, table, (gids, offsets), &mut out);
            for (k, d) in out.iter().enumerate() {
                add(*d, &mut per_step[k][table.projection]);
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spikes through per-synapse weights and delays land in slot `step + delay` of each
    /// target with the synapse's (f32) weight: compared with the synapses listed per target by
    /// the network generator. Events and the exact input (positive and negative weights apart;
    /// for a constant weight, the efficacies) are counted per projection.
    #[test]
    fn deliver_uses_per_synapse_weights_and_delays() {
        let text = "[population.E]\nsize = 60\nplacement = \"even\"\n[population.I]\nsize = 20\n\
            [projection.EE]\nsource = \"E\"\ntarget = \"E\"\nrule = \"fixed_indegree\"\nindegree = 8\n\
            weight = 0.2\nweight_dist = \"uniform\"\nweight_sd = 0.05\ndelay = 0.1\ndelay_max = 0.4\n\
            kernel = { kind = \"cosine\", a = 0.2, b = 1.0 }\nkernel_use = \"weight\"\n\
            [projection.IE]\nsource = \"I\"\ntarget = \"E\"\nrule = \"bernoulli\"\np = 0.3\n\
            weight = -0.7\ndelay = 0.2\n";
        let c = crate::config::Config::from_toml(text, &[]).unwrap();
        let local = 10..50u64;
        let conn = Connectivity::build(&c, local.clone()).unwrap();
        assert_eq!(conn.tables.len(), 5, "EE: 4 delays; IE: 1");
        let mut ring =
            RingBuffer::new(conn.max_delay(), local.clone().count(), Counting::default());
        let spikes: Vec<u32> = (0..80).filter(|g| g % 3 == 0).collect();
        let step = 7;
        let mut per_projection = vec![Delivered::default(); 2];
        let total = ring.deliver(step, &conn, &spikes, &mut per_projection);
        // Expected input per (delay, local target), from the generator.
        let mut expect = vec![vec![0.0f64; 40]; 5];
        let mut events = [0u64; 2];
        let mut input = [[0i128; 2]; 2];
        let mut syn = crate::network::Synapses::default();
        for gid in local.clone() {
            for (k, proj) in c.projections.iter().enumerate() {
                crate::network::synapses_of(&c, k, gid, &mut syn).unwrap();
                let start = c.populations[proj.source].gid_start;
                for (i, &s) in syn.sources.iter().enumerate() {
                    if !(start + u64::from(s)).is_multiple_of(3) {
                        continue;
                    }
                    let w = syn
                        .weights
                        .get(i)
                        .map_or(proj.weight, |&w| f64::from(w as f32));
                    let d = syn.delays.get(i).copied().unwrap_or(proj.delay_steps);
                    expect[d as usize][(gid - local.start) as usize] += w;
                    events[k] += 1;
                    if syn.weights.is_empty() {
                        input[k][0] += 1 << 32;
                    } else {
                        input[k][usize::from(w < 0.0)] += crate::fixed::fixed(w) << 32;
                    }
                }
            }
        }
        let got: Vec<_> = per_projection.iter().map(|d| (d.events, d.input)).collect();
        assert_eq!(got, [(events[0], input[0]), (events[1], input[1])]);
        assert!(
            input[0][0] > 0 && input[0][1] < 0,
            "EE's kernel makes weights of both signs"
        );
        assert_eq!(total, events[0] + events[1]);
        for (d, want) in expect.iter().enumerate().skip(1) {
            let got = ring.slot_mut(step + d as u64).to_vec();
            for (i, (g, e)) in got.iter().zip(want).enumerate() {
                assert!((g - e).abs() < 1e-12, "delay {d}, target {i}: {g} vs {e}");
            }
        }
        assert!(expect[1].iter().any(|&x| x > 0.0) && expect[4].iter().any(|&x| x > 0.0));
        assert!(ring.slot_mut(step).iter().all(|&x| x == 0.0));
    }

    /// Spikes through constant weights are counted (one class per distinct weight; signed
    /// projections' negative weights in the inhibitory ring), a window's spikes merged by gid,
    /// and, once settled, give the input of summing the weights one by one, to rounding, and
    /// the same events and input per step and projection: compared with a ring that sums every
    /// spike step by step. A class whose in-degree could exceed a count, or spikes with efficacies, are
    /// summed instead.
    #[test]
    fn counted_arrivals_equal_summed_weights() {
        let text = "[population.E]\nsize = 60\nsynapse = \"current\"\n[population.I]\nsize = 20\n\
            [projection.EE]\nsource = \"E\"\ntarget = \"E\"\nrule = \"fixed_indegree\"\n\
            indegree = 30\nweight = 0.2\ndelay = 0.2\ndelay_max = 0.5\n\
            [projection.IE]\nsource = \"I\"\ntarget = \"E\"\nrule = \"bernoulli\"\np = 0.3\n\
            weight = -0.7\ndelay = 0.3\n\
            [projection.EI]\nsource = \"E\"\ntarget = \"I\"\nrule = \"bernoulli\"\np = 0.5\n\
            weight = 0.2\ndelay = 0.4\n";
        let c = crate::config::Config::from_toml(text, &[]).unwrap();
        let local = 10..70u64;
        let n = local.clone().count();
        let conn = Connectivity::build(&c, local.clone()).unwrap();
        let signed: Vec<bool> = (0..3).map(|k| c.signed_channels(k)).collect();
        assert_eq!(signed, [true, true, false]);
        let counting = |negative| Counting::new(&c, &conn, false, negative);
        let (pos, neg) = (counting(false), counting(true));
        // EE and EI share the weight 0.2; IE (negative, onto current synapses) counts apart.
        assert_eq!(
            (pos.weights.clone(), neg.weights.clone()),
            (vec![0.2], vec![-0.7])
        );
        let class_of = conn.tables.iter().zip(&pos.class_of);
        assert!(class_of
            .clone()
            .all(|(t, &c)| c == (t.projection != 1).then_some(0)));
        assert!(class_of.count() == 6, "EE: 4 delays");
        let mut counted = (
            RingBuffer::new(5, n, pos.clone()),
            RingBuffer::new(5, n, neg.clone()),
        );
        // The same counted step by step (the path of ranks too large to merge a window).
        let mut stepwise = (RingBuffer::new(5, n, pos), RingBuffer::new(5, n, neg));
        let summed = || RingBuffer::new(5, n, Counting::default());
        let mut summed = (summed(), summed());
        let (mut any, mut inexact) = (0, 0);
        // As a simulation does, in windows of two steps (the smallest delay): deliver the
        // window's spikes, settle the next window's steps, which no later spike can reach,
        // read them and clear them.
        for first in (0..12u64).step_by(2) {
            let mut window = Window::default();
            for step in first..first + 2 {
                let spikes = (0..80)
                    .filter(|g| !(g + step as u32).is_multiple_of(3))
                    .collect();
                window.steps.push((spikes, Vec::new()));
            }
            let mut delivered = Vec::new();
            for (ring, ring_i) in [&mut counted, &mut summed, &mut stepwise] {
                let mut per_step = vec![vec![Delivered::default(); 3]; 2];
                deliver(
                    ring,
                    Some(ring_i),
                    &signed,
                    first,
                    &conn,
                    &mut window,
                    &mut per_step,
                );
                delivered.push(per_step);
                window.merge_bytes = 0;
            }
            assert_eq!(delivered[0], delivered[1], "events and input per step");
            assert_eq!(delivered[0], delivered[2], "events and input per step");
            assert_eq!(counted.0.counts, stepwise.0.counts);
            assert_eq!(counted.1.counts, stepwise.1.counts);
            assert!(delivered[0][1].iter().all(|d| d.events > 0));
            for (a, b, c) in [
                (&mut counted.0, &mut summed.0, &mut stepwise.0),
                (&mut counted.1, &mut summed.1, &mut stepwise.1),
            ] {
                // Later steps still hold counts.
                assert!(a.counts.iter().any(|&k| k > 1));
                a.settle(first + 2..first + 4);
                c.settle(first + 2..first + 4);
                for step in first + 2..first + 4 {
                    assert_eq!(a.slot_mut(step), c.slot_mut(step));
                    c.slot_mut(step).fill(0.0);
                    for (x, y) in a.slot_mut(step).iter_mut().zip(b.slot_mut(step)) {
                        assert!((*x - *y).abs() <= 1e-14 * y.abs().max(1.0), "{x} vs {y}");
                        any += usize::from(*y != 0.0);
                        inexact += usize::from(x != y);
                        (*x, *y) = (0.0, 0.0);
                    }
                }
            }
        }
        for a in [&mut counted.0, &mut counted.1] {
            a.settle(14..20);
            assert!(a.counts.iter().all(|&k| k == 0));
        }
        assert!(any > 100, "{any} inputs compared");
        eprintln!("{inexact} of {any} inputs round differently");
        // No counting where spikes carry efficacies, nor for a class that could overflow: EE's
        // in-degree plus EI's 60 sources above 65,535.
        assert_eq!(Counting::new(&c, &conn, true, false).classes(), 0);
        let big = text.replace("indegree = 30", "indegree = 65476");
        let c = crate::config::Config::from_toml(&big, &[]).unwrap();
        let conn = Connectivity::build(&c, 70..71).unwrap();
        assert_eq!(
            Counting::new(&c, &conn, false, false).weights,
            Vec::<f64>::new()
        );
        let fits = text.replace("indegree = 30", "indegree = 65475");
        let c = crate::config::Config::from_toml(&fits, &[]).unwrap();
        let conn = Connectivity::build(&c, 70..71).unwrap();
        assert_eq!(Counting::new(&c, &conn, false, false).weights, vec![0.2]);
    }

    /// The neuron-major view taken at one step and restored at the same step into a buffer
    /// whose slots are laid out differently reads back the same input for every future step.
    #[test]
    fn neuron_major_round_trip_preserves_future_inputs() {
        let mut a = RingBuffer::new(3, 5, Counting::default());
        for (j, x) in a.data.iter_mut().enumerate() {
            *x = j as f64 * 0.5 + 1.0;
        }
        let step = 7;
        let view = a.to_neuron_major(step);
        assert_eq!(view[2 * 4 + 1], a.slot_mut(step + 1)[2]);
        let mut b = RingBuffer::new(3, 5, Counting::default());
        b.set_neuron_major(step, &view);
        for k in 0..4 {
            assert_eq!(a.slot_mut(step + k).to_vec(), b.slot_mut(step + k).to_vec());
        }
    }
}
