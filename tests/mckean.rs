//! Strongly coupled networks (electrical and separable chemical aggregate coupling): the
//! particle integrator converges in dt at stiff coupling, and the McKean-Vlasov limit of
//! `lapicque meanfield` against closed forms, its grid order, the balance voltages and
//! particle runs.

mod common;

use lapicque::comm::SerialComm;
use lapicque::config::Config;
use lapicque::observables::moments::Moments;
use lapicque::progress::Progress;
use lapicque::simulation;
use std::path::Path;

fn shipped(name: &str) -> String {
    std::fs::read_to_string(common::repo().join("configs").join(name)).unwrap()
}

/// Runs `config` in this process; per population, the (times, means, variances) of V.
fn particle_moments(config: &Config) -> (Vec<f64>, Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let control = simulation::Control::uninterrupted(Path::new("mckean.checkpoint.h5"));
    let r = simulation::run(config, &SerialComm, &mut Progress::silent(), &control).unwrap();
    let rec = r.observers.get::<Moments>().to_vecs();
    (rec.times.clone(), rec.means.clone(), rec.variances.clone())
}

/// The FitzHugh-Nagumo E/I network of `strong_coupling_symmetric.toml` (electrical and chemical
/// coupling together) without noise, with every coupling constant times `factor`: per
/// population, the largest distance over the sample times between the mean of V at `dt` and
/// at a reference step of 0.0005 ms. Without noise the run is deterministic (the initial
/// potentials come from each neuron's own stream, whatever dt), so the distance is the
/// integrator's error alone.
fn mean_error(factor: f64, dts: &[f64]) -> Vec<f64> {
    let text = shipped("strong_coupling_symmetric.toml");
    let mean = |dt: f64| {
        let mut sets = vec![
            format!("simulation.dt={dt}"),
            "simulation.t_stop=10".into(),
            "population.E.sigma=0".into(),
            "population.I.sigma=0".into(),
        ];
        for (k, j0) in [
            ("EE", 0.05),
            ("EI", 0.05),
            ("IE", 0.1),
            ("II", 0.1),
            ("EE_gap", 0.02),
        ] {
            sets.push(format!("aggregate.{k}.j0={}", j0 * factor));
        }
        let config = Config::from_toml(&text, &sets).unwrap();
        let (times, means, _) = particle_moments(&config);
        (times, means)
    };
    let (t_ref, m_ref) = mean(0.0005);
    dts.iter()
        .map(|&dt| {
            let (t, m) = mean(dt);
            assert_eq!(t, t_ref);
            m.iter()
                .zip(&m_ref)
                .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
                .fold(0.0, f64::max)
        })
        .collect()
}

/// Item 5 of the strong-coupling work: electrical and chemical coupling together at 300 times
/// the shipped coupling (J n dt = 4.2 for the chemical and 1.7 for the electrical term at
/// dt = 0.01). The electrical coupling pulls each neuron towards the sources' mean, which the
/// stiff chemical input moves within the step; when the step predicted that motion from the
/// intrinsic drift alone, the mean at dt = 0.01 was 0.096 off the converged one (it stayed
/// where the step began). With the sources' full drift and their relaxation rate the error is
/// first order in dt and small: measured 4.6e-7 at dt = 0.01 and 1.0e-6 at dt = 0.02
/// (the reference dt = 0.0005); at the shipped coupling, where FitzHugh-Nagumo's frozen cubic
/// dominates, 1.1e-3 at dt = 0.01 (ratio 2.1 to dt = 0.02).
#[test]
fn stiff_electrical_and_chemical_coupling_converge_in_dt() {
    let e = mean_error(300.0, &[0.02, 0.01]);
    println!(
        "300x: error {:.3e} at dt = 0.02, {:.3e} at dt = 0.01",
        e[0], e[1]
    );
    assert!(e[1] < 1e-5, "error {} at dt = 0.01", e[1]);
    let ratio = e[0] / e[1];
    assert!((1.5..3.0).contains(&ratio), "order: ratio {ratio}");
    let e = mean_error(1.0, &[0.02, 0.01]);
    println!(
        "1x: error {:.3e} at dt = 0.02, {:.3e} at dt = 0.01",
        e[0], e[1]
    );
    assert!(e[1] < 2e-3, "error {} at dt = 0.01", e[1]);
    let ratio = e[0] / e[1];
    assert!((1.5..3.0).contains(&ratio), "order: ratio {ratio}");
}

fn read(path: &Path, name: &str) -> Vec<f64> {
    let f = hdf5::File::open(path).unwrap();
    f.dataset(name).unwrap().read_raw::<f64>().unwrap()
}

/// Two linear populations with additive noise, coupled by chemical terms with `s = one` and
/// `s = potential` and by electrical terms within E and from E to I. Every drift is linear
/// in the target's V with coefficients that depend on t only through the source means, so
/// the mean and variance of the limit solve a closed system of ODEs (derived here, with
/// `g = j0 n^(1/2)`: g_EE = 0.4, g_IE = 0.1, g_EI = 0.1, g_gap = j0_gap 20, g_EI_gap = 1):
///
/// ```text
/// m_E' = 0.5 - 0.1 m_E + 0.4 (10 - m_E) + 0.1 m_I (-5 - m_E)
/// m_I' = 0.2 - 0.2 m_I + 0.1 m_E (8 - m_I) + 1 (m_E - m_I)
/// V_E' = -2 (0.1 + 0.4 + 0.1 m_I + g_gap) V_E + 0.5^2
/// V_I' = -2 (0.2 + 0.1 m_E + 1) V_I + 0.8^2
/// ```
///
/// (the electrical term of E onto itself cancels in m_E), from the uniform initial laws
/// (m, V) = (2.5, 25/12) and (2, 1/3).
const OU: &str = r#"
[simulation]
dt = 0.001
t_stop = 4.0
seed = 3
[observables.moments]
every = 0.05
[observables.histogram]
every = 1.0
v_min = -3.0
v_max = 9.0
bins = 24
[meanfield]
v_min = -3.0
v_max = 9.0
cells = 240
[population.E]
size = 400
model = "linear"
a = 0.5
c = 0.1
sigma = 0.5
spike = "none"
v_th = 100.0
v_init_min = 0.0
v_init_max = 5.0
[population.I]
size = 100
model = "linear"
a = 0.2
c = 0.2
sigma = 0.8
spike = "none"
v_th = 100.0
v_init_min = 1.0
v_init_max = 3.0
[aggregate.EE]
source = "E"
target = "E"
kind = "chemical"
j0 = 0.02
alpha = 0.5
reversal = 10.0
s = { kind = "one" }
[aggregate.IE]
source = "I"
target = "E"
kind = "chemical"
j0 = 0.01
alpha = 0.5
reversal = -5.0
s = { kind = "potential" }
[aggregate.EI]
source = "E"
target = "I"
kind = "chemical"
j0 = 0.005
alpha = 0.5
reversal = 8.0
s = { kind = "potential" }
[aggregate.gap]
source = "E"
target = "E"
kind = "electrical"
j0 = 1.0
alpha = 0.5
[aggregate.gapEI]
source = "E"
target = "I"
kind = "electrical"
j0 = 0.05
alpha = 0.5
"#;

/// The closed-form moments of [`OU`] at `times` by RK4 (step 1e-5 ms): per time,
/// [m_E, m_I, V_E, V_I].
fn ou_moments(g_gap: f64, sigma_e: f64, times: &[f64]) -> Vec<[f64; 4]> {
    let rhs = |y: [f64; 4]| {
        let [me, mi, ve, vi] = y;
        [
            0.5 - 0.1 * me + 0.4 * (10.0 - me) + 0.1 * mi * (-5.0 - me),
            0.2 - 0.2 * mi + 0.1 * me * (8.0 - mi) + (me - mi),
            -2.0 * (0.1 + 0.4 + 0.1 * mi + g_gap) * ve + sigma_e * sigma_e,
            -2.0 * (0.2 + 0.1 * me + 1.0) * vi + 0.64,
        ]
    };
    let add = |y: [f64; 4], k: [f64; 4], h: f64| std::array::from_fn(|i| y[i] + h * k[i]);
    let (mut y, mut t, h) = ([2.5, 2.0, 25.0 / 12.0, 1.0 / 3.0], 0.0, 1e-5);
    times
        .iter()
        .map(|&target| {
            while t < target - 0.5 * h {
                let k1 = rhs(y);
                let k2 = rhs(add(y, k1, 0.5 * h));
                let k3 = rhs(add(y, k2, 0.5 * h));
                let k4 = rhs(add(y, k3, h));
                y = std::array::from_fn(|i| {
                    y[i] + h / 6.0 * (k1[i] + 2.0 * (k2[i] + k3[i]) + k4[i])
                });
                t += h;
            }
            y
        })
        .collect()
}

/// Solves the limit of `text` with `sets` in this process; the output file.
fn limit(dir: &Path, name: &str, text: &str, sets: &[String]) -> std::path::PathBuf {
    let config = Config::from_toml(text, sets).unwrap();
    let out = dir.join(format!("{name}.h5"));
    let _ = std::fs::remove_file(&out);
    lapicque::meanfield::run::meanfield(&config, &out).unwrap();
    out
}

/// The largest distance over the sample times from `t_from` between the limit's moments and
/// the closed form: [mean, variance relative to the closed form].
fn ou_error(
    dir: &Path,
    cells: usize,
    dt: f64,
    gap_j0: f64,
    sigma_e: f64,
    t_from: f64,
) -> (f64, f64) {
    let sets = vec![
        format!("meanfield.cells={cells}"),
        format!("simulation.dt={dt}"),
        format!("aggregate.gap.j0={gap_j0}"),
        format!("population.E.sigma={sigma_e}"),
    ];
    let out = limit(
        dir,
        &format!("ou_{cells}_{dt}_{gap_j0}_{sigma_e}"),
        OU,
        &sets,
    );
    let times = read(&out, "moments/time");
    let exact = ou_moments(gap_j0 * 20.0, sigma_e, &times);
    let (mut em, mut ev) = (0.0f64, 0.0f64);
    for (p, name) in ["E", "I"].iter().enumerate() {
        let m = read(&out, &format!("moments/{name}/mean"));
        let v = read(&out, &format!("moments/{name}/variance"));
        for (k, y) in exact
            .iter()
            .enumerate()
            .filter(|(k, _)| times[*k] >= t_from)
        {
            em = em.max((m[k] - y[p]).abs());
            ev = ev.max((v[k] - y[2 + p]).abs() / y[2 + p]);
        }
    }
    (em, ev)
}

/// The limit of [`OU`] against its closed-form moments (after the first 0.5 ms, where the
/// variance of E collapses at rate 41 per ms and backward Euler's first-order error in time
/// dominates). Measured at dt = 0.001 ms, mean error 0.304, 0.092, 0.026, 0.0070 mV on
/// 60, 120, 240, 480 cells of [-3, 9] mV (fitted order 1.8 in the cell width); variance error 0.45%
/// on 480 cells; in time, variance errors 3.3%, 1.7%, 0.93% at dt = 0.01, 0.005, 0.0025
/// (order 1). Stiff electrical coupling, g dt = 10 (j0 = 50, sigma_E = 5 so that the spread
/// 0.11 mV is resolved): mean error 0.0057 mV, variance 3.3%, as at g dt = 0.2.
#[test]
fn ornstein_uhlenbeck_limit_matches_its_closed_form_moments() {
    let dir = common::scratch("mckean_ou");
    let cells = [60, 120, 240, 480];
    let errors: Vec<(f64, f64)> = cells
        .iter()
        .map(|&c| ou_error(&dir, c, 0.001, 1.0, 0.5, 0.5))
        .collect();
    for (c, e) in cells.iter().zip(&errors) {
        println!(
            "cells {c}: mean error {:.3e}, variance error {:.3e}",
            e.0, e.1
        );
    }
    let (fine_m, fine_v) = errors[3];
    assert!(fine_m < 0.01 && fine_v < 0.01, "{fine_m} {fine_v}");
    // Least-squares slope of log(error) against log(h).
    let xs: Vec<f64> = cells.iter().map(|&c| -(c as f64).ln()).collect();
    let ys: Vec<f64> = errors.iter().map(|e| e.0.ln()).collect();
    let (mx, my) = (xs.iter().sum::<f64>() / 4.0, ys.iter().sum::<f64>() / 4.0);
    let order = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| (x - mx) * (y - my))
        .sum::<f64>()
        / xs.iter().map(|x| (x - mx) * (x - mx)).sum::<f64>();
    println!("order in the cell width: {order:.2}");
    assert!((1.7..2.3).contains(&order), "order {order}");
    let dts = [0.01, 0.005, 0.0025];
    let v: Vec<f64> = dts
        .iter()
        .map(|&dt| ou_error(&dir, 480, dt, 1.0, 0.5, 0.5).1)
        .collect();
    println!("variance error in time: {v:?}");
    for w in v.windows(2) {
        assert!((1.6..2.4).contains(&(w[0] / w[1])), "{v:?}");
    }
    let (m, var) = ou_error(&dir, 480, 0.01, 50.0, 5.0, 0.5);
    println!("g dt = 10: mean error {m:.3e}, variance error {var:.3e}");
    assert!(m < 0.01 && var < 0.05, "{m} {var}");
}

/// `strong_coupling.toml` with `alpha = 0` and `j0` set so that `J n` is the shipped one at
/// the shipped sizes (E 800, I 200): the coupling strength stays fixed as N grows, which is
/// the McKean-Vlasov limit (along `alpha = 0.5`, `J n` grows like `n^(1/2)`).
fn fixed_coupling(e: usize, i: usize, seed: u64, t_stop: f64) -> Vec<String> {
    let mut s = vec![
        format!("population.E.size={e}"),
        format!("population.I.size={i}"),
        format!("simulation.seed={seed}"),
        format!("simulation.t_stop={t_stop}"),
    ];
    for (k, j0, n) in [
        ("EE", 0.05, 800.0),
        ("EI", 0.05, 800.0),
        ("IE", 0.1, 200.0),
        ("II", 0.1, 200.0),
        ("EE_gap", 0.02, 800.0),
    ] {
        s.push(format!("aggregate.{k}.alpha=0"));
        s.push(format!("aggregate.{k}.j0={}", j0 * f64::sqrt(n)));
    }
    s
}

/// FitzHugh-Nagumo E/I of the shipped `strong_coupling.toml` at fixed coupling strength: the
/// particle system approaches the McKean-Vlasov limit as N grows. Distance: the RMS over the
/// sample times (every 0.5 ms to 20 ms) and over E and I of the differences in mean and
/// variance of V, averaged over two seeds. Measured 0.0328, 0.0193, 0.0160 at N = 500, 2000,
/// 8000 (limit on 120 x 120 cells): fitted slope -0.26 against the expected -1/2 (the
/// fluctuations of the empirical moments, O(N^(-1/2))); the slope flattens because the limit
/// itself is only first order in the cell width in this family (the noise-free `w` direction
/// is upwinded), its grid error at 120 x 120 cells being of the order of 0.01 (the distance of
/// the 60 x 60 limit to N = 8000 particles is 0.024).
#[test]
fn fitzhugh_nagumo_particles_approach_the_limit() {
    let text = shipped("strong_coupling.toml");
    let t_stop = 20.0;
    let mut sets = fixed_coupling(800, 200, 1, t_stop);
    sets.push("meanfield.cells=480".into());
    let config = Config::from_toml(&text, &sets).unwrap();
    let mut limit = lapicque::meanfield::mckean::limit(&config);
    let mut reference = Vec::new();
    let (times, _, _) =
        particle_moments(&Config::from_toml(&text, &fixed_coupling(8, 2, 1, t_stop)).unwrap());
    for &t in &times {
        limit.solver.advance_to(t);
        reference.push(limit.solver.moments());
    }
    let mut dist = Vec::new();
    for k in [1usize, 4, 16] {
        let mut d = 0.0;
        for seed in [1, 2] {
            let c =
                Config::from_toml(&text, &fixed_coupling(400 * k, 100 * k, seed, t_stop)).unwrap();
            let (t, means, vars) = particle_moments(&c);
            assert_eq!(t, times);
            let mut sum = 0.0;
            for (s, r) in reference.iter().enumerate() {
                for p in 0..2 {
                    sum += (means[p][s] - r[p].0).powi(2) + (vars[p][s] - r[p].1).powi(2);
                }
            }
            d += (sum / (2 * times.len()) as f64).sqrt() / 2.0;
        }
        println!("N = {}: distance {d:.4}", 500 * k);
        dist.push(d);
    }
    let slope = (dist[2] / dist[0]).ln() / 16f64.ln();
    println!("fitted slope {slope:.2}");
    assert!(dist[1] < 0.8 * dist[0] && dist[2] < dist[1], "{dist:?}");
    assert!(dist[2] < 0.025, "{dist:?}");
}

/// Two linear populations (drift 0.5 - 0.1 V, sigma 0.5, no spikes) with separable chemical
/// coupling of strength `gamma` at fixed `J n` (`alpha = 0`, `g = j0`): E excites (reversal
/// 10) and I inhibits (reversal -5), sigmoid `s` (theta 2, delta 1).
fn second_limit(gamma: f64, e: usize, seed: u64) -> Config {
    let pop = "model = \"linear\"\na = 0.5\nc = 0.1\nsigma = 0.5\nspike = \"none\"\nv_th = 1000.0\nv_init_min = 0.0\nv_init_max = 5.0\n";
    let term = |name: &str, s: &str, t: &str, j: f64, rev: f64| {
        format!(
            "[aggregate.{name}]\nsource = \"{s}\"\ntarget = \"{t}\"\nkind = \"chemical\"\nj0 = {j}\nalpha = 0.0\nreversal = {rev}\ns = {{ kind = \"sigmoid\", theta = 2.0, delta = 1.0, max = 1.0 }}\n"
        )
    };
    let text = format!(
        "[simulation]\nt_stop = 40.0\ndt = 0.01\nseed = {seed}\n[observables.moments]\nevery = 1.0\n[observables.histogram]\nevery = 0.0\n\
         [meanfield]\nv_min = -6.0\nv_max = 11.0\ncells = 3400\n\
         [population.E]\nsize = {e}\n{pop}[population.I]\nsize = {}\n{pop}{}{}{}{}",
        e / 4,
        term("EE", "E", "E", gamma, 10.0),
        term("IE", "I", "E", gamma, -5.0),
        term("EI", "E", "I", 2.0 * gamma, 10.0),
        term("II", "I", "I", gamma, -5.0),
    );
    Config::from_toml(&text, &[]).unwrap()
}

/// Per population, the (mean, standard deviation) of V averaged over t >= 20 ms.
fn late(times: &[f64], means: &[Vec<f64>], vars: &[Vec<f64>]) -> Vec<(f64, f64)> {
    (0..means.len())
        .map(|p| {
            let keep: Vec<usize> = (0..times.len()).filter(|&k| times[k] >= 20.0).collect();
            let n = keep.len() as f64;
            (
                keep.iter().map(|&k| means[p][k]).sum::<f64>() / n,
                (keep.iter().map(|&k| vars[p][k]).sum::<f64>() / n).sqrt(),
            )
        })
        .collect()
}

/// The second limit, coupling gamma -> infinity, and the double limit with n.
///
/// Limit first (n -> infinity, then gamma): the McKean-Vlasov density concentrates at the
/// balance voltages of `lapicque meanfield --balance` (computed from the fixed point alone:
/// -2.637 and -0.917 mV), with a spread that tends to sigma / sqrt(2 (c + G)), G the chemical
/// slope at the balance voltages (G ~ gamma: spread ~ gamma^(-1/2)), and a mean whose
/// distance to the balance voltage falls like 1/gamma (the intrinsic drift shifts the
/// equilibrium by O(1/G)). Measured (E): spreads 0.303, 0.133, 0.0449 at gamma = 10, 100,
/// 1000 (slope -0.47 over the last decade; 0.0449 against 0.0453 predicted), distance to the
/// balance voltage 0.80, 0.15, 0.017 mV.
///
/// Particles at (n, gamma), distance of the particle's late mean and spread to the limit's
/// (largest over E and I), n_E = 100, 400, 1600:
///
/// ```text
/// gamma   10: 0.0191 0.0045 0.0031      mean to balance 0.822 0.805 0.804
/// gamma  100: 0.0108 0.0026 0.0009                      0.162 0.149 0.151
/// gamma 1000: 0.0030 0.0014 0.0009                      0.019 0.018 0.017
/// ```
///
/// n -> infinity at fixed gamma: the distance falls (slopes -0.65, -0.90, -0.43 against the
/// expected -1/2 of the fluctuations of a time average over 20 ms, with an O(1/n) bias on
/// top); gamma -> infinity at fixed n: the mean reaches the balance voltage at every n (the
/// two orders agree: the balance voltage does not depend on n).
#[test]
fn strong_coupling_concentrates_at_the_balance_voltages() {
    let gammas = [10.0, 100.0, 1000.0];
    let balance = lapicque::meanfield::run::balance_voltages(&second_limit(1.0, 400, 1)).unwrap();
    let xb: Vec<f64> = balance.iter().map(|x| x.unwrap()).collect();
    let mut limits = Vec::new();
    for &g in &gammas {
        let config = second_limit(g, 400, 1);
        let mut l = lapicque::meanfield::mckean::limit(&config);
        let (mut times, mut means, mut vars) =
            (Vec::new(), vec![Vec::new(); 2], vec![Vec::new(); 2]);
        for k in 0..=40 {
            l.solver.advance_to(k as f64);
            times.push(k as f64);
            for (p, (m, v)) in l.solver.moments().into_iter().enumerate() {
                means[p].push(m);
                vars[p].push(v);
            }
        }
        let mv = late(&times, &means, &vars);
        println!(
            "limit gamma {g}: E mean {:.4} sd {:.4}, I mean {:.4} sd {:.4}; balance {:.4} {:.4}",
            mv[0].0, mv[0].1, mv[1].0, mv[1].1, xb[0], xb[1]
        );
        limits.push(mv);
    }
    // The spread predicted at the balance voltages: sigma / sqrt(2 (c + G)), G the chemical
    // slope sum_t g_t s(x_q) there (E: EE gamma and IE gamma; I: EI 2 gamma and II gamma).
    let s = |x: f64| 1.0 / (1.0 + (-(x - 2.0)).exp());
    let slope_at = |p: usize, g: f64| {
        let own = if p == 0 { 1.0 } else { 2.0 };
        g * (own * s(xb[0]) + s(xb[1]))
    };
    for p in 0..2 {
        let sd: Vec<f64> = limits.iter().map(|l| l[p].1).collect();
        let slope = (sd[2] / sd[1]).ln() / 10f64.ln();
        let predicted = 0.5 / (2.0 * (0.1 + slope_at(p, 1000.0))).sqrt();
        println!(
            "population {p}: spread slope {slope:.3}, spread {:.4} vs {predicted:.4} predicted",
            sd[2]
        );
        assert!(
            (-0.55..-0.45).contains(&slope),
            "population {p}: spread slope {slope}"
        );
        assert!(
            (sd[2] / predicted - 1.0).abs() < 0.03,
            "{} vs {predicted}",
            sd[2]
        );
        let off: Vec<f64> = limits.iter().map(|l| (l[p].0 - xb[p]).abs()).collect();
        println!("population {p}: mean to balance {off:?}");
        assert!(off[1] < 0.25 * off[0] && off[2] < 0.25 * off[1], "{off:?}");
    }
    // Particles at (n, gamma): distance to the limit, and of the mean to the balance voltage.
    let sizes = [100usize, 400, 1600];
    let mut to_limit = vec![vec![0.0; sizes.len()]; gammas.len()];
    let mut to_balance = vec![vec![0.0; sizes.len()]; gammas.len()];
    for (a, &g) in gammas.iter().enumerate() {
        for (b, &n) in sizes.iter().enumerate() {
            let (t, m, v) = particle_moments(&second_limit(g, n, 7));
            let mv = late(&t, &m, &v);
            let dist = |p: usize| {
                ((mv[p].0 - limits[a][p].0).powi(2) + (mv[p].1 - limits[a][p].1).powi(2)).sqrt()
            };
            to_limit[a][b] = dist(0).max(dist(1));
            to_balance[a][b] = (0..2).map(|p| (mv[p].0 - xb[p]).abs()).fold(0.0, f64::max);
            println!(
                "gamma {g} n_E {n}: distance to the limit {:.4}, mean to balance {:.4}",
                to_limit[a][b], to_balance[a][b]
            );
        }
    }
    for a in 0..gammas.len() {
        // n -> infinity at fixed gamma.
        assert!(
            to_limit[a][2] < 0.5 * to_limit[a][0],
            "gamma {}: {:?}",
            gammas[a],
            to_limit[a]
        );
    }
    for b in 0..sizes.len() {
        // gamma -> infinity at fixed n.
        assert!(
            to_balance[2][b] < 0.25 * to_balance[1][b]
                && to_balance[1][b] < 0.25 * to_balance[0][b],
            "n_E {}: {:?}",
            sizes[b],
            (0..3).map(|a| to_balance[a][b]).collect::<Vec<_>>()
        );
    }
}

/// What the McKean-Vlasov limit does not cover is refused with exit code 2 and one line
/// naming the key.
#[test]
fn features_without_a_mckean_limit_name_the_key() {
    let dir = common::scratch("mckean_refused");
    let config = common::repo().join("configs/strong_coupling.toml");
    for (set, key) in [
        ("population.E.noise=\"sqrt\"", "population.E.noise"),
        ("aggregate.EE.kind=\"current\"", "aggregate.EE.kind"),
        ("aggregate.IE.s={kind=\"spikes\"}", "aggregate.IE.s"),
    ] {
        let out = dir.join("refused.h5");
        let mut c = std::process::Command::new(common::binary());
        c.args(["meanfield", config.to_str().unwrap(), "-o"])
            .arg(&out)
            .args(["--force", "--set", set]);
        let o = common::run_with_timeout(c, std::time::Duration::from_secs(60));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{set}: {err}");
        assert_eq!(err.lines().count(), 1, "{set}: {err}");
        assert!(
            err.contains(key) && err.contains("no limit equation"),
            "{set}: {err}"
        );
        assert!(!out.exists());
    }
}
