//! Time-dependent stimulation (`[stimulus.NAME]`): currents and inhomogeneous Poisson drives
//! with a step, piecewise-constant or sinusoidal time course, and the replay of a SONATA spike
//! file as input spikes, each applied to a population or to the neurons of a coordinate range.
//!
//! * `kind = "current"`: `I(t)` \[mV/ms\] is added to the drift, like `i_e`
//!   (`dV = [f(V) + i_e + I(t)] dt + ...`). A population receiving a current runs the general
//!   particle step ([`crate::model::neuron`]), whose exponential step takes the current exactly
//!   over the step and whose bridge correction sees it.
//! * `kind = "poisson"`: an independent Poisson spike train per neuron with rate `r(t)` \[Hz\],
//!   each event a jump of V by `weight` \[mV\], drawn from the neuron's own dynamics stream and
//!   added with the other delta inputs of the step.
//! * `kind = "replay"`: the spikes of node `i` of a population of a SONATA spike file arrive at
//!   neuron `i` (node id) of the target as jumps of `weight` \[mV\]; a spike at time `t` arrives in
//!   the first step that begins at or after `t` (a spike this program wrote, stamped at the end
//!   of the step that emitted it, arrives in the next step: a synapse of delay `dt`).
//!
//! The waveform is sampled at the middle of each step and held over the step: exact for steps
//! and piecewise-constant courses whose change points lie on the step grid (a change point off
//! the grid takes effect in the step whose middle lies past it), second order in `dt` for the
//! sine. Outside `[start, stop)` it is zero. Every draw comes from the target neuron's stream,
//! so stimulated runs stay identical on any number of ranks and after a restart.

use crate::config::{ConfigError, Population};
use crate::model::poisson::PoissonSampler;
use crate::rng::Stream;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StimulusKind {
    Current,
    Poisson,
    Replay,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveformKind {
    Step,
    Piecewise,
    Sine,
}

/// A stimulus as written in the configuration (`configs/reference.toml` documents each key).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawStimulus {
    /// The population stimulated.
    pub target: String,
    pub kind: StimulusKind,
    /// The time course of a current or Poisson rate.
    pub waveform: Option<WaveformKind>,
    /// Step: the value during `[start, stop)`; sine: the amplitude \[mV/ms or Hz\].
    pub amplitude: Option<f64>,
    /// Sine: the value around which it oscillates \[mV/ms or Hz\].
    pub offset: Option<f64>,
    /// Sine \[Hz\].
    pub frequency: Option<f64>,
    /// Sine: phase at `start` \[degrees\].
    pub phase: Option<f64>,
    /// \[ms\]
    pub start: Option<f64>,
    /// \[ms\]
    pub stop: Option<f64>,
    /// Piecewise: the times at which each value begins \[ms\], increasing.
    pub times: Option<Vec<f64>>,
    /// Piecewise: the values \[mV/ms or Hz\].
    pub values: Option<Vec<f64>>,
    /// Poisson and replay: the jump of V per event \[mV\].
    pub weight: Option<f64>,
    /// `[lo, hi)` of the first coordinate: only the target's neurons there are stimulated.
    pub region: Option<[f64; 2]>,
    /// Replay: the SONATA spike file (relative to the configuration's directory).
    pub file: Option<String>,
    /// Replay: the population under `/spikes/` in that file; default: the target's name.
    pub population: Option<String>,
}

/// A validated time course: zero outside `[start, stop)`.
#[derive(Clone, Debug, PartialEq)]
pub enum Waveform {
    Step {
        amplitude: f64,
        start: f64,
        stop: f64,
    },
    /// `values[k]` from `times[k]` until `times[k + 1]` (the last one until `stop`).
    Piecewise {
        times: Vec<f64>,
        values: Vec<f64>,
        stop: f64,
    },
    /// `offset + amplitude sin(2 pi frequency (t - start) + phase)`.
    Sine {
        offset: f64,
        amplitude: f64,
        /// \[1/ms\]
        frequency: f64,
        /// \[rad\]
        phase: f64,
        start: f64,
        stop: f64,
    },
}

impl Waveform {
    /// The value at time `t` \[ms\].
    pub fn at(&self, t: f64) -> f64 {
        match self {
            Waveform::Step {
                amplitude,
                start,
                stop,
            } => {
                if t >= *start && t < *stop {
                    *amplitude
                } else {
                    0.0
                }
            }
            Waveform::Piecewise {
                times,
                values,
                stop,
            } => {
                let k = times.partition_point(|&x| x <= t);
                if k == 0 || t >= *stop {
                    0.0
                } else {
                    values[k - 1]
                }
            }
            Waveform::Sine {
                offset,
                amplitude,
                frequency,
                phase,
                start,
                stop,
            } => {
                if t >= *start && t < *stop {
                    offset
                        + amplitude
                            * (2.0 * std::f64::consts::PI * frequency * (t - start) + phase).sin()
                } else {
                    0.0
                }
            }
        }
    }

    /// The smallest and largest value it takes.
    fn range(&self) -> (f64, f64) {
        let with_zero = |lo: f64, hi: f64| (lo.min(0.0), hi.max(0.0));
        match self {
            Waveform::Step { amplitude, .. } => with_zero(*amplitude, *amplitude),
            Waveform::Piecewise { values, .. } => with_zero(
                values.iter().copied().fold(f64::INFINITY, f64::min),
                values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            ),
            Waveform::Sine {
                offset, amplitude, ..
            } => with_zero(offset - amplitude.abs(), offset + amplitude.abs()),
        }
    }
}

/// What a stimulus does.
#[derive(Clone, Debug, PartialEq)]
pub enum Drive {
    /// \[mV/ms\]
    Current(Waveform),
    /// Rate \[Hz\] and jump \[mV\].
    Poisson { rate: Waveform, weight: f64 },
    /// Spikes `(node id, time [ms])` of the file, sorted by time then node id, and the jump.
    Replay {
        path: String,
        population: String,
        spikes: Vec<(u64, f64)>,
        weight: f64,
    },
}

/// A validated stimulus.
#[derive(Clone, Debug, PartialEq)]
pub struct Stimulus {
    pub name: String,
    /// Index into [`crate::config::Config::populations`].
    pub target: usize,
    pub drive: Drive,
    /// `[lo, hi)` of the first coordinate, if not the whole population.
    pub region: Option<(f64, f64)>,
}

impl Stimulus {
    /// Validates `raw` (a replay reads its spike file here); `dt` is the step \[ms\].
    pub fn from_raw(
        name: &str,
        raw: &RawStimulus,
        populations: &[Population],
        dt: f64,
    ) -> Result<Stimulus, ConfigError> {
        use crate::config::{finite, non_negative, positive};
        let key = |k: &str| format!("stimulus.{name}.{k}");
        let bad = |k: &str, v: String, why: String| ConfigError::Invalid {
            key: key(k),
            value: v,
            reason: why,
        };
        let target = populations
            .iter()
            .position(|p| p.name == raw.target)
            .ok_or_else(|| {
                let names: Vec<&str> = populations.iter().map(|p| p.name.as_str()).collect();
                bad(
                    "target",
                    format!("{:?}", raw.target),
                    format!("no such population (have: {})", names.join(", ")),
                )
            })?;
        // Keys that belong to other kinds or waveforms are refused rather than ignored.
        let present: [(&str, bool); 12] = [
            ("waveform", raw.waveform.is_some()),
            ("amplitude", raw.amplitude.is_some()),
            ("offset", raw.offset.is_some()),
            ("frequency", raw.frequency.is_some()),
            ("phase", raw.phase.is_some()),
            ("start", raw.start.is_some()),
            ("stop", raw.stop.is_some()),
            ("times", raw.times.is_some()),
            ("values", raw.values.is_some()),
            ("weight", raw.weight.is_some()),
            ("file", raw.file.is_some()),
            ("population", raw.population.is_some()),
        ];
        let kind_name = match raw.kind {
            StimulusKind::Current => "current",
            StimulusKind::Poisson => "poisson",
            StimulusKind::Replay => "replay",
        };
        let mut allowed: Vec<&str> = match (raw.kind, raw.waveform) {
            (StimulusKind::Replay, _) => vec!["weight", "file", "population"],
            (_, None) => return Err(bad(
                "waveform",
                "(missing)".into(),
                "required by a current or poisson stimulus: \"step\", \"piecewise\" or \"sine\""
                    .into(),
            )),
            (_, Some(w)) => [&["waveform"][..], wave_keys(w)].concat(),
        };
        if raw.kind == StimulusKind::Poisson {
            allowed.push("weight");
        }
        for (k, here) in present {
            if here && !allowed.contains(&k) {
                let what = match raw.waveform {
                    Some(w)
                        if raw.kind != StimulusKind::Replay
                            && !matches!(k, "weight" | "file" | "population") =>
                    {
                        format!("waveform = {:?}", format!("{w:?}").to_lowercase())
                    }
                    _ => format!("kind = {kind_name:?}"),
                };
                return Err(bad(k, "(set)".into(), format!("does not apply to {what}")));
            }
        }
        let required = |k: &str, v: Option<f64>, unit: &str| -> Result<f64, ConfigError> {
            let v = v.ok_or_else(|| {
                bad(
                    k,
                    "(missing)".into(),
                    format!("required by this stimulus {unit}"),
                )
            })?;
            finite(&key(k), v, unit)
        };
        let region = match raw.region {
            None => None,
            Some([lo, hi]) => {
                if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo < hi && hi <= 1.0) {
                    return Err(bad(
                        "region",
                        format!("[{lo}, {hi}]"),
                        "must be [lo, hi) with 0 <= lo < hi <= 1 (the first coordinate)".into(),
                    ));
                }
                Some((lo, hi))
            }
        };
        let unit = if raw.kind == StimulusKind::Current {
            "[mV/ms]"
        } else {
            "[Hz]"
        };
        let drive = if raw.kind == StimulusKind::Replay {
            let path = raw.file.clone().ok_or_else(|| {
                bad(
                    "file",
                    "(missing)".into(),
                    "required by kind = \"replay\"".into(),
                )
            })?;
            let weight = required("weight", raw.weight, "[mV]")?;
            let population = raw.population.clone().unwrap_or(raw.target.clone());
            let spikes = read_spikes(&path, &population, populations[target].size)
                .map_err(|why| bad("file", format!("{path:?}"), why))?;
            Drive::Replay {
                path,
                population,
                spikes,
                weight,
            }
        } else {
            let start = non_negative(&key("start"), raw.start.unwrap_or(0.0), "[ms]")?;
            let stop = match raw.stop {
                None => f64::INFINITY,
                Some(s) => {
                    let s = finite(&key("stop"), s, "[ms]")?;
                    if s <= start {
                        return Err(bad(
                            "stop",
                            s.to_string(),
                            format!("must exceed start ({start}) [ms]"),
                        ));
                    }
                    s
                }
            };
            let wave = match raw.waveform.expect("checked above") {
                WaveformKind::Step => Waveform::Step {
                    amplitude: required("amplitude", raw.amplitude, unit)?,
                    start,
                    stop,
                },
                WaveformKind::Sine => Waveform::Sine {
                    offset: finite(&key("offset"), raw.offset.unwrap_or(0.0), unit)?,
                    amplitude: required("amplitude", raw.amplitude, unit)?,
                    frequency: positive(
                        &key("frequency"),
                        required("frequency", raw.frequency, "[Hz]")?,
                        "[Hz]",
                    )? / 1000.0,
                    phase: finite(&key("phase"), raw.phase.unwrap_or(0.0), "[degrees]")?
                        .to_radians(),
                    start,
                    stop,
                },
                WaveformKind::Piecewise => {
                    let missing = |k: &str| {
                        bad(
                            k,
                            "(missing)".into(),
                            "required by waveform = \"piecewise\"".into(),
                        )
                    };
                    let times = raw.times.clone().ok_or_else(|| missing("times"))?;
                    let values = raw.values.clone().ok_or_else(|| missing("values"))?;
                    if times.is_empty() || times.len() != values.len() {
                        return Err(bad(
                            "values",
                            format!("{values:?}"),
                            format!(
                                "needs one value per entry of times ({}), at least one",
                                times.len()
                            ),
                        ));
                    }
                    for (i, w) in times.windows(2).enumerate() {
                        if w[1].partial_cmp(&w[0]) != Some(std::cmp::Ordering::Greater) {
                            return Err(bad(
                                "times",
                                format!("{times:?}"),
                                format!("must increase (entry {} is {})", i + 1, w[1]),
                            ));
                        }
                    }
                    non_negative(&key("times"), times[0], "[ms]")?;
                    finite(&key("times"), times[times.len() - 1], "[ms]")?;
                    for v in &values {
                        finite(&key("values"), *v, unit)?;
                    }
                    if stop <= times[0] {
                        return Err(bad(
                            "stop",
                            stop.to_string(),
                            format!("must exceed the first time ({}) [ms]", times[0]),
                        ));
                    }
                    Waveform::Piecewise {
                        times,
                        values,
                        stop,
                    }
                }
            };
            if raw.kind == StimulusKind::Current {
                Drive::Current(wave)
            } else {
                let weight = required("weight", raw.weight, "[mV]")?;
                let (lo, hi) = wave.range();
                if lo < 0.0 {
                    return Err(bad(
                        "waveform",
                        format!(
                            "{:?}",
                            format!("{:?}", raw.waveform.expect("set")).to_lowercase()
                        ),
                        format!("a Poisson rate must not be negative; this one reaches {lo} [Hz]"),
                    ));
                }
                if hi * dt / 1000.0 > 1e6 {
                    return Err(bad(
                        "waveform",
                        format!(
                            "{:?}",
                            format!("{:?}", raw.waveform.expect("set")).to_lowercase()
                        ),
                        format!("reaches {hi} Hz: more than 10^6 events per step"),
                    ));
                }
                Drive::Poisson { rate: wave, weight }
            }
        };
        Ok(Stimulus {
            name: name.to_string(),
            target,
            drive,
            region,
        })
    }

    /// Whether neuron `gid` of the target population is stimulated.
    pub fn reaches(&self, populations: &[Population], seed: u64, gid: u64) -> bool {
        let p = &populations[self.target];
        p.gids().contains(&gid)
            && self.region.is_none_or(|(lo, hi)| {
                let x = p.coordinate(seed, gid)[0];
                lo <= x && x < hi
            })
    }

    /// One line for `lapicque check`.
    pub fn describe(&self) -> String {
        let wave = |w: &Waveform, unit: &str| {
            match w {
            Waveform::Step {
                amplitude,
                start,
                stop,
            } => format!("{amplitude} {unit} during [{start}, {stop}) ms"),
            Waveform::Piecewise {
                times,
                values,
                stop,
            } => format!(
                "piecewise constant, {} values from {} ms until {stop} ms, between {} and {} {unit}",
                values.len(),
                times[0],
                values.iter().copied().fold(f64::INFINITY, f64::min),
                values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            ),
            Waveform::Sine {
                offset,
                amplitude,
                frequency,
                phase,
                start,
                stop,
            } => format!(
                "{offset} + {amplitude} sin(2 pi {} Hz (t - {start} ms) + {:.4} rad) {unit} during [{start}, {stop}) ms",
                frequency * 1000.0,
                phase
            ),
        }
        };
        match &self.drive {
            Drive::Current(w) => format!("current {}", wave(w, "mV/ms")),
            Drive::Poisson { rate, weight } => {
                format!(
                    "Poisson drive of weight {weight} mV, rate {}",
                    wave(rate, "Hz")
                )
            }
            Drive::Replay {
                path,
                population,
                spikes,
                weight,
            } => format!(
                "replay of {} spikes of population {population} in {path}, weight {weight} mV",
                spikes.len()
            ),
        }
    }

    /// The limit's input from this stimulus at time `t` \[ms\]: the added mean drift
    /// \[mV/ms\] and variance rate \[mV^2/ms\] (the diffusion approximation of a Poisson drive).
    /// `None` for a replay.
    pub fn diffusion_at(&self, t: f64) -> Option<(f64, f64)> {
        match &self.drive {
            Drive::Current(w) => Some((w.at(t), 0.0)),
            Drive::Poisson { rate, weight } => {
                let r = rate.at(t) / 1000.0;
                Some((r * weight, r * weight * weight))
            }
            Drive::Replay { .. } => None,
        }
    }
}

/// The keys of each waveform.
fn wave_keys(w: WaveformKind) -> &'static [&'static str] {
    match w {
        WaveformKind::Step => &["amplitude", "start", "stop"],
        WaveformKind::Piecewise => &["times", "values", "stop"],
        WaveformKind::Sine => &["amplitude", "offset", "frequency", "phase", "start", "stop"],
    }
}

/// The spikes of `/spikes/<population>` of a SONATA spike file as (node id, time \[ms\]),
/// sorted by time, then node id; node ids must lie below `size`.
pub(crate) fn read_spikes(
    path: &str,
    population: &str,
    size: u64,
) -> Result<Vec<(u64, f64)>, String> {
    let file = hdf5::File::open(path)
        .map_err(|e| format!("cannot be opened as HDF5 (missing or damaged): {e}"))?;
    let group = format!("/spikes/{population}");
    let open = |name: &str| {
        file.dataset(&format!("{group}/{name}"))
            .map_err(|_| format!("has no dataset {group}/{name} (SONATA spikes)"))
    };
    let (ids, times) = (open("node_ids")?, open("timestamps")?);
    if ids.size() != times.size() {
        return Err(format!(
            "{group}/node_ids and timestamps differ in length ({} and {})",
            ids.size(),
            times.size()
        ));
    }
    let scale = match crate::h5::text(&times, "units").as_deref() {
        None | Some("ms") => 1.0,
        Some("s") => 1000.0,
        Some(u) => {
            return Err(format!(
                "{group}/timestamps has units {u:?}; expected \"ms\" or \"s\""
            ))
        }
    };
    let n = ids.size();
    let ids = crate::config::projection::ids(&ids, 0..n, &format!("{group}/node_ids"))?;
    let times = crate::config::projection::floats(&times, 0..n, &format!("{group}/timestamps"))?;
    let mut spikes = Vec::with_capacity(n);
    for (i, (&id, &t)) in ids.iter().zip(&times).enumerate() {
        if id >= size {
            return Err(format!(
                "spike {i}: node id {id} is not below the target's size {size}"
            ));
        }
        if !(t.is_finite() && t >= 0.0) {
            return Err(format!("spike {i}: time {t} is not finite and >= 0"));
        }
        spikes.push((id, t * scale));
    }
    spikes.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    Ok(spikes)
}

/// One stimulus as applied on this rank.
struct Local {
    /// Index into [`crate::config::Config::stimuli`].
    index: usize,
    /// Local indices of the neurons it reaches.
    neurons: Vec<usize>,
    /// Whether the target runs the general step (currents into the drift, jumps into the
    /// aggregate jumps) or the fast LIF step (jumps into the ring-buffer slot).
    general: bool,
    /// Replay: (step, local index), in the order delivered, and the next entry.
    replay: Vec<(u64, usize)>,
    next: usize,
    /// The Poisson sampler of the last mean used.
    sampler: Option<(f64, PoissonSampler)>,
}

/// The stimuli of a run, on one rank.
pub struct Stimuli {
    items: Vec<Local>,
}

/// Per-neuron inputs of the current step that stimuli add to.
pub struct Targets<'a> {
    /// The step's ring-buffer slot (delta input of the fast LIF step) \[mV\].
    pub input: &'a mut [f64],
    /// Drift of the general step \[mV/ms\].
    pub drift: &'a mut [f64],
    /// Jumps of the general step \[mV\].
    pub jump: &'a mut [f64],
    pub rngs: &'a mut [Stream],
}

impl Stimuli {
    /// The stimuli of `config` for the neurons `local`, from step `n0` on (a restart skips
    /// the replayed spikes already delivered); `general[p]` tells whether population `p` runs
    /// the general step.
    pub fn new(
        config: &crate::config::Config,
        local: &std::ops::Range<u64>,
        general: &[bool],
        n0: u64,
    ) -> Self {
        let dt = config.dt;
        let items = config
            .stimuli
            .iter()
            .enumerate()
            .map(|(index, s)| {
                let pop = &config.populations[s.target];
                let range = pop.local_range(local);
                let neurons: Vec<usize> = range
                    .filter(|&i| {
                        s.reaches(&config.populations, config.seed, local.start + i as u64)
                    })
                    .collect();
                let mut replay = Vec::new();
                if let Drive::Replay { spikes, .. } = &s.drive {
                    for &(id, t) in spikes {
                        let gid = pop.gid_start + id;
                        // The first step beginning at or after t (times on the grid, up to
                        // rounding, are on it).
                        let step = (t / dt - 1e-6).ceil().max(0.0) as u64;
                        if local.contains(&gid)
                            && step >= n0
                            && step < config.n_steps
                            && s.reaches(&config.populations, config.seed, gid)
                        {
                            replay.push((step, (gid - local.start) as usize));
                        }
                    }
                    replay.sort_unstable();
                }
                Local {
                    index,
                    neurons,
                    general: general[s.target],
                    replay,
                    next: 0,
                    sampler: None,
                }
            })
            .collect();
        Stimuli { items }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether some stimulus feeds a population of the general step (whose drift and jump
    /// inputs must then be cleared every step when no aggregate term writes them).
    pub fn feeds_general(&self) -> bool {
        self.items.iter().any(|l| l.general)
    }

    /// Adds the input of step `n` (from time `n dt` to `(n + 1) dt`).
    pub fn apply(&mut self, config: &crate::config::Config, n: u64, t: Targets<'_>) {
        let dt = config.dt;
        let mid = config.time(n) + 0.5 * dt;
        for l in &mut self.items {
            let s = &config.stimuli[l.index];
            let jumps: &mut [f64] = if l.general { t.jump } else { t.input };
            match &s.drive {
                Drive::Current(w) => {
                    let i = w.at(mid);
                    if i != 0.0 {
                        for &k in &l.neurons {
                            t.drift[k] += i;
                        }
                    }
                }
                Drive::Poisson { rate, weight } => {
                    let mean = rate.at(mid) * dt / 1000.0;
                    if mean > 0.0 {
                        if l.sampler.as_ref().is_none_or(|(m, _)| *m != mean) {
                            l.sampler = Some((mean, PoissonSampler::new(mean)));
                        }
                        let sampler = &l.sampler.as_ref().expect("set above").1;
                        for &k in &l.neurons {
                            let c = sampler.sample(&mut t.rngs[k]);
                            if c > 0 {
                                jumps[k] += f64::from(c) * weight;
                            }
                        }
                    }
                }
                Drive::Replay { weight, .. } => {
                    while let Some(&(step, k)) = l.replay.get(l.next) {
                        if step > n {
                            break;
                        }
                        jumps[k] += weight;
                        l.next += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waveforms_follow_their_formulas() {
        let step = Waveform::Step {
            amplitude: 2.0,
            start: 10.0,
            stop: 20.0,
        };
        assert_eq!(
            [9.99, 10.0, 19.99, 20.0].map(|t| step.at(t)),
            [0.0, 2.0, 2.0, 0.0]
        );
        let pw = Waveform::Piecewise {
            times: vec![5.0, 7.0, 9.0],
            values: vec![1.0, -3.0, 4.0],
            stop: 12.0,
        };
        assert_eq!(
            [4.9, 5.0, 6.9, 7.0, 9.5, 11.9, 12.0].map(|t| pw.at(t)),
            [0.0, 1.0, 1.0, -3.0, 4.0, 4.0, 0.0]
        );
        let sine = Waveform::Sine {
            offset: 1.0,
            amplitude: 0.5,
            frequency: 0.01, // 10 Hz
            phase: std::f64::consts::FRAC_PI_2,
            start: 100.0,
            stop: f64::INFINITY,
        };
        // cos(2 pi 10 Hz (t - 100 ms)): maximum at 100 ms, minimum 50 ms later.
        assert!((sine.at(100.0) - 1.5).abs() < 1e-12);
        assert!((sine.at(150.0) - 0.5).abs() < 1e-12);
        assert!((sine.at(125.0) - 1.0).abs() < 1e-12);
        assert_eq!(sine.at(99.0), 0.0);
        assert_eq!(sine.range(), (0.0, 1.5));
    }
}
