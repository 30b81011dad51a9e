//! Coordinates of neurons and kernels (extended graphons) `w(xi_target, xi_source)`.
//!
//! Every neuron has a coordinate `xi` on the ring `[0, 1)` or on the torus `[0, 1)^2`
//! (population key `coordinates`). With `placement = "even"` neuron `k` of a population of `n`
//! sits at `k / n` on the ring, or on the `m x m` grid (`n = m^2`) at `((k mod m)/m, (k div m)/m)`
//! on the torus; with `"random"` its coordinate is uniform, drawn from its own stream
//! `(seed, gid, Position)`. Either way it depends on the gid alone, never on the rank.
//!
//! Kernels are evaluated at two coordinates; distances are periodic (the shortest way round).

use crate::config::ConfigError;
use crate::rng::{self, Purpose};
use rand::RngExt;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Geometry {
    /// The circle `[0, 1)` (the second coordinate is 0).
    #[default]
    Ring,
    /// The flat torus `[0, 1)^2`.
    Torus,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// A regular grid.
    #[default]
    Even,
    /// Independent uniform positions.
    Random,
}

/// Where a population's neurons sit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub geometry: Geometry,
    pub placement: Placement,
    /// Population size.
    pub size: u64,
    /// Side of the grid on the torus (`size = side^2`).
    side: u64,
}

impl Layout {
    /// Validates the layout of a population of `size` neurons (`key` names the population's
    /// `coordinates` key in errors).
    pub fn new(
        geometry: Geometry,
        placement: Placement,
        size: u64,
        key: &str,
    ) -> Result<Layout, ConfigError> {
        let side = (size as f64).sqrt().round() as u64;
        if geometry == Geometry::Torus && placement == Placement::Even && side * side != size {
            return Err(ConfigError::Invalid {
                key: key.to_string(),
                value: "\"torus\"".into(),
                reason: format!(
                    "an even placement on the torus needs a square population size, not {size}"
                ),
            });
        }
        Ok(Layout {
            geometry,
            placement,
            size,
            side,
        })
    }

    /// The coordinate of the neuron at `offset` in its population, whose gid is `gid`.
    pub fn coordinate(&self, seed: u64, gid: u64, offset: u64) -> [f64; 2] {
        match (self.placement, self.geometry) {
            (Placement::Even, Geometry::Ring) => [offset as f64 / self.size as f64, 0.0],
            (Placement::Even, Geometry::Torus) => [
                (offset % self.side) as f64 / self.side as f64,
                (offset / self.side) as f64 / self.side as f64,
            ],
            (Placement::Random, g) => {
                let mut s = rng::stream(seed, gid, Purpose::Position);
                let x: f64 = s.random();
                let y: f64 = if g == Geometry::Torus {
                    s.random()
                } else {
                    0.0
                };
                [x, y]
            }
        }
    }
}

/// The shortest distance between `a` and `b` on the circle of circumference 1.
pub fn periodic(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(1.0);
    d.min(1.0 - d)
}

/// The bin of a coordinate's first component among `bins` equal bins of `[0, 1)`.
pub fn bin(xi: [f64; 2], bins: usize) -> usize {
    ((xi[0] * bins as f64) as usize).min(bins - 1)
}

/// A kernel `w(xi_target, xi_source) >= 0` (where it scales a probability) or of any sign
/// (where it scales a weight).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Kernel {
    /// `w = value`.
    Constant { value: f64 },
    /// Stochastic block model: the first coordinate falls into one of `B` equal blocks of
    /// `[0, 1)`; `w = matrix[block(target)][block(source)]` (`B x B` rows).
    Blocks { matrix: Vec<Vec<f64>> },
    /// `w = a + b cos(2 pi (x_t - x_s))` on the ring (on the torus, the mean of the cosines of
    /// both coordinate differences).
    Cosine { a: f64, b: f64 },
    /// `w = amplitude exp(-d^2 / (2 width^2))`, `d` the periodic distance.
    Gaussian { amplitude: f64, width: f64 },
}

impl Kernel {
    /// Checks the parameters; `key` names the kernel table in errors.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let bad = |k: &str, v: String, why: &str| ConfigError::Invalid {
            key: format!("{key}.{k}"),
            value: v,
            reason: why.to_string(),
        };
        let finite = |k: &str, v: f64| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(bad(k, v.to_string(), "must be finite"))
            }
        };
        match self {
            Kernel::Constant { value } => finite("value", *value),
            Kernel::Blocks { matrix } => {
                let b = matrix.len();
                if b == 0 {
                    return Err(bad("matrix", "[]".into(), "needs at least one block"));
                }
                for (i, row) in matrix.iter().enumerate() {
                    if row.len() != b {
                        return Err(bad(
                            "matrix",
                            format!("{row:?}"),
                            &format!("row {i} must have {b} entries (a square matrix)"),
                        ));
                    }
                    for &x in row {
                        finite("matrix", x)?;
                    }
                }
                Ok(())
            }
            Kernel::Cosine { a, b } => finite("a", *a).and(finite("b", *b)),
            Kernel::Gaussian { amplitude, width } => {
                finite("amplitude", *amplitude)?;
                if width.is_finite() && *width > 0.0 {
                    Ok(())
                } else {
                    Err(bad(
                        "width",
                        width.to_string(),
                        "must be positive and finite",
                    ))
                }
            }
        }
    }

    pub fn eval(&self, geometry: Geometry, t: [f64; 2], s: [f64; 2]) -> f64 {
        match self {
            Kernel::Constant { value } => *value,
            Kernel::Blocks { matrix } => {
                let b = matrix.len();
                matrix[bin(t, b)][bin(s, b)]
            }
            Kernel::Cosine { a, b } => {
                let c = |x: f64, y: f64| (2.0 * std::f64::consts::PI * (x - y)).cos();
                match geometry {
                    Geometry::Ring => a + b * c(t[0], s[0]),
                    Geometry::Torus => a + b * 0.5 * (c(t[0], s[0]) + c(t[1], s[1])),
                }
            }
            Kernel::Gaussian { amplitude, width } => {
                let dx = periodic(t[0], s[0]);
                let dy = match geometry {
                    Geometry::Ring => 0.0,
                    Geometry::Torus => periodic(t[1], s[1]),
                };
                amplitude * (-(dx * dx + dy * dy) / (2.0 * width * width)).exp()
            }
        }
    }

    /// The largest value of the kernel over all pairs of coordinates.
    pub fn max(&self) -> f64 {
        match self {
            Kernel::Constant { value } => *value,
            Kernel::Blocks { matrix } => matrix
                .iter()
                .flatten()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max),
            Kernel::Cosine { a, b } => a + b.abs(),
            Kernel::Gaussian { amplitude, .. } => amplitude.max(0.0),
        }
    }

    /// The smallest value of the kernel over all pairs of coordinates.
    pub fn min(&self) -> f64 {
        match self {
            Kernel::Constant { value } => *value,
            Kernel::Blocks { matrix } => matrix
                .iter()
                .flatten()
                .copied()
                .fold(f64::INFINITY, f64::min),
            Kernel::Cosine { a, b } => a - b.abs(),
            // The largest periodic distance on the torus is sqrt(1/2), on the ring 1/2; the
            // value there is positive, 0 is a safe lower bound.
            Kernel::Gaussian { amplitude, .. } => amplitude.min(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_coordinates_tile_the_ring_and_the_torus() {
        let ring = Layout::new(Geometry::Ring, Placement::Even, 4, "k").unwrap();
        let xs: Vec<f64> = (0..4).map(|o| ring.coordinate(1, o, o)[0]).collect();
        assert_eq!(xs, [0.0, 0.25, 0.5, 0.75]);
        let torus = Layout::new(Geometry::Torus, Placement::Even, 9, "k").unwrap();
        assert_eq!(torus.coordinate(1, 5, 5), [2.0 / 3.0, 1.0 / 3.0]);
        assert!(Layout::new(Geometry::Torus, Placement::Even, 10, "k").is_err());
    }

    #[test]
    fn random_coordinates_depend_on_the_gid_only_and_are_uniform() {
        let l = Layout::new(Geometry::Torus, Placement::Random, 10, "k").unwrap();
        assert_eq!(l.coordinate(7, 3, 3), l.coordinate(7, 3, 0));
        let n = 20_000;
        let mean: f64 = (0..n).map(|g| l.coordinate(7, g, 0)[1]).sum::<f64>() / n as f64;
        // Uniform mean 1/2, sd of the mean sqrt(1/12 / n) ~ 0.002.
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
    }

    #[test]
    fn kernels_take_their_documented_values() {
        let g = Geometry::Ring;
        let blocks = Kernel::Blocks {
            matrix: vec![vec![1.0, 2.0], vec![3.0, 4.0]],
        };
        assert_eq!(blocks.eval(g, [0.7, 0.0], [0.1, 0.0]), 3.0);
        let cos = Kernel::Cosine { a: 1.0, b: 0.5 };
        assert!((cos.eval(g, [0.5, 0.0], [0.0, 0.0]) - 0.5).abs() < 1e-15);
        let gauss = Kernel::Gaussian {
            amplitude: 2.0,
            width: 0.1,
        };
        // Periodic: 0.95 and 0.05 are 0.1 apart, one width.
        let v = gauss.eval(g, [0.95, 0.0], [0.05, 0.0]);
        assert!((v - 2.0 * (-0.5f64).exp()).abs() < 1e-12, "{v}");
        assert_eq!(cos.max(), 1.5);
        assert_eq!(blocks.min(), 1.0);
    }
}
