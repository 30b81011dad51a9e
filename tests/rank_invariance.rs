//! The same configuration on 1, 2, 3 (oversubscribed) and 4 ranks gives byte-identical spike
//! datasets, final states and reduced observables.
//!
//! The network exercises every source of randomness and every ordering hazard: noise with the
//! bridge correction, external Poisson input, random initial potentials, fixed in-degree
//! without autapses or multapses, Bernoulli connectivity, two delays, three populations whose
//! sizes do not divide evenly among the ranks, and four different delays (0.5 to 2 ms) so that
//! the exchange window (the smallest delay, 5 steps) differs from every delay. Runs that
//! exchange every step or once per window give the same output as the default ("auto": here
//! once per window).

mod common;

use hdf5::File;

const CONFIG: &str = r#"
[simulation]
dt = 0.1
t_stop = 300.0
seed = 20260101

[observables.rates]
start = 20.0
stop = 290.2
every = 0.5
[observables.moments]
every = 0.5
[observables.balance]
every = 2.0
start = 10.0
[observables.statistics]
start = 50.0
fano_window = 5.0
[observables.snapshots]
start = 100.0
every = 100.0
[observables.record]
start = 10.0
every = 0.5
variables = ["v", "refractory_steps"]
[observables.record.neurons]
E = [800, 0, 250, 400, 401]
I = [7, 202]
X = [50]
[observables.histogram]
every = 5.0
v_min = -10.0
v_max = 20.0
bins = 30

[population.E]
size = 801
v_reset = 0.0
sigma = 0.5
v_init_min = 0.0
v_init_max = 20.0
poisson_rate = 14000.0
poisson_weight = 0.1

[population.I]
size = 203
v_reset = 5.0
t_ref = 1.0
sigma = 0.8
integrator = "euler"
v_init_min = 0.0
v_init_max = 20.0
poisson_rate = 15000.0
poisson_weight = 0.1

[population.X]
size = 97
i_e = 1.2
sigma = 1.0
bridge = false

[projection.EE]
source = "E"
target = "E"
rule = "fixed_indegree"
indegree = 80
autapses = false
multapses = false
weight = 0.2
delay = 1.5

[projection.EI]
source = "E"
target = "I"
rule = "bernoulli"
p = 0.1
weight = 0.2
delay = 0.8

[projection.IE]
source = "I"
target = "E"
rule = "fixed_indegree"
indegree = 20
weight = -1.0
delay = 1.5

[projection.II]
source = "I"
target = "I"
rule = "bernoulli"
p = 0.1
autapses = false
weight = -1.0
delay = 0.5

[projection.XE]
source = "X"
target = "E"
rule = "fixed_indegree"
indegree = 10
weight = 0.3
delay = 2.0
"#;

#[test]
fn outputs_are_identical_on_one_to_four_ranks() {
    let dir = common::scratch("rank_invariance");
    let config = dir.join("net.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut reference: Option<Vec<(String, Vec<u8>)>> = None;
    let runs: [(usize, &[&str]); 6] = [
        (1, &[]),
        (2, &[]),
        (3, &[]),
        (4, &[]),
        (2, &["--set", "simulation.exchange=\"window\""]),
        (3, &["--set", "simulation.exchange=\"step\""]),
    ];
    for (i, (ranks, extra)) in runs.into_iter().enumerate() {
        let out = dir.join(format!("out{i}.h5"));
        common::run_ok(ranks, &config, &out, extra);
        let data = common::datasets(&out);
        let f = File::open(&out).unwrap();
        assert_eq!(
            f.attr("n_ranks").unwrap().read_scalar::<u64>().unwrap(),
            ranks as u64
        );
        match &reference {
            None => {
                // The comparison must have something to compare: spikes in every population.
                for pop in ["E", "I", "X"] {
                    let (_, bytes) = data
                        .iter()
                        .find(|(p, _)| p == &format!("/spikes/{pop}/node_ids"))
                        .unwrap();
                    assert!(bytes.len() > 8 * 100, "population {pop} barely spiked");
                }
                for name in [
                    "/state/v",
                    "/moments/E/mean",
                    "/histograms/I",
                    "/rates/X",
                    "/balance/E/inhibitory",
                    "/snapshots/v",
                    "/record/E/v",
                    "/record/I/refractory_steps",
                    "/statistics/E@chi",
                    "/statistics/I@cv_isi",
                ] {
                    assert!(data.iter().any(|(p, _)| p == name), "missing {name}");
                }
                reference = Some(data);
            }
            Some(r) => {
                assert_eq!(
                    r.len(),
                    data.len(),
                    "{ranks} ranks {extra:?}: different datasets"
                );
                for ((pa, a), (pb, b)) in r.iter().zip(&data) {
                    assert_eq!(pa, pb);
                    assert!(
                        a == b,
                        "{ranks} ranks: dataset {pa} differs from the 1-rank run"
                    );
                }
            }
        }
    }
}

/// Every shipped model configuration (shortened and, where large, shrunk) gives identical
/// outputs on 1 to 4 ranks: labels and their efficacies carried by spikes, aggregate coupling
/// through population sums (electrical, chemical, Poisson with a kernel), escape noise,
/// FitzHugh-Nagumo, kernels with random weights. Each run must produce spikes in every
/// population, so the comparison compares something.
#[test]
fn every_model_config_is_identical_on_one_to_four_ranks() {
    let dir = common::scratch("rank_invariance_configs");
    let cases: [(&str, &[&str]); 6] = [
        (
            "brunel",
            &[
                "simulation.t_stop=50",
                "population.E.size=2000",
                "population.I.size=500",
                "projection.EE.indegree=200",
                "projection.EI.indegree=200",
                "projection.IE.indegree=50",
                "projection.II.indegree=50",
            ],
        ),
        ("multi_agent_labels", &["simulation.t_stop=100"]),
        ("multi_agent_labels_sparse", &["simulation.t_stop=100"]),
        (
            "nonexchangeable_escape",
            &[
                "simulation.t_stop=100",
                "observables.statistics.start=50",
                "observables.histogram.xi_bins=4",
            ],
        ),
        (
            "balanced_kinetic",
            &["simulation.t_stop=100", "observables.statistics.start=50"],
        ),
        ("strong_coupling", &["simulation.t_stop=30"]),
    ];
    for (name, sets) in cases {
        let config = common::repo().join(format!("configs/{name}.toml"));
        let mut extra: Vec<&str> = Vec::new();
        for s in sets {
            extra.extend(["--set", s]);
        }
        let reference = dir.join(format!("{name}-1.h5"));
        common::run_ok(1, &config, &reference, &extra);
        let f = File::open(&reference).unwrap();
        for pop in f.group("spikes").unwrap().member_names().unwrap() {
            let n = f.dataset(&format!("spikes/{pop}/node_ids")).unwrap().size();
            assert!(
                n > 10,
                "{name}: population {pop} barely spiked ({n} spikes)"
            );
        }
        for ranks in 2..=4 {
            let out = dir.join(format!("{name}-{ranks}.h5"));
            common::run_ok(ranks, &config, &out, &extra);
            common::assert_same_results(&reference, &out);
        }
    }
}
