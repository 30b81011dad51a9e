//! Normalised histograms of V per population (`/histograms`), the extended density in
//! (V, first coordinate) (`/densities`, with `xi_bins > 1`) and the densities of the label
//! probabilities (`/labels`), at the times of `observables.histogram`, from integer counts.

use super::{Boundary, Observer, Observers, Output, Restored, Saved};
use crate::comm::Comm;
use crate::config::{Config, HistogramSpec};
use crate::fixed::bin_of;
use crate::h5::{replicated, RawWrites};
use crate::spill::{Concat, Series, Stored};
use hdf5::File;
use std::any::Any;
use std::ops::Range;

/// Its group in output files (and in checkpoints, under `/observables`).
pub const GROUP: &str = "histograms";
/// The extended density's group in output files.
pub const DENSITIES: &str = "densities";
/// The label densities' group in output files.
pub const LABELS: &str = "labels";

pub struct Histograms {
    spec: Option<HistogramSpec>,
    /// Sample times \[ms\].
    pub times: Series<f64>,
    /// Per population, one row of `bins` densities [1/mV] per sample time, so that the sum
    /// over bins times the bin width is the fraction of neurons in range.
    pub histograms: Vec<Series<f64>>,
    /// The extended density f(t, v, xi) (with `xi_bins > 1`): per population, `xi_bins x
    /// bins` densities [1/mV] per sample; the sum times the V bin width times `1 / xi_bins` is
    /// the fraction of neurons in range.
    pub densities: Vec<Series<f64>>,
    /// Label histograms (populations with labels): per population, `k x label_bins` densities
    /// on [0, 1] per sample, one row per class.
    pub labels: Vec<Series<f64>>,
    /// Coordinate bin of each local neuron (empty with `xi_bins = 1`).
    xi_bin: Vec<u32>,
    xi_bins: usize,
    label_bins: usize,
    /// Classes per population (0: no labels).
    label_k: Vec<usize>,
    /// Local counts not yet reduced: per sample, population (and coordinate bin) and bin.
    pending: Vec<u64>,
    pending_labels: Vec<u64>,
    blocks: Vec<(usize, Range<usize>)>,
    sizes: Vec<u64>,
}

impl Histograms {
    pub fn new(config: &Config, local: &Range<u64>, blocks: &[(usize, Range<usize>)]) -> Self {
        let n_pop = config.populations.len();
        let xi_bins = config.histogram.as_ref().map_or(1, |h| h.xi_bins);
        let bins = config.histogram.as_ref().map_or(0, |h| h.bins);
        let label_bins = config.histogram.as_ref().map_or(1, |h| h.label_bins);
        let label_k: Vec<usize> = config
            .populations
            .iter()
            .map(|p| p.model.labels.as_ref().map_or(0, |l| l.k()))
            .collect();
        Histograms {
            spec: config.histogram.clone(),
            times: Series::new(1),
            histograms: (0..n_pop).map(|_| Series::new(bins)).collect(),
            densities: (0..n_pop)
                .map(|_| Series::new(if xi_bins > 1 { xi_bins * bins } else { 0 }))
                .collect(),
            labels: label_k
                .iter()
                .map(|k| Series::new(k * label_bins))
                .collect(),
            xi_bin: match xi_bins {
                1 => Vec::new(),
                b => local
                    .clone()
                    .map(|g| {
                        let p = &config.populations[config.population_of(g)];
                        crate::space::bin(p.coordinate(config.seed, g), b) as u32
                    })
                    .collect(),
            },
            xi_bins,
            label_bins,
            label_k,
            pending: Vec::new(),
            pending_labels: Vec::new(),
            blocks: blocks.to_vec(),
            sizes: config.populations.iter().map(|p| p.size).collect(),
        }
    }

    /// The fraction of population `p` inside the histogram range, averaged over the samples
    /// (`None` without samples).
    pub fn coverage(&self, p: usize) -> Option<f64> {
        let spec = self.spec.as_ref()?;
        let width = (spec.v_max - spec.v_min) / spec.bins as f64;
        let (mut n, mut total) = (0, 0.0);
        self.histograms[p]
            .for_each_row(|r| {
                n += 1;
                total += r.iter().sum::<f64>() * width;
            })
            .ok()?;
        (n > 0).then(|| total / n as f64)
    }

    /// Takes the local counts at time `t` \[ms\]; `lambda` holds `stride` entries per local
    /// neuron.
    pub fn sample(&mut self, t: f64, v: &[f64], lambda: &[f64], stride: usize) {
        let Some(spec) = &self.spec else {
            return;
        };
        let bins = spec.bins;
        let row = self.xi_bins * bins;
        let width = (spec.v_max - spec.v_min) / bins as f64;
        let base = self.pending.len();
        self.pending.resize(base + self.sizes.len() * row, 0);
        let counts = &mut self.pending[base..];
        for (p, range) in &self.blocks {
            for i in range.clone() {
                if let Some(b) = bin_of(v[i], spec.v_min, width, bins) {
                    let xb = self.xi_bin.get(i).map_or(0, |&x| x as usize);
                    counts[p * row + xb * bins + b] += 1;
                }
            }
        }
        let lb = self.label_bins;
        let per_pop: usize = self.label_k.iter().map(|k| k * lb).sum();
        if per_pop > 0 {
            let base = self.pending_labels.len();
            self.pending_labels.resize(base + per_pop, 0);
            let counts = &mut self.pending_labels[base..];
            for (p, range) in &self.blocks {
                let k = self.label_k[*p];
                let offset: usize = self.label_k[..*p].iter().map(|k| k * lb).sum();
                for i in range.clone() {
                    for c in 0..k {
                        let b = ((lambda[i * stride + c] * lb as f64) as usize).min(lb - 1);
                        counts[offset + c * lb + b] += 1;
                    }
                }
            }
        }
        self.times.push(t);
    }
}

impl Observer for Histograms {
    fn name(&self) -> &'static str {
        GROUP
    }

    fn at_boundary(&mut self, at: &Boundary) {
        if self.spec.as_ref().is_some_and(|h| h.schedule.fires(at.b)) {
            self.sample(at.time, at.v, &at.extra.lambda, at.extra.stride);
        }
    }

    fn pending(&self) -> usize {
        self.pending.len() + self.pending_labels.len()
    }

    fn reduce(&mut self, comm: &dyn Comm) {
        let Some(spec) = &self.spec else {
            return;
        };
        let n_pop = self.sizes.len();
        if !self.pending.is_empty() {
            comm.sum_u64(&mut self.pending);
            let bins = spec.bins;
            let width = (spec.v_max - spec.v_min) / bins as f64;
            let xb = self.xi_bins;
            for sample in self.pending.chunks_exact(n_pop * xb * bins) {
                for p in 0..n_pop {
                    let norm = 1.0 / (self.sizes[p] as f64 * width);
                    let joint = &sample[p * xb * bins..(p + 1) * xb * bins];
                    let marginal = (0..bins).map(|b| (0..xb).map(|x| joint[x * bins + b]).sum());
                    self.histograms[p].extend(marginal.map(|c: u64| c as f64 * norm));
                    if xb > 1 {
                        // Density in (v, xi): divide by the xi bin width 1/xb as well.
                        let norm = norm * xb as f64;
                        self.densities[p].extend(joint.iter().map(|&c| c as f64 * norm));
                    }
                }
            }
            self.pending.clear();
        }
        if !self.pending_labels.is_empty() {
            comm.sum_u64(&mut self.pending_labels);
            let lb = self.label_bins;
            let per_sample: usize = self.label_k.iter().map(|k| k * lb).sum();
            for sample in self.pending_labels.chunks_exact(per_sample) {
                let mut offset = 0;
                for p in 0..n_pop {
                    let len = self.label_k[p] * lb;
                    let norm = lb as f64 / self.sizes[p] as f64;
                    let row = &sample[offset..offset + len];
                    self.labels[p].extend(row.iter().map(|&c| c as f64 * norm));
                    offset += len;
                }
            }
            self.pending_labels.clear();
        }
    }

    fn write(&self, out: &mut Output, _all: &Observers) -> hdf5::Result<()> {
        let (file, config) = (out.file, out.config);
        write_series(
            file,
            config,
            &self.times,
            &self.histograms,
            &self.densities,
            out.w,
        )?;
        write_labels(
            file,
            config,
            self.times.count(),
            &self.label_k,
            &self.labels,
            out.w,
        )
    }

    fn save(&self, to: &mut Saved) -> hdf5::Result<()> {
        to.replicated("time", &self.times)?;
        to.replicated("histogram", &Concat(&self.histograms))?;
        to.replicated("density", &Concat(&self.densities))?;
        // Rows of different lengths (classes differ by population): concatenated.
        to.replicated("label", &Concat(&self.labels))
    }

    fn restore(&mut self, from: &Restored) -> hdf5::Result<()> {
        from.series("time", &mut self.times)?;
        let nt = self.times.count();
        from.series_of("histogram", &mut self.histograms, nt)?;
        from.series_of("density", &mut self.densities, nt)?;
        from.series_of("label", &mut self.labels, nt)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Writes `/histograms` (sample times; with a histogram configured, the bin edges and per
/// population the density of V, time x bin) and, with `xi_bins > 1`, `/densities` (per
/// population time x xi bin x V bin): a run's or the limit's.
pub(crate) fn write_series<S: Stored<f64> + ?Sized, P: Stored<f64>>(
    file: &File,
    config: &Config,
    times: &S,
    histograms: &[P],
    densities: &[P],
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    let hist = file.create_group(GROUP)?;
    let nt = times.count();
    replicated(&hist, "time", times, &[nt], "ms", "sample times", w)?;
    let Some(h) = &config.histogram else {
        return Ok(());
    };
    let edges = h.edges();
    replicated(
        &hist,
        "edges",
        &edges,
        &[h.bins + 1],
        "mV",
        "bin edges of V",
        w,
    )?;
    for (i, p) in config.populations.iter().enumerate() {
        replicated(
            &hist,
            &p.name,
            &histograms[i],
            &[nt, h.bins],
            "1/mV",
            "empirical density of V (time x bin); bins times width sum to the fraction of neurons inside [v_min, v_max)",
            w,
        )?;
    }
    if h.xi_bins > 1 {
        let g = file.create_group(DENSITIES)?;
        let edges: Vec<f64> = (0..=h.xi_bins)
            .map(|b| b as f64 / h.xi_bins as f64)
            .collect();
        replicated(
            &g,
            "xi_edges",
            &edges,
            &[h.xi_bins + 1],
            "1",
            "bin edges of the first coordinate xi",
            w,
        )?;
        for (i, p) in config.populations.iter().enumerate() {
            replicated(
                &g,
                &p.name,
                &densities[i],
                &[nt, h.xi_bins, h.bins],
                "1/mV",
                "extended density f(t, v, xi) (time x xi bin x V bin, V bins as /histograms/edges): the sum times the V bin width times 1/xi_bins is the fraction of neurons inside [v_min, v_max)",
                w,
            )?;
        }
    }
    Ok(())
}

/// `/labels/<pop>`: the label densities of the populations with labels (`classes[p] > 0`) at
/// the `nt` histogram times, `rows[p]` time x class x bin (a run's or the limit's).
pub(crate) fn write_labels<P: Stored<f64>>(
    file: &File,
    config: &Config,
    nt: usize,
    classes: &[usize],
    rows: &[P],
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    let Some(h) = &config.histogram else {
        return Ok(());
    };
    if classes.iter().all(|&k| k == 0) {
        return Ok(());
    }
    let g = file.create_group(LABELS)?;
    let lb = h.label_bins;
    let edges: Vec<f64> = (0..=lb).map(|b| b as f64 / lb as f64).collect();
    replicated(
        &g,
        "edges",
        &edges,
        &[lb + 1],
        "1",
        "bin edges of a class probability",
        w,
    )?;
    for (p, &k) in classes.iter().enumerate().filter(|(_, &k)| k > 0) {
        replicated(
            &g,
            &config.populations[p].name,
            &rows[p],
            &[nt, k, lb],
            "1",
            "density on [0, 1] of each class's label probability over the population (time x class x bin; the last bin includes 1)",
            w,
        )?;
    }
    Ok(())
}
