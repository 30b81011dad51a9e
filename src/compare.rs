//! `lapicque compare`: distances between two output files' rates and empirical measures over
//! time: a finite network against its mean-field limit written in the same layout, or two
//! networks of different seeds, sizes or durations.
//!
//! Both files must be complete (`status = "complete"`) and hold the same populations (names;
//! the sizes may differ, the report states both). Series are compared at their common times
//! (rate bins, histogram and moment samples, tree samples that occur in both files, from
//! `from` \[ms\] on), so runs of different `t_stop` are compared on their common window; grids
//! that cannot be lined up (rate bins of other widths or offsets, other V or label bins) are
//! refused with one line naming them ([`Error::Mismatch`], exit code 2). For each population:
//!
//! * rates (`/rates/<pop>`, Hz): `|r_A - r_B|` per common bin, and the mean rates over those
//!   bins (plain means, as `lapicque inspect` prints them);
//! * the empirical densities of V (`/histograms/<pop>`, 1/mV), at every common sample: the L1
//!   distance ([`l1`]) and the Wasserstein-1 distance in mV ([`wasserstein1`]); and the same two
//!   distances between the densities averaged over the common samples;
//! * moments (`/moments/<pop>`): `|mean_A - mean_B|` and `|sd_A - sd_B|` of V \[mV\];
//! * the extended density `f(t, v, xi)` (`/densities/<pop>`): the L1 distance of the joint law
//!   of (V, xi) (`sum |f_A - f_B| dv dxi`) and the mean over coordinate bins of the W1 distance
//!   \[mV\] between the laws of V in each bin;
//! * label densities (`/labels/<pop>`): the L1 and W1 distances (on [0, 1], dimensionless) of
//!   each class's probability, averaged over the classes.
//!
//! For each tree observable in both files with the same definition (`/trees/<name>`): both
//! values and their absolute difference at every common sample, and both means.
//!
//! Times and edges agree when they differ by at most `1e-9 max(|x|, |y|, 1)` (a mean-field
//! solver may compute its sample times differently).

use crate::h5::{num, text};
use crate::observables::{histograms, moments, rates, trees};
use crate::output::POPULATIONS;
use crate::Error;
use hdf5::File;
use std::fmt::Write as _;
use std::path::Path;

/// Total mass `sum_b f_b w_b` of a binned density `f` [1/mV] on `edges` \[mV\] (bin `b` is
/// `[edges[b], edges[b + 1])`, of width `w_b`): the fraction of neurons inside the range.
pub fn mass(f: &[f64], edges: &[f64]) -> f64 {
    f.iter()
        .zip(edges.windows(2))
        .map(|(f, e)| f * (e[1] - e[0]))
        .sum()
}

/// L1 distance `sum_b |fA_b - fB_b| w_b` between two binned densities [1/mV] on the same
/// `edges` \[mV\] (dimensionless; 2 for disjoint probability measures). The densities are not
/// normalised: a difference in the mass inside the range counts.
pub fn l1(fa: &[f64], fb: &[f64], edges: &[f64]) -> f64 {
    fa.iter()
        .zip(fb)
        .zip(edges.windows(2))
        .map(|((a, b), e)| (a - b).abs() * (e[1] - e[0]))
        .sum()
}

/// Wasserstein-1 distance \[mV\] between the binned measures of two densities [1/mV] on the same
/// `edges` \[mV\]: each bin's mass sits at the bin's centre `c_b`, mass outside
/// `[v_min, v_max)` is ignored, and each measure is normalised to mass 1 (its mass inside the
/// range is positive); then
///
/// ```text
/// W1 = sum_{b < B-1} |FA_b - FB_b| (c_{b+1} - c_b),   F_b = sum_{k <= b} f_k w_k / mass,
/// ```
///
/// which for bins of equal width `w` is `w sum_b |FA_b - FB_b|`. Two measures with no mass in
/// the range are at distance 0; one with mass and one without have no distance (NaN).
pub fn wasserstein1(fa: &[f64], fb: &[f64], edges: &[f64]) -> f64 {
    let (ma, mb) = (mass(fa, edges), mass(fb, edges));
    match (ma > 0.0, mb > 0.0) {
        (false, false) => return 0.0,
        (true, true) => {}
        _ => return f64::NAN,
    }
    let n = fa.len().min(fb.len()).min(edges.len().saturating_sub(1));
    let (mut ca, mut cb, mut w1) = (0.0, 0.0, 0.0);
    for b in 0..n.saturating_sub(1) {
        let w = edges[b + 1] - edges[b];
        ca += fa[b] * w / ma;
        cb += fb[b] * w / mb;
        let gap = 0.5 * (edges[b + 2] - edges[b]);
        w1 += (ca - cb).abs() * gap;
    }
    w1
}

/// Mean of a series; NaN if it is empty.
fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        f64::NAN
    } else {
        x.iter().sum::<f64>() / x.len() as f64
    }
}

/// Maximum of a series; NaN if it is empty or holds a NaN.
fn max(x: &[f64]) -> f64 {
    if x.is_empty() || x.iter().any(|v| v.is_nan()) {
        f64::NAN
    } else {
        x.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }
}

/// One per-time series of a population or tree: `quantity` at `time` \[ms\].
#[derive(Clone, Debug)]
pub struct Series {
    pub quantity: &'static str,
    pub time: Vec<f64>,
    pub value: Vec<f64>,
}

/// The comparison of one population.
#[derive(Clone, Debug)]
pub struct PopulationComparison {
    pub name: String,
    /// Neurons in A and in B.
    pub sizes: (u64, u64),
    /// Mean rates of A and B over the common bins \[Hz\].
    pub mean_rate: (f64, f64),
    /// `rate_abs_diff` \[Hz\] per common rate bin; then, where both files have them,
    /// `histogram_l1` \[1\] and `histogram_w1` \[mV\] per common histogram sample,
    /// `mean_abs_diff` and `sd_abs_diff` \[mV\] per moment sample, `density_l1` \[1\] and
    /// `density_w1` \[mV\] per sample of `/densities`, `label_l1` and `label_w1` \[1\] per sample
    /// of `/labels`.
    pub series: Vec<Series>,
    /// L1 \[1\] and W1 \[mV\] distances between the histograms averaged over the common samples.
    pub averaged: Option<(f64, f64)>,
}

impl PopulationComparison {
    pub fn series(&self, quantity: &str) -> Option<&Series> {
        self.series.iter().find(|s| s.quantity == quantity)
    }
}

/// The comparison of one tree observable.
#[derive(Clone, Debug)]
pub struct TreeComparison {
    pub name: String,
    /// `tree_a`, `tree_b` and `tree_abs_diff` per common sample (units of the tree), and
    /// `tree_stderr`, the standard error of the difference, where either file holds sampled
    /// estimates.
    pub series: Vec<Series>,
    /// Means of A and B over the common samples.
    pub mean: (f64, f64),
}

impl TreeComparison {
    pub fn series(&self, quantity: &str) -> Option<&Series> {
        self.series.iter().find(|s| s.quantity == quantity)
    }
}

/// The comparison of two output files.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    /// Start of the compared window \[ms\].
    pub from: f64,
    /// What was compared on which grid, and what was not compared and why.
    pub notes: Vec<String>,
    pub populations: Vec<PopulationComparison>,
    pub trees: Vec<TreeComparison>,
}

/// A float in the CSV and in scientific notation (all digits a double needs).
fn sci(x: f64) -> String {
    format!("{x:.16e}")
}

impl Comparison {
    /// A readable table: one row per population (and per tree observable).
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "A = {}\nB = {}", self.a, self.b);
        for n in &self.notes {
            let _ = writeln!(out, "{n}");
        }
        let _ = writeln!(
            out,
            "{:<12} {:>29} {:>10} {:>19} {:>19} {:>10}",
            "", "mean rate [Hz]", "rate [Hz]", "histogram L1", "histogram W1 [mV]", "<V> [mV]"
        );
        let _ = writeln!(
            out,
            "{:<12} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>10}",
            "population", "A", "B", "A - B", "mean |dr|", "mean", "max", "mean", "max", "max |d|"
        );
        let stat = |p: &PopulationComparison, q: &str, f: fn(&[f64]) -> f64| {
            p.series(q)
                .map_or("-".to_string(), |s| format!("{:.4}", f(&s.value)))
        };
        for p in &self.populations {
            let (ra, rb) = p.mean_rate;
            let _ = writeln!(
                out,
                "{:<12} {:>9.3} {:>9.3} {:>9.3} {:>10} {:>9} {:>9} {:>9} {:>9} {:>10}",
                p.name,
                ra,
                rb,
                ra - rb,
                stat(p, "rate_abs_diff", mean),
                stat(p, "histogram_l1", mean),
                stat(p, "histogram_l1", max),
                stat(p, "histogram_w1", mean),
                stat(p, "histogram_w1", max),
                stat(p, "mean_abs_diff", max),
            );
        }
        if self.populations.iter().any(|p| p.averaged.is_some()) {
            let _ = writeln!(
                out,
                "time-averaged densities from {} ms (L1, W1 [mV]): {}",
                self.from,
                self.populations
                    .iter()
                    .filter_map(|p| p.averaged.map(|(l, w)| format!("{} {l:.4} {w:.4}", p.name)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let extra = ["density_l1", "density_w1", "label_l1", "label_w1"];
        if self
            .populations
            .iter()
            .any(|p| extra.iter().any(|q| p.series(q).is_some()))
        {
            let _ = writeln!(
                out,
                "{:<12} {:>19} {:>19} {:>19} {:>19}",
                "", "f(v, xi) L1", "f(v | xi) W1 [mV]", "label L1", "label W1"
            );
            let _ = writeln!(
                out,
                "{:<12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "population", "mean", "max", "mean", "max", "mean", "max", "mean", "max"
            );
            for p in &self.populations {
                let cells: Vec<String> = extra
                    .iter()
                    .flat_map(|q| [stat(p, q, mean), stat(p, q, max)])
                    .collect();
                let _ = writeln!(
                    out,
                    "{:<12} {}",
                    p.name,
                    cells
                        .iter()
                        .map(|c| format!("{c:>9}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
        }
        if !self.trees.is_empty() {
            let _ = writeln!(
                out,
                "{:<12} {:>12} {:>12} {:>12} {:>12} {:>12}",
                "tree", "mean A", "mean B", "rel. diff", "max |d|", "max |d|/se"
            );
            for t in &self.trees {
                let (a, b) = t.mean;
                let d = t
                    .series("tree_abs_diff")
                    .map_or(f64::NAN, |s| max(&s.value));
                // Sampled: the largest difference in standard errors of the difference. With R
                // replicates the ratio of one sample follows Student's t with R - 1 degrees of
                // freedom under no real difference: heavy-tailed for the default R = 4 (beyond
                // 8 once in 250 samples), so the largest of many samples is large too.
                let z = match (t.series("tree_abs_diff"), t.series("tree_stderr")) {
                    (Some(d), Some(se)) => {
                        // Equal values are no deviation, whatever their error.
                        let z: Vec<f64> = d
                            .value
                            .iter()
                            .zip(&se.value)
                            .map(|(&d, &e)| if d == 0.0 { 0.0 } else { d / e })
                            .collect();
                        format!("{:>12.2}", max(&z))
                    }
                    _ => format!("{:>12}", "exact"),
                };
                let _ = writeln!(
                    out,
                    "{:<12} {:>12.5e} {:>12.5e} {:>12.4} {:>12.4e} {z}",
                    t.name,
                    a,
                    b,
                    (a - b) / b.abs(),
                    d
                );
            }
        }
        out
    }

    /// The series as CSV: `subject,quantity,time_ms,value`, the subject a population or a
    /// tree observable's name. Per-time rows first, then the window's summaries at the
    /// window's start: `mean_rate_a`, `mean_rate_b` \[Hz\], `histogram_l1_of_mean`,
    /// `histogram_w1_of_mean` \[mV\] per population and `tree_mean_a`, `tree_mean_b` per tree.
    /// Numbers in scientific notation.
    pub fn csv(&self) -> String {
        let mut out = String::from("subject,quantity,time_ms,value\n");
        let mut row = |subject: &str, quantity: &str, t: f64, v: f64| {
            let _ = writeln!(out, "{subject},{quantity},{},{}", sci(t), sci(v));
        };
        for p in &self.populations {
            for s in &p.series {
                for (t, v) in s.time.iter().zip(&s.value) {
                    row(&p.name, s.quantity, *t, *v);
                }
            }
            row(&p.name, "mean_rate_a", self.from, p.mean_rate.0);
            row(&p.name, "mean_rate_b", self.from, p.mean_rate.1);
            if let Some((l, w)) = p.averaged {
                row(&p.name, "histogram_l1_of_mean", self.from, l);
                row(&p.name, "histogram_w1_of_mean", self.from, w);
            }
        }
        for t in &self.trees {
            for s in &t.series {
                for (time, v) in s.time.iter().zip(&s.value) {
                    row(&t.name, s.quantity, *time, *v);
                }
            }
            row(&t.name, "tree_mean_a", self.from, t.mean.0);
            row(&t.name, "tree_mean_b", self.from, t.mean.1);
        }
        out
    }
}

/// The observables of one output file that are compared.
struct Run {
    path: String,
    file: File,
    /// (name, size), in gid order.
    populations: Vec<(String, u64)>,
    rate_time: Vec<f64>,
    rate_bin: f64,
    /// Sample times and V edges.
    histograms: Option<(Vec<f64>, Vec<f64>)>,
    moment_time: Option<Vec<f64>>,
    /// Coordinate-bin edges of `/densities`.
    xi_edges: Option<Vec<f64>>,
    /// Bin edges of `/labels`.
    label_edges: Option<Vec<f64>>,
    /// Names of the tree observables.
    trees: Vec<String>,
}

impl Run {
    fn open(path: &Path) -> Result<Run, Error> {
        let name = path.display().to_string();
        let fail = |reason: String| Error::Read {
            path: name.clone(),
            reason,
        };
        if !path.exists() {
            return Err(fail("no such file".into()));
        }
        let file = File::open(path).map_err(|e| {
            fail(format!(
                "not an HDF5 file (truncated or damaged?): {}",
                e.to_string().replace('\n', " ")
            ))
        })?;
        if text(&file, "status").as_deref() != Some("complete") {
            return Err(fail(
                "not a complete output file (no status \"complete\": its run did not finish)"
                    .into(),
            ));
        }
        let mut run = Run {
            path: name,
            file,
            populations: Vec::new(),
            rate_time: Vec::new(),
            rate_bin: f64::NAN,
            histograms: None,
            moment_time: None,
            xi_edges: None,
            label_edges: None,
            trees: Vec::new(),
        };
        let pops = run
            .file
            .group(POPULATIONS)
            .map_err(|_| run.missing("/populations"))?;
        let mut populations = Vec::new();
        for p in pops.member_names()? {
            let g = pops.group(&p)?;
            let size: u64 = num(&g, "size").ok_or_else(|| run.missing(&format!("size of {p}")))?;
            let start: u64 = num(&g, "gid_start").unwrap_or(0);
            populations.push((start, p, size));
        }
        populations.sort();
        run.populations = populations.into_iter().map(|(_, p, s)| (p, s)).collect();
        run.rate_time = run.read(&format!("{}/time", rates::GROUP))?;
        run.rate_bin = run
            .file
            .group(rates::GROUP)
            .ok()
            .and_then(|g| num(&g, "bin_width"))
            .ok_or_else(|| run.missing("/rates bin_width"))?;
        if run
            .file
            .link_exists(&format!("{}/edges", histograms::GROUP))
        {
            run.histograms = Some((
                run.read(&format!("{}/time", histograms::GROUP))?,
                run.read(&format!("{}/edges", histograms::GROUP))?,
            ));
        }
        if run.file.link_exists(&format!("{}/time", moments::GROUP)) {
            run.moment_time = Some(run.read(&format!("{}/time", moments::GROUP))?);
        }
        if run
            .file
            .link_exists(&format!("{}/xi_edges", histograms::DENSITIES))
        {
            run.xi_edges = Some(run.read(&format!("{}/xi_edges", histograms::DENSITIES))?);
        }
        if run
            .file
            .link_exists(&format!("{}/edges", histograms::LABELS))
        {
            run.label_edges = Some(run.read(&format!("{}/edges", histograms::LABELS))?);
        }
        if let Ok(g) = run.file.group(trees::GROUP) {
            run.trees = g.member_names()?;
        }
        Ok(run)
    }

    fn missing(&self, what: &str) -> Error {
        Error::Read {
            path: self.path.clone(),
            reason: format!("no {what}: not a lapicque output file"),
        }
    }

    /// A dataset as a flat f64 vector (row-major), and its shape.
    fn read_shaped(&self, name: &str) -> Result<(Vec<f64>, Vec<usize>), Error> {
        let ds = self
            .file
            .dataset(name)
            .map_err(|_| self.missing(&format!("/{name}")))?;
        let data = ds.read_raw::<f64>().map_err(|e| Error::Read {
            path: self.path.clone(),
            reason: format!("/{name}: {}", e.to_string().replace('\n', " ")),
        })?;
        Ok((data, ds.shape()))
    }

    fn read(&self, name: &str) -> Result<Vec<f64>, Error> {
        self.read_shaped(name).map(|(d, _)| d)
    }

    /// `name` as rows of `row` values, one per sample of a grid of `samples`; an error names
    /// the dataset when its shape is not `samples x row...`.
    fn rows(&self, name: &str, samples: usize, row: usize) -> Result<Vec<f64>, Error> {
        let (data, shape) = self.read_shaped(name)?;
        if shape.first().copied().unwrap_or(0) != samples || data.len() != samples * row {
            return Err(Error::Read {
                path: self.path.clone(),
                reason: format!(
                    "/{name} has shape {shape:?}, not {samples} samples of {row} values"
                ),
            });
        }
        Ok(data)
    }

    /// The definition of the tree observable in group `name` (parents, functions, shape,
    /// projections) as text, for telling whether two files computed the same tree.
    fn definition(&self, name: &str) -> String {
        let Ok(g) = self.file.group(name) else {
            return String::new();
        };
        let parents = g
            .attr("parents")
            .and_then(|a| a.read_raw::<i64>())
            .map(|v| format!("{v:?}"))
            .unwrap_or_default();
        let functions = g
            .attr("functions")
            .and_then(|a| a.read_raw::<hdf5::types::VarLenUnicode>())
            .map(|v| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        format!(
            "{parents}; {functions}; {}; {}",
            text(&g, "shape").unwrap_or_default(),
            text(&g, "projections").unwrap_or_default()
        )
    }
}

fn close(x: f64, y: f64) -> bool {
    x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
}

/// Where two grids of edges (`what`: "histogram edges", ...) differ, if they do.
fn grid_difference(what: &str, x: &[f64], y: &[f64], a: &str, b: &str) -> Option<String> {
    if x.len() != y.len() {
        return Some(format!("{what}: {} in {a}, {} in {b}", x.len(), y.len()));
    }
    let i = (0..x.len()).find(|&i| !close(x[i], y[i]))?;
    Some(format!(
        "{what}: number {i} is {} in {a}, {} in {b}",
        x[i], y[i]
    ))
}

/// The index pairs `(i, j)` of the times that `x` and `y` (both ascending) have in common, at
/// or after `from`.
fn common(x: &[f64], y: &[f64], from: f64) -> Vec<(usize, usize)> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < x.len() && j < y.len() {
        if close(x[i], y[j]) {
            if x[i] >= from || close(x[i], from) {
                out.push((i, j));
            }
            i += 1;
            j += 1;
        } else if x[i] < y[j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// A per-sample series from the common samples `pairs` of two datasets of `row` values per
/// sample.
fn series(
    quantity: &'static str,
    times: &[f64],
    pairs: &[(usize, usize)],
    (a, b): (&[f64], &[f64]),
    row: usize,
    distance: impl Fn(&[f64], &[f64]) -> f64,
) -> Series {
    Series {
        quantity,
        time: pairs.iter().map(|&(i, _)| times[i]).collect(),
        value: pairs
            .iter()
            .map(|&(i, j)| distance(&a[i * row..(i + 1) * row], &b[j * row..(j + 1) * row]))
            .collect(),
    }
}

/// The mean, over the rows of `len` values that `a` and `b` hold, of a distance between
/// matching rows.
fn mean_over_rows(a: &[f64], b: &[f64], len: usize, d: impl Fn(&[f64], &[f64]) -> f64) -> f64 {
    mean(
        &a.chunks_exact(len)
            .zip(b.chunks_exact(len))
            .map(|(x, y)| d(x, y))
            .collect::<Vec<_>>(),
    )
}

/// Compares two output files (see the module documentation) on their common times at or
/// after `from` \[ms\].
pub fn compare(a: &Path, b: &Path, from: f64) -> Result<Comparison, Error> {
    let (ra, rb) = (Run::open(a)?, Run::open(b)?);
    let (na, nb) = (ra.path.clone(), rb.path.clone());
    let mismatch = |reason: String| Error::Mismatch {
        a: na.clone(),
        b: nb.clone(),
        reason,
    };
    let names = |r: &Run| {
        r.populations
            .iter()
            .map(|(p, _)| p.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if names(&ra) != names(&rb) {
        return Err(mismatch(format!(
            "different populations: {} in {na}, {} in {nb}",
            names(&ra),
            names(&rb)
        )));
    }
    if !close(ra.rate_bin, rb.rate_bin) {
        return Err(mismatch(format!(
            "rate bins of {} ms in {na}, {} ms in {nb}",
            ra.rate_bin, rb.rate_bin
        )));
    }
    let rate_pairs = common(&ra.rate_time, &rb.rate_time, from);
    if rate_pairs.is_empty() {
        return Err(mismatch(format!(
            "no rate bin from {from} ms on starts at the same time in both ({} bins from {} ms in {na}, {} from {} ms in {nb})",
            ra.rate_time.len(),
            ra.rate_time.first().copied().unwrap_or(f64::NAN),
            rb.rate_time.len(),
            rb.rate_time.first().copied().unwrap_or(f64::NAN),
        )));
    }
    let span = |pairs: &[(usize, usize)], t: &[f64]| {
        format!(
            "{} common of {} in A, on [{}, {}] ms",
            pairs.len(),
            t.len(),
            t[pairs[0].0],
            t[pairs[pairs.len() - 1].0]
        )
    };
    let mut notes = vec![];
    let sizes: Vec<String> = ra
        .populations
        .iter()
        .zip(&rb.populations)
        .filter(|((_, x), (_, y))| x != y)
        .map(|((p, x), (_, y))| format!("{p} {x} in A, {y} in B"))
        .collect();
    if !sizes.is_empty() {
        notes.push(format!("population sizes differ: {}", sizes.join("; ")));
    }
    notes.push(format!(
        "rates: bins of {} ms, {}",
        ra.rate_bin,
        span(&rate_pairs, &ra.rate_time)
    ));
    let absent = |what: &str, x: bool, y: bool| {
        let (has, lacks) = if x { (&na, &nb) } else { (&nb, &na) };
        (x != y).then(|| format!("{what}: in {has} only, not compared (absent in {lacks})"))
    };
    // Histogram samples (shared by /densities and /labels) and their edges.
    let histograms = match (&ra.histograms, &rb.histograms) {
        (Some((ta, ea)), Some((tb, eb))) => {
            if let Some(d) = grid_difference("histogram edges", ea, eb, &na, &nb) {
                return Err(mismatch(d));
            }
            let pairs = common(ta, tb, from);
            if pairs.is_empty() {
                notes.push("histograms: no common sample times, not compared".into());
                None
            } else {
                notes.push(format!(
                    "histograms: {} bins on [{}, {}) mV, samples {}",
                    ea.len().saturating_sub(1),
                    ea[0],
                    ea[ea.len() - 1],
                    span(&pairs, ta)
                ));
                Some((ta.clone(), tb.len(), ea.clone(), pairs))
            }
        }
        (x, y) => {
            notes.extend(absent("histograms", x.is_some(), y.is_some()));
            None
        }
    };
    let moments = match (&ra.moment_time, &rb.moment_time) {
        (Some(ta), Some(tb)) => {
            let pairs = common(ta, tb, from);
            if pairs.is_empty() {
                notes.push("moments: no common sample times, not compared".into());
                None
            } else {
                notes.push(format!("moments: samples {}", span(&pairs, ta)));
                Some((ta.clone(), tb.len(), pairs))
            }
        }
        (x, y) => {
            notes.extend(absent("moments", x.is_some(), y.is_some()));
            None
        }
    };
    let xi_edges = match (&ra.xi_edges, &rb.xi_edges) {
        (Some(x), Some(y)) if histograms.is_some() => {
            if let Some(d) = grid_difference("coordinate bins of /densities", x, y, &na, &nb) {
                return Err(mismatch(d));
            }
            Some(x.clone())
        }
        (x, y) => {
            notes.extend(absent("densities", x.is_some(), y.is_some()));
            None
        }
    };
    let label_edges = match (&ra.label_edges, &rb.label_edges) {
        (Some(x), Some(y)) if histograms.is_some() => {
            if let Some(d) = grid_difference("label bins", x, y, &na, &nb) {
                return Err(mismatch(d));
            }
            Some(x.clone())
        }
        (x, y) => {
            notes.extend(absent("labels", x.is_some(), y.is_some()));
            None
        }
    };

    let mut populations = Vec::new();
    for ((p, size_a), (_, size_b)) in ra.populations.iter().zip(&rb.populations) {
        let (rate_a, rate_b) = (
            ra.rows(&format!("{}/{p}", rates::GROUP), ra.rate_time.len(), 1)?,
            rb.rows(&format!("{}/{p}", rates::GROUP), rb.rate_time.len(), 1)?,
        );
        let rates = series(
            "rate_abs_diff",
            &ra.rate_time,
            &rate_pairs,
            (&rate_a, &rate_b),
            1,
            |x, y| (x[0] - y[0]).abs(),
        );
        let mean_rate = (
            mean(
                &rate_pairs
                    .iter()
                    .map(|&(i, _)| rate_a[i])
                    .collect::<Vec<_>>(),
            ),
            mean(
                &rate_pairs
                    .iter()
                    .map(|&(_, j)| rate_b[j])
                    .collect::<Vec<_>>(),
            ),
        );
        let mut out = PopulationComparison {
            name: p.clone(),
            sizes: (*size_a, *size_b),
            mean_rate,
            series: vec![rates],
            averaged: None,
        };
        if let Some((time, nb_samples, edges, pairs)) = &histograms {
            let bins = edges.len() - 1;
            let name = format!("{}/{p}", histograms::GROUP);
            let (ha, hb) = (
                ra.rows(&name, time.len(), bins)?,
                rb.rows(&name, *nb_samples, bins)?,
            );
            let both = (ha.as_slice(), hb.as_slice());
            out.series
                .push(series("histogram_l1", time, pairs, both, bins, |x, y| {
                    l1(x, y, edges)
                }));
            out.series
                .push(series("histogram_w1", time, pairs, both, bins, |x, y| {
                    wasserstein1(x, y, edges)
                }));
            let average = |h: &[f64], pick: &dyn Fn(&(usize, usize)) -> usize| {
                let mut m = vec![0.0; bins];
                for pair in pairs {
                    let k = pick(pair);
                    for (x, y) in m.iter_mut().zip(&h[k * bins..(k + 1) * bins]) {
                        *x += y / pairs.len() as f64;
                    }
                }
                m
            };
            let (ma, mb) = (average(&ha, &|p| p.0), average(&hb, &|p| p.1));
            out.averaged = Some((l1(&ma, &mb, edges), wasserstein1(&ma, &mb, edges)));
            if let Some(xe) = &xi_edges {
                let xb = xe.len() - 1;
                let name = format!("{}/{p}", histograms::DENSITIES);
                let (da, db) = (
                    ra.rows(&name, time.len(), xb * bins)?,
                    rb.rows(&name, *nb_samples, xb * bins)?,
                );
                let both = (da.as_slice(), db.as_slice());
                let dxi = (xe[xb] - xe[0]) / xb as f64;
                out.series.push(series(
                    "density_l1",
                    time,
                    pairs,
                    both,
                    xb * bins,
                    |x, y| dxi * mean_over_rows(x, y, bins, |u, v| l1(u, v, edges)) * xb as f64,
                ));
                out.series.push(series(
                    "density_w1",
                    time,
                    pairs,
                    both,
                    xb * bins,
                    |x, y| mean_over_rows(x, y, bins, |u, v| wasserstein1(u, v, edges)),
                ));
            }
            let label_name = format!("{}/{p}", histograms::LABELS);
            if let Some(le) = label_edges
                .as_ref()
                .filter(|_| ra.file.link_exists(&label_name) && rb.file.link_exists(&label_name))
            {
                let lb = le.len() - 1;
                let (_, sa) = ra.read_shaped(&label_name)?;
                let (_, sb) = rb.read_shaped(&label_name)?;
                if sa.get(1) != sb.get(1) {
                    return Err(mismatch(format!(
                        "/{label_name}: {:?} label classes in {na}, {:?} in {nb}",
                        sa.get(1),
                        sb.get(1)
                    )));
                }
                let k = sa.get(1).copied().unwrap_or(0);
                let (la, lbv) = (
                    ra.rows(&label_name, time.len(), k * lb)?,
                    rb.rows(&label_name, *nb_samples, k * lb)?,
                );
                let both = (la.as_slice(), lbv.as_slice());
                out.series
                    .push(series("label_l1", time, pairs, both, k * lb, |x, y| {
                        mean_over_rows(x, y, lb, |u, v| l1(u, v, le))
                    }));
                out.series
                    .push(series("label_w1", time, pairs, both, k * lb, |x, y| {
                        mean_over_rows(x, y, lb, |u, v| wasserstein1(u, v, le))
                    }));
            }
        }
        if let Some((time, nb_samples, pairs)) = &moments {
            let read =
                |r: &Run, q: &str, n: usize| r.rows(&format!("{}/{p}/{q}", moments::GROUP), n, 1);
            let (ma, mb) = (
                read(&ra, "mean", time.len())?,
                read(&rb, "mean", *nb_samples)?,
            );
            let (va, vb) = (
                read(&ra, "variance", time.len())?,
                read(&rb, "variance", *nb_samples)?,
            );
            out.series.push(series(
                "mean_abs_diff",
                time,
                pairs,
                (&ma, &mb),
                1,
                |x, y| (x[0] - y[0]).abs(),
            ));
            out.series
                .push(series("sd_abs_diff", time, pairs, (&va, &vb), 1, |x, y| {
                    (x[0].max(0.0).sqrt() - y[0].max(0.0).sqrt()).abs()
                }));
        }
        populations.push(out);
    }

    let mut trees = Vec::new();
    for name in ra.trees.iter().filter(|t| rb.trees.contains(t)) {
        let group = format!("{}/{name}", trees::GROUP);
        if ra.definition(&group) != rb.definition(&group) {
            notes.push(format!(
                "tree {name}: defined differently in the two files, not compared"
            ));
            continue;
        }
        let (ta, tb) = (
            ra.read(&format!("{group}/time"))?,
            rb.read(&format!("{group}/time"))?,
        );
        let (va, vb) = (
            ra.rows(&format!("{group}/value"), ta.len(), 1)?,
            rb.rows(&format!("{group}/value"), tb.len(), 1)?,
        );
        let pairs = common(&ta, &tb, from);
        if pairs.is_empty() {
            notes.push(format!("tree {name}: no common sample times, not compared"));
            continue;
        }
        // Sampled trees (`sample < 1`): their differences include the sampling error. Each
        // file's standard errors (zero where exact) combine into that of the difference.
        let mut stderrs = Vec::new();
        for (r, label, n) in [(&ra, &na, ta.len()), (&rb, &nb, tb.len())] {
            let path = format!("{group}/stderr");
            if r.file.link_exists(&path) {
                let stderr = r.rows(&path, n, 1)?;
                let attr = |a: &str| {
                    r.file
                        .group(&group)
                        .and_then(|g| g.attr(a))
                        .and_then(|a| a.read_scalar::<f64>())
                        .map_or(String::from("?"), |x| x.to_string())
                };
                let replicates = r
                    .file
                    .group(&group)
                    .and_then(|g| g.attr("replicates"))
                    .and_then(|a| a.read_scalar::<u64>())
                    .map_or(String::from("?"), |x| x.to_string());
                notes.push(format!(
                    "tree {name}: the values in {label} are sampled estimates (sample = {}, \
                     {replicates} replicates), mean standard error {:.6e}",
                    attr("sample"),
                    mean(&stderr)
                ));
                stderrs.push(stderr);
            } else {
                stderrs.push(vec![0.0; n]);
            }
        }
        let both = (va.as_slice(), vb.as_slice());
        let a_values = series("tree_a", &ta, &pairs, both, 1, |x, _| x[0]);
        let b_values = series("tree_b", &ta, &pairs, both, 1, |_, y| y[0]);
        let mean_ab = (mean(&a_values.value), mean(&b_values.value));
        let mut tree_series = vec![
            a_values,
            b_values,
            series("tree_abs_diff", &ta, &pairs, both, 1, |x, y| {
                (x[0] - y[0]).abs()
            }),
        ];
        if stderrs.iter().flatten().any(|&e| e != 0.0) {
            let se = (stderrs[0].as_slice(), stderrs[1].as_slice());
            tree_series.push(series("tree_stderr", &ta, &pairs, se, 1, |x, y| {
                x[0].hypot(y[0])
            }));
        }
        trees.push(TreeComparison {
            name: name.clone(),
            series: tree_series,
            mean: mean_ab,
        });
    }
    for (x, y, has, lacks) in [(&ra, &rb, &na, &nb), (&rb, &ra, &nb, &na)] {
        for t in x.trees.iter().filter(|t| !y.trees.contains(t)) {
            notes.push(format!(
                "tree {t}: in {has} only, not compared (absent in {lacks})"
            ));
        }
    }
    Ok(Comparison {
        a: na,
        b: nb,
        from,
        notes,
        populations,
        trees,
    })
}

/// `lapicque compare A B [--from T] [-o CSV]`: the table, after writing the series to `csv`.
pub fn compare_files(a: &Path, b: &Path, from: f64, csv: Option<&Path>) -> Result<String, Error> {
    if !from.is_finite() {
        return Err(Error::Argument {
            key: "--from".into(),
            value: from.to_string(),
            reason: "must be a finite time [ms]".into(),
        });
    }
    let c = compare(a, b, from)?;
    let mut out = c.table();
    if let Some(path) = csv {
        let text = c.csv();
        std::fs::write(path, &text).map_err(|e| Error::Argument {
            key: "-o".into(),
            value: path.display().to_string(),
            reason: format!("cannot be written: {e}"),
        })?;
        let rows = text.lines().count() - 1;
        let _ = writeln!(out, "wrote {} ({rows} rows)", path.display());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bins` bins of width `w` from `v0`.
    fn edges(v0: f64, w: f64, bins: usize) -> Vec<f64> {
        (0..=bins).map(|k| v0 + k as f64 * w).collect()
    }

    /// A probability density concentrated in bin `k`.
    fn point(k: usize, bins: usize, w: f64) -> Vec<f64> {
        let mut f = vec![0.0; bins];
        f[k] = 1.0 / w;
        f
    }

    #[test]
    fn point_masses_k_bins_apart() {
        let (w, bins) = (0.5, 40);
        let e = edges(-10.0, w, bins);
        for (i, k) in [(0, 1), (3, 7), (0, 39), (12, 20)] {
            let (a, b) = (point(i, bins, w), point(i + k, bins, w));
            assert!((wasserstein1(&a, &b, &e) - k as f64 * w).abs() < 1e-12);
            assert!((l1(&a, &b, &e) - 2.0).abs() < 1e-12);
        }
    }

    #[test]
    fn identical_measures_are_at_distance_zero() {
        let e = edges(-20.0, 0.5, 80);
        let f: Vec<f64> = (0..80).map(|b| ((b as f64) * 0.3).sin().abs()).collect();
        assert_eq!(wasserstein1(&f, &f, &e), 0.0);
        assert_eq!(l1(&f, &f, &e), 0.0);
    }

    #[test]
    fn distances_are_symmetric() {
        let e = edges(-20.0, 0.5, 80);
        let f: Vec<f64> = (0..80).map(|b| ((b as f64) * 0.3).sin().abs()).collect();
        let g: Vec<f64> = (0..80)
            .map(|b| (-(b as f64 - 30.0).powi(2) / 50.0).exp())
            .collect();
        assert_eq!(wasserstein1(&f, &g, &e), wasserstein1(&g, &f, &e));
        assert_eq!(l1(&f, &g, &e), l1(&g, &f, &e));
        assert!(wasserstein1(&f, &g, &e) > 0.0);
    }

    #[test]
    fn a_split_mass_moves_one_bin_each_way() {
        // Half in bin 0 and half in bin 2 against all in bin 1: each half moves one bin.
        let (w, e) = (2.0, edges(0.0, 2.0, 3));
        let a = [0.25, 0.0, 0.25];
        let b = [0.0, 0.5, 0.0];
        assert!((mass(&a, &e) - 1.0).abs() < 1e-15);
        assert!((wasserstein1(&a, &b, &e) - w).abs() < 1e-12);
        assert!((l1(&a, &b, &e) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn masses_are_normalised_for_w1_but_not_for_l1() {
        // Same shape, 60% and 100% of the neurons inside the range.
        let e = edges(0.0, 1.0, 4);
        let a = [0.1, 0.2, 0.3, 0.4];
        let b: Vec<f64> = a.iter().map(|x| 0.6 * x).collect();
        assert!(wasserstein1(&a, &b, &e).abs() < 1e-15);
        assert!((l1(&a, &b, &e) - 0.4).abs() < 1e-12);
        // A measure with no mass inside the range: no W1 against one with mass.
        let zero = [0.0; 4];
        assert!(wasserstein1(&a, &zero, &e).is_nan());
        assert_eq!(wasserstein1(&zero, &zero, &e), 0.0);
    }

    #[test]
    fn unequal_bins_use_the_distance_between_centres() {
        // Bins [0, 1), [1, 3): centres 0.5 and 2, 1.5 mV apart.
        let e = [0.0, 1.0, 3.0];
        let (a, b) = ([1.0, 0.0], [0.0, 0.5]);
        assert!((wasserstein1(&a, &b, &e) - 1.5).abs() < 1e-12);
    }

    #[test]
    fn grids_are_compared_with_a_relative_tolerance() {
        let x = [0.0, 10.0, 20.0];
        let y = [0.0, 10.000000000000002, 20.0];
        assert!(grid_difference("t", &x, &y, "a", "b").is_none());
        let z = [0.0, 10.5, 20.0];
        assert_eq!(
            grid_difference("t", &x, &z, "a", "b").unwrap(),
            "t: number 1 is 10 in a, 10.5 in b"
        );
        assert!(grid_difference("t", &x, &x[..2], "a", "b").is_some());
    }

    #[test]
    fn max_propagates_nan() {
        assert!(max(&[1.0, f64::NAN]).is_nan());
        assert_eq!(max(&[1.0, 3.0, 2.0]), 3.0);
        assert!(mean(&[]).is_nan());
    }
}
