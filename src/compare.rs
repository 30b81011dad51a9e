//! `lapicque compare`: distances between two output files' rates and empirical measures over
//! time, e.g. a finite network against its mean-field limit written in the same layout, or two
//! networks of different seeds or sizes.
//!
//! Both files must be complete (`status = "complete"`) and hold the same populations (names and
//! sizes). For each population it compares
//!
//! * rates (`/rates/<pop>`, Hz): `|r_A - r_B|` per bin, its mean over the bins, and the
//!   difference `mean r_A - mean r_B` of the mean rates (plain means over the bins, as
//!   `lapicque inspect` prints them); the bins (`/rates/time`, `bin_width`) must agree;
//! * the empirical densities of V (`/histograms/<pop>`, 1/mV on `/histograms/edges`), at every
//!   sample time: the L1 distance ([`l1`]) and the Wasserstein-1 distance ([`wasserstein1`]);
//!   sample times and edges must agree;
//! * moments (`/moments/<pop>`): `|mean_A - mean_B|` and `|sd_A - sd_B|` of V at every sample
//!   time [mV]; sample times must agree.
//!
//! Histograms and moments are compared when both files have them; when only one has them, the
//! report says so. Times and edges agree when they differ by at most `1e-9 max(|x|, |y|, 1)`
//! (a mean-field solver may compute its sample times differently). Anything that differs is
//! refused with one line naming it ([`Error::Mismatch`], exit code 2).

use crate::inspect::{num, text};
use crate::Error;
use hdf5::File;
use std::fmt::Write as _;
use std::path::Path;

/// Total mass `sum_b f_b w_b` of a binned density `f` [1/mV] on `edges` [mV] (bin `b` is
/// `[edges[b], edges[b + 1])`, of width `w_b`): the fraction of neurons inside the range.
pub fn mass(f: &[f64], edges: &[f64]) -> f64 {
    f.iter()
        .zip(edges.windows(2))
        .map(|(f, e)| f * (e[1] - e[0]))
        .sum()
}

/// L1 distance `sum_b |fA_b - fB_b| w_b` between two binned densities [1/mV] on the same
/// `edges` [mV] (dimensionless; 2 for disjoint probability measures). The densities are not
/// normalised: a difference in the mass inside the range counts.
pub fn l1(fa: &[f64], fb: &[f64], edges: &[f64]) -> f64 {
    fa.iter()
        .zip(fb)
        .zip(edges.windows(2))
        .map(|((a, b), e)| (a - b).abs() * (e[1] - e[0]))
        .sum()
}

/// Wasserstein-1 distance [mV] between the binned measures of two densities [1/mV] on the same
/// `edges` [mV]: each bin's mass sits at the bin's centre `c_b`, mass outside
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

/// One per-time series of a population: `quantity` at `time` [ms].
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
    pub size: u64,
    /// Mean rates of A and B over the bins [Hz].
    pub mean_rate: (f64, f64),
    /// `rate_abs_diff` [Hz] per rate bin; then, when compared, `histogram_l1` [1] and
    /// `histogram_w1` [mV] per histogram sample, `mean_abs_diff` and `sd_abs_diff` [mV] per
    /// moment sample.
    pub series: Vec<Series>,
}

impl PopulationComparison {
    pub fn series(&self, quantity: &str) -> Option<&Series> {
        self.series.iter().find(|s| s.quantity == quantity)
    }
}

/// The comparison of two output files.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    /// What was compared on which grid, and what was not compared and why.
    pub notes: Vec<String>,
    pub populations: Vec<PopulationComparison>,
}

impl Comparison {
    /// A readable table: one row per population.
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
        for p in &self.populations {
            let stat = |q: &str, f: fn(&[f64]) -> f64| {
                p.series(q)
                    .map_or("-".to_string(), |s| format!("{:.4}", f(&s.value)))
            };
            let (ra, rb) = p.mean_rate;
            let _ = writeln!(
                out,
                "{:<12} {:>9.3} {:>9.3} {:>9.3} {:>10} {:>9} {:>9} {:>9} {:>9} {:>10}",
                p.name,
                ra,
                rb,
                ra - rb,
                stat("rate_abs_diff", mean),
                stat("histogram_l1", mean),
                stat("histogram_l1", max),
                stat("histogram_w1", mean),
                stat("histogram_w1", max),
                stat("mean_abs_diff", max),
            );
        }
        out
    }

    /// The per-time series as CSV: `population,quantity,time_ms,value`.
    pub fn csv(&self) -> String {
        let mut out = String::from("population,quantity,time_ms,value\n");
        for p in &self.populations {
            for s in &p.series {
                for (t, v) in s.time.iter().zip(&s.value) {
                    let _ = writeln!(out, "{},{},{t},{v}", p.name, s.quantity);
                }
            }
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
    histograms: Option<(Vec<f64>, Vec<f64>)>,
    moment_time: Option<Vec<f64>>,
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
        };
        let pops = run
            .file
            .group("populations")
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
        run.rate_time = run.read("rates/time")?;
        run.rate_bin = run
            .file
            .group("rates")
            .ok()
            .and_then(|g| num(&g, "bin_width"))
            .ok_or_else(|| run.missing("/rates bin_width"))?;
        if run.file.link_exists("histograms/edges") {
            run.histograms = Some((run.read("histograms/time")?, run.read("histograms/edges")?));
        }
        if run.file.link_exists("moments/time") {
            run.moment_time = Some(run.read("moments/time")?);
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
}

fn close(x: f64, y: f64) -> bool {
    x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
}

/// Where two grids (`what`: "rate bins", ...) differ, if they do.
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

/// Compares two output files (see the module documentation).
pub fn compare(a: &Path, b: &Path) -> Result<Comparison, Error> {
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
    for ((p, sa), (_, sb)) in ra.populations.iter().zip(&rb.populations) {
        if sa != sb {
            return Err(mismatch(format!(
                "population {p} has {sa} neurons in {na}, {sb} in {nb}"
            )));
        }
    }
    if !close(ra.rate_bin, rb.rate_bin) {
        return Err(mismatch(format!(
            "rate bins of {} ms in {na}, {} ms in {nb}",
            ra.rate_bin, rb.rate_bin
        )));
    }
    if let Some(d) = grid_difference("rate bins", &ra.rate_time, &rb.rate_time, &na, &nb) {
        return Err(mismatch(d));
    }
    let mut notes = vec![format!(
        "rates: {} bins of {} ms",
        ra.rate_time.len(),
        ra.rate_bin
    )];
    let absent = |what: &str, x: bool, y: bool| {
        let (has, lacks) = if x { (&na, &nb) } else { (&nb, &na) };
        (x != y).then(|| format!("{what}: in {has} only, not compared (absent in {lacks})"))
    };
    let histograms = match (&ra.histograms, &rb.histograms) {
        (Some((ta, ea)), Some((tb, eb))) => {
            if let Some(d) = grid_difference("histogram samples", ta, tb, &na, &nb) {
                return Err(mismatch(d));
            }
            if let Some(d) = grid_difference("histogram edges", ea, eb, &na, &nb) {
                return Err(mismatch(d));
            }
            notes.push(format!(
                "histograms: {} samples, {} bins on [{}, {}) mV",
                ta.len(),
                ea.len().saturating_sub(1),
                ea.first().copied().unwrap_or(f64::NAN),
                ea.last().copied().unwrap_or(f64::NAN)
            ));
            Some((ta.clone(), ea.clone()))
        }
        (x, y) => {
            notes.extend(absent("histograms", x.is_some(), y.is_some()));
            None
        }
    };
    let moments = match (&ra.moment_time, &rb.moment_time) {
        (Some(ta), Some(tb)) => {
            if let Some(d) = grid_difference("moment samples", ta, tb, &na, &nb) {
                return Err(mismatch(d));
            }
            notes.push(format!("moments: {} samples", ta.len()));
            Some(ta.clone())
        }
        (x, y) => {
            notes.extend(absent("moments", x.is_some(), y.is_some()));
            None
        }
    };

    let mut populations = Vec::new();
    for (p, size) in &ra.populations {
        let read_both = |name: &str| -> Result<(Vec<f64>, Vec<f64>), Error> {
            let (x, y) = (ra.read(name)?, rb.read(name)?);
            for (r, v) in [(&ra, &x), (&rb, &y)] {
                let expected = match name.split('/').next() {
                    Some("rates") => ra.rate_time.len(),
                    _ => moments.as_ref().map_or(0, Vec::len),
                };
                if v.len() != expected {
                    return Err(Error::Read {
                        path: r.path.clone(),
                        reason: format!("/{name} has {} values, not {expected}", v.len()),
                    });
                }
            }
            Ok((x, y))
        };
        let (rate_a, rate_b) = read_both(&format!("rates/{p}"))?;
        let mut series = vec![Series {
            quantity: "rate_abs_diff",
            time: ra.rate_time.clone(),
            value: rate_a
                .iter()
                .zip(&rate_b)
                .map(|(x, y)| (x - y).abs())
                .collect(),
        }];
        if let Some((time, edges)) = &histograms {
            let bins = edges.len().saturating_sub(1);
            let name = format!("histograms/{p}");
            let (ha, hb) = (ra.read_shaped(&name)?, rb.read_shaped(&name)?);
            for (r, (_, shape)) in [(&ra, &ha), (&rb, &hb)] {
                if shape.as_slice() != [time.len(), bins] {
                    return Err(Error::Read {
                        path: r.path.clone(),
                        reason: format!(
                            "/{name} has shape {shape:?}, not [{}, {bins}]",
                            time.len()
                        ),
                    });
                }
            }
            let rows = |k: usize| {
                (
                    &ha.0[k * bins..(k + 1) * bins],
                    &hb.0[k * bins..(k + 1) * bins],
                )
            };
            series.push(Series {
                quantity: "histogram_l1",
                time: time.clone(),
                value: (0..time.len())
                    .map(|k| {
                        let (x, y) = rows(k);
                        l1(x, y, edges)
                    })
                    .collect(),
            });
            series.push(Series {
                quantity: "histogram_w1",
                time: time.clone(),
                value: (0..time.len())
                    .map(|k| {
                        let (x, y) = rows(k);
                        wasserstein1(x, y, edges)
                    })
                    .collect(),
            });
        }
        if let Some(time) = &moments {
            let (ma, mb) = read_both(&format!("moments/{p}/mean"))?;
            let (va, vb) = read_both(&format!("moments/{p}/variance"))?;
            series.push(Series {
                quantity: "mean_abs_diff",
                time: time.clone(),
                value: ma.iter().zip(&mb).map(|(x, y)| (x - y).abs()).collect(),
            });
            series.push(Series {
                quantity: "sd_abs_diff",
                time: time.clone(),
                value: va
                    .iter()
                    .zip(&vb)
                    .map(|(x, y)| (x.max(0.0).sqrt() - y.max(0.0).sqrt()).abs())
                    .collect(),
            });
        }
        populations.push(PopulationComparison {
            name: p.clone(),
            size: *size,
            mean_rate: (mean(&rate_a), mean(&rate_b)),
            series,
        });
    }
    Ok(Comparison {
        a: na,
        b: nb,
        notes,
        populations,
    })
}

/// `lapicque compare A B [-o CSV]`: the table, after writing the per-time series to `csv`.
pub fn compare_files(a: &Path, b: &Path, csv: Option<&Path>) -> Result<String, Error> {
    let c = compare(a, b)?;
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
