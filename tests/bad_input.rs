//! Invalid input, as a table: every row runs under `mpirun -n 3` and must give, within a few
//! seconds, the documented non-zero exit code on every rank, exactly one line on stderr naming
//! the key (or file) and the value (after the run's banner for errors found while building), and no file at the output's final name. The fault classes
//! and their exit codes are listed in docs/faults.md.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

const BASE: &str = r#"
[simulation]
t_stop = 10.0
[observables.histogram]
every = 1.0
[population.E]
size = 30
[population.I]
size = 10
[projection.EE]
source = "E"
target = "E"
rule = "fixed_indegree"
indegree = 5
weight = 0.1
delay = 1.0
[projection.IE]
source = "I"
target = "E"
rule = "bernoulli"
p = 0.2
weight = -0.5
delay = 1.0
"#;

/// How a row makes its bad input.
enum Input {
    /// The base configuration with these `--set` overrides.
    Set(&'static [&'static str]),
    /// The base configuration with one text replacement.
    Replace(&'static str, &'static str),
    /// This configuration text.
    Text(&'static str),
    /// Extra arguments to `lapicque run` (the first is the config path placeholder "{config}",
    /// then "{out}" for the output), for rows about files and arguments.
    Args(&'static [&'static str]),
}

struct Row {
    what: &'static str,
    input: Input,
    /// Must appear in the one error line.
    expect: &'static str,
    code: i32,
}

fn row(what: &'static str, input: Input, expect: &'static str) -> Row {
    Row {
        what,
        input,
        expect,
        code: 2,
    }
}

fn rows() -> Vec<Row> {
    use Input::*;
    vec![
        // Unknown keys.
        row(
            "unknown top-level table",
            Text("[simulaton]\ndt = 0.1\n[population.E]\nsize = 3\n"),
            "simulaton",
        ),
        row(
            "unknown simulation key",
            Set(&["simulation.dtt=0.1"]),
            "simulation.dtt",
        ),
        row(
            "unknown population key",
            Set(&["population.E.tau_mem=10"]),
            "population.E.tau_mem",
        ),
        row(
            "unknown projection key",
            Set(&["projection.EE.wieght=1"]),
            "projection.EE.wieght",
        ),
        row(
            "unknown histogram key",
            Set(&["observables.histogram.bin=3"]),
            "observables.histogram.bin",
        ),
        row(
            "unknown output key",
            Set(&["output.file=\"x.h5\""]),
            "output.file",
        ),
        // Wrong types.
        row(
            "dt as a string",
            Set(&["simulation.dt=\"fast\""]),
            "simulation.dt",
        ),
        row(
            "size as a float",
            Set(&["population.E.size=10.5"]),
            "population.E.size",
        ),
        row(
            "size as a string",
            Set(&["population.E.size=\"ten\""]),
            "population.E.size",
        ),
        row(
            "bridge as an integer",
            Set(&["population.E.bridge=1"]),
            "population.E.bridge",
        ),
        row(
            "population not a table",
            Text("population = 3\n"),
            "population",
        ),
        row(
            "weight as an array",
            Set(&["projection.EE.weight=[1, 2]"]),
            "projection.EE.weight",
        ),
        row(
            "seed negative",
            Set(&["simulation.seed=-1"]),
            "simulation.seed",
        ),
        // NaN and infinities.
        row("dt NaN", Set(&["simulation.dt=nan"]), "simulation.dt = NaN"),
        row(
            "dt infinite",
            Set(&["simulation.dt=inf"]),
            "simulation.dt = inf",
        ),
        row(
            "t_stop infinite",
            Set(&["simulation.t_stop=inf"]),
            "simulation.t_stop = inf",
        ),
        row(
            "tau_m NaN",
            Set(&["population.E.tau_m=nan"]),
            "population.E.tau_m = NaN",
        ),
        row(
            "v_th infinite",
            Set(&["population.E.v_th=inf"]),
            "population.E.v_th = inf",
        ),
        row(
            "i_e minus infinity",
            Set(&["population.E.i_e=-inf"]),
            "population.E.i_e = -inf",
        ),
        row(
            "sigma NaN",
            Set(&["population.E.sigma=nan"]),
            "population.E.sigma = NaN",
        ),
        row(
            "poisson_rate infinite",
            Set(&["population.E.poisson_rate=inf"]),
            "population.E.poisson_rate = inf",
        ),
        row(
            "poisson_weight NaN",
            Set(&["population.E.poisson_weight=nan"]),
            "population.E.poisson_weight = NaN",
        ),
        row(
            "weight infinite",
            Set(&["projection.EE.weight=inf"]),
            "projection.EE.weight = inf",
        ),
        row(
            "p NaN",
            Set(&["projection.IE.p=nan"]),
            "projection.IE.p = NaN",
        ),
        row(
            "delay NaN",
            Set(&["projection.EE.delay=nan"]),
            "projection.EE.delay = NaN",
        ),
        row(
            "histogram v_min NaN",
            Set(&["observables.histogram.v_min=nan"]),
            "observables.histogram.v_min = NaN",
        ),
        // Zero or negative sizes, times and rates.
        row("dt zero", Set(&["simulation.dt=0"]), "simulation.dt = 0"),
        row(
            "dt negative",
            Set(&["simulation.dt=-0.1"]),
            "simulation.dt = -0.1",
        ),
        row(
            "t_stop zero",
            Set(&["simulation.t_stop=0"]),
            "simulation.t_stop = 0",
        ),
        row(
            "t_stop negative",
            Set(&["simulation.t_stop=-5"]),
            "simulation.t_stop = -5",
        ),
        row(
            "t_stop not a multiple of dt",
            Set(&["simulation.t_stop=10.05"]),
            "simulation.t_stop = 10.05",
        ),
        row(
            "size zero",
            Set(&["population.E.size=0"]),
            "population.E.size = 0",
        ),
        row(
            "size negative",
            Set(&["population.E.size=-3"]),
            "population.E.size",
        ),
        row(
            "tau_m zero",
            Set(&["population.E.tau_m=0"]),
            "population.E.tau_m = 0",
        ),
        row(
            "tau_m negative",
            Set(&["population.E.tau_m=-20"]),
            "population.E.tau_m = -20",
        ),
        row(
            "t_ref negative",
            Set(&["population.E.t_ref=-1"]),
            "population.E.t_ref = -1",
        ),
        row(
            "t_ref not a multiple of dt",
            Set(&["population.E.t_ref=2.05"]),
            "population.E.t_ref = 2.05",
        ),
        row(
            "sigma negative",
            Set(&["population.E.sigma=-1"]),
            "population.E.sigma = -1",
        ),
        row(
            "poisson_rate negative",
            Set(&["population.E.poisson_rate=-5"]),
            "population.E.poisson_rate = -5",
        ),
        row(
            "reset above threshold",
            Set(&["population.E.v_reset=25"]),
            "population.E.v_reset = 25",
        ),
        row(
            "initial range reversed",
            Set(&["population.E.v_init_min=5", "population.E.v_init_max=1"]),
            "population.E.v_init_max = 1",
        ),
        row(
            "tree sample fraction zero",
            Replace(
                "[population.E]\n",
                "[observables.tree.x]\nshape = \"edge\"\nfunctions = [1, \"v\"]\nsample = 0\n[population.E]\n",
            ),
            "observables.tree.x.sample = 0",
        ),
        row(
            "tree sample fraction above 1",
            Replace(
                "[population.E]\n",
                "[observables.tree.x]\nshape = \"edge\"\nfunctions = [1, \"v\"]\nsample = 1.5\n[population.E]\n",
            ),
            "observables.tree.x.sample = 1.5",
        ),
        row(
            "tree with one replicate",
            Replace(
                "[population.E]\n",
                "[observables.tree.x]\nshape = \"edge\"\nfunctions = [1, \"v\"]\nsample = 0.1\nreplicates = 1\n[population.E]\n",
            ),
            "observables.tree.x.replicates = 1",
        ),
        row(
            "pair histogram sample fraction zero",
            Set(&["observables.pair_histogram.every=1", "observables.pair_histogram.sample=0"]),
            "observables.pair_histogram.sample = 0",
        ),
        row(
            "rate bin zero",
            Set(&["observables.rates.every=0"]),
            "observables.rates.every = 0",
        ),
        row(
            "rate bin not a multiple of dt",
            Set(&["observables.rates.every=0.15"]),
            "observables.rates.every = 0.15",
        ),
        row(
            "rates stop before start",
            Set(&["observables.rates.start=5", "observables.rates.stop=2"]),
            "observables.rates.stop = 2",
        ),
        row(
            // Only neurons of ranks 1 and 2 lack sources: rank 0 reports their error.
            "kernel leaves a neuron too few sources for its in-degree",
            Set(&[
                "population.E.placement=\"even\"",
                "projection.EE.kernel={ kind = \"blocks\", matrix = [[1.0, 1.0], [0.0, 0.0]] }",
            ]),
            "projection.EE.indegree = 5: neuron ",
        ),
        row(
            "moments every negative",
            Set(&["observables.moments.every=-1"]),
            "observables.moments.every = -1",
        ),
        row(
            "histogram range empty",
            Set(&["observables.histogram.v_max=-30"]),
            "observables.histogram.v_max = -30",
        ),
        row(
            "histogram zero bins",
            Set(&["observables.histogram.bins=0"]),
            "observables.histogram.bins = 0",
        ),
        row(
            "histogram too many bins",
            Set(&["observables.histogram.bins=1000000000"]),
            "observables.histogram.bins = 1000000000",
        ),
        row(
            "progress interval zero",
            Set(&["output.progress_interval=0"]),
            "output.progress_interval = 0",
        ),
        row(
            "output path empty",
            Set(&["output.path=\"\""]),
            "output.path",
        ),
        // Names, models, rules.
        row(
            "unknown model",
            Set(&["population.E.model=\"hh\""]),
            "population.E.model",
        ),
        row(
            "unknown integrator",
            Set(&["population.E.integrator=\"rk4\""]),
            "population.E.integrator",
        ),
        row(
            "population name with a dot",
            Replace("[population.I]", "[population.\"I.1\"]"),
            "population.I.1",
        ),
        row(
            "no population",
            Text("[simulation]\ndt = 0.1\n"),
            "population",
        ),
        row(
            "missing source population",
            Set(&["projection.EE.source=\"Q\""]),
            "projection.EE.source = \"Q\"",
        ),
        row(
            "missing target population",
            Set(&["projection.EE.target=\"Q\""]),
            "projection.EE.target = \"Q\"",
        ),
        row(
            "unknown rule",
            Set(&["projection.EE.rule=\"small_world\""]),
            "projection.EE.rule",
        ),
        row(
            "fixed in-degree without indegree",
            Replace("indegree = 5\n", ""),
            "projection.EE.indegree",
        ),
        row(
            "bernoulli without p",
            Replace("p = 0.2\n", ""),
            "projection.IE.p",
        ),
        row(
            "p above one",
            Set(&["projection.IE.p=1.5"]),
            "projection.IE.p = 1.5",
        ),
        row(
            "p negative",
            Set(&["projection.IE.p=-0.1"]),
            "projection.IE.p = -0.1",
        ),
        row(
            "in-degree above the source without multapses",
            Set(&["projection.EE.indegree=31", "projection.EE.multapses=false"]),
            "projection.EE.indegree = 31",
        ),
        row(
            "in-degree of all others without autapses",
            Set(&[
                "projection.EE.indegree=30",
                "projection.EE.multapses=false",
                "projection.EE.autapses=false",
            ]),
            "projection.EE.indegree = 30",
        ),
        row(
            "delay shorter than dt",
            Set(&["projection.EE.delay=0.05"]),
            "projection.EE.delay = 0.05",
        ),
        row(
            "delay negative",
            Set(&["projection.EE.delay=-1"]),
            "projection.EE.delay = -1",
        ),
        row(
            "delay not a multiple of dt",
            Set(&["projection.EE.delay=1.05"]),
            "projection.EE.delay = 1.05",
        ),
        // Overflowing sizes.
        row(
            "more neurons than 32-bit exchange counts",
            Set(&["population.E.size=3000000000"]),
            "population = 3000000010",
        ),
        row(
            "N x K beyond 2^50 synapses",
            Set(&[
                "population.E.size=2000000000",
                "projection.EE.indegree=1000000",
            ]),
            "projection.EE.indegree = 1000000",
        ),
        row(
            "window of spikes beyond one message",
            Set(&[
                "population.E.size=2000000000",
                "simulation.exchange=\"window\"",
                "projection.EE.delay=2.0",
                "projection.IE.delay=2.0",
                "projection.EE.indegree=0",
            ]),
            "simulation.exchange",
        ),
        // Syntax and arguments.
        row(
            "TOML syntax error",
            Text("[population.E\nsize = 3\n"),
            "line 1",
        ),
        row(
            "duplicate key",
            Text("[population.E]\nsize = 3\nsize = 4\n"),
            "line",
        ),
        row(
            "--set without '='",
            Set(&["simulation.dt"]),
            "--set = simulation.dt",
        ),
        row(
            "--set into a value",
            Set(&["simulation.dt.x=1"]),
            "simulation.dt",
        ),
        // Files.
        row(
            "config file missing",
            Args(&["{dir}/no-such.toml", "-o", "{out}"]),
            "no-such.toml",
        ),
        row(
            "config file is a directory",
            Args(&["{dir}", "-o", "{out}"]),
            "cannot read",
        ),
        row(
            "output directory missing",
            Args(&["{config}", "-o", "{dir}/no/such/out.h5"]),
            "does not exist",
        ),
        row(
            "output is a directory",
            Args(&["{config}", "-o", "{dir}"]),
            "is a directory",
        ),
        // Emulated ranks (the rows run on 3 ranks; tests/emulate.rs has the one-process rows).
        row(
            "no ranks to emulate",
            Args(&["{config}", "-o", "{out}", "--emulate-ranks", "0"]),
            "--emulate-ranks = 0",
        ),
        row(
            "emulated rank beyond the ranks",
            Args(&["{config}", "-o", "{out}", "--emulate-ranks", "4", "--as-rank", "4"]),
            "--as-rank = 4",
        ),
        row(
            "emulation under mpirun",
            Args(&["{config}", "-o", "{out}", "--emulate-ranks", "16"]),
            "this job has 3 ranks",
        ),
        row(
            "unknown collective",
            Set(&["simulation.collective=\"all_to_all\"", "simulation.collective=\"bcast\""]),
            "simulation.collective",
        ),
        row(
            "output not writable",
            Args(&["{config}", "-o", "/proc/out.h5"]),
            "/proc/out.h5",
        ),
        row(
            "output exists without --force",
            Args(&["{config}", "-o", "{dir}/exists.h5"]),
            "exists; pass --force",
        ),
        row(
            "checkpoint exists without --force",
            Args(&[
                "{config}",
                "-o",
                "{out}",
                "--set",
                "checkpoint.path=\"{dir}/exists.h5\"",
            ]),
            "checkpoint.path = ",
        ),
        row(
            "checkpoint path equals the output path",
            Args(&[
                "{config}",
                "-o",
                "{out}",
                "--set",
                "checkpoint.path=\"{out}\"",
            ]),
            "must differ from the output path",
        ),
        row(
            "restart from a missing checkpoint",
            Args(&[
                "{config}",
                "-o",
                "{out}",
                "--restart",
                "{dir}/no-such.checkpoint.h5",
            ]),
            "--restart = ",
        ),
        row(
            "record_spikes above the population size",
            Set(&["population.E.record_spikes=100000"]),
            "population.E.record_spikes = 100000",
        ),
        row(
            "fano window not a multiple of the rate bin",
            Set(&[
                "observables.rates.every=2",
                "observables.statistics.fano_window=3",
            ]),
            "observables.statistics.fano_window = 3",
        ),
        row(
            "statistics window stop before start",
            Set(&[
                "observables.statistics.start=2",
                "observables.statistics.stop=1",
            ]),
            "observables.statistics.stop = 1:",
        ),
        row(
            "snapshot interval not a multiple of dt",
            Set(&["observables.snapshots.every=0.05"]),
            "observables.snapshots.every = 0.05",
        ),
        row(
            "misspelt population in --set (would define a new one)",
            Set(&["population.e.size=10"]),
            "population.e.size = 10: the configuration has no population \"e\" (it has: E, I)",
        ),
        row(
            "misspelt projection in --set",
            Set(&["projection.EI.weight=0.2"]),
            "projection.EI.weight = 0.2: the configuration has no projection \"EI\" (it has: EE, IE)",
        ),
        row(
            "new aggregate term through --set without --create",
            Set(&["aggregate.A.source=\"E\""]),
            "the configuration has no aggregate term \"A\" (it has: none); define it there, or pass --create",
        ),
        row(
            "recorded neuron beyond its population",
            Set(&["observables.record.neurons.E=[0,30]"]),
            "observables.record.neurons.E = 30: node ids must be below",
        ),
        row(
            "recorded population that does not exist",
            Set(&["observables.record.neurons.Q=[0]"]),
            "observables.record.neurons.Q = [0]: names no population",
        ),
        row(
            "recorded variable a LIF population does not have",
            Set(&[
                "observables.record.neurons.E=[0]",
                "observables.record.variables=[\"v\",\"w\"]",
            ]),
            "observables.record.variables = \"w\": population E has no such variable",
        ),
        row(
            "recording at interval zero",
            Set(&[
                "observables.record.neurons.E=[0]",
                "observables.record.every=0",
            ]),
            "observables.record.every = 0: must be positive",
        ),
        row(
            "stimulus of a population that does not exist",
            Replace("[projection.IE]", "[stimulus.s]\ntarget = \"Q\"\nkind = \"current\"\nwaveform = \"step\"\namplitude = 1.0\n[projection.IE]"),
            "stimulus.s.target = \"Q\": no such population (have: E, I)",
        ),
        row(
            "Poisson stimulus whose rate turns negative",
            Replace("[projection.IE]", "[stimulus.s]\ntarget = \"E\"\nkind = \"poisson\"\nwaveform = \"sine\"\noffset = 100.0\namplitude = 200.0\nfrequency = 5.0\nweight = 0.1\n[projection.IE]"),
            "a Poisson rate must not be negative; this one reaches -100 [Hz]",
        ),
        row(
            "stimulus key of another waveform",
            Replace("[projection.IE]", "[stimulus.s]\ntarget = \"E\"\nkind = \"current\"\nwaveform = \"step\"\namplitude = 1.0\nfrequency = 5.0\n[projection.IE]"),
            "stimulus.s.frequency = (set): does not apply to waveform = \"step\"",
        ),
        row(
            "piecewise stimulus with times out of order",
            Replace("[projection.IE]", "[stimulus.s]\ntarget = \"E\"\nkind = \"current\"\nwaveform = \"piecewise\"\ntimes = [0.0, 5.0, 3.0]\nvalues = [1.0, 2.0, 3.0]\n[projection.IE]"),
            "stimulus.s.times = [0.0, 5.0, 3.0]: must increase (entry 2 is 3)",
        ),
        row(
            "stimulus stopping before it starts",
            Replace("[projection.IE]", "[stimulus.s]\ntarget = \"E\"\nkind = \"current\"\nwaveform = \"step\"\namplitude = 1.0\nstart = 5.0\nstop = 2.0\n[projection.IE]"),
            "stimulus.s.stop = 2: must exceed start (5) [ms]",
        ),
        row(
            "current stimulus on a population with heterogeneous parameters",
            Replace("[projection.IE]", "[population.E.vary]\nv_th = { dist = \"uniform\", min = 19.0, max = 21.0 }\n[stimulus.s]\ntarget = \"E\"\nkind = \"current\"\nwaveform = \"step\"\namplitude = 1.0\n[projection.IE]"),
            "stimulus.s.target = \"E\": a current stimulus cannot drive a population with heterogeneous parameters",
        ),
        row(
            "replay of a missing spike file",
            Replace("[projection.IE]", "[stimulus.s]\ntarget = \"E\"\nkind = \"replay\"\nfile = \"no_such_spikes.h5\"\nweight = 0.1\n[projection.IE]"),
            "no_such_spikes.h5\": cannot be opened as HDF5",
        ),
        row(
            "checkpoint interval negative",
            Set(&["checkpoint.every=-1"]),
            "checkpoint.every = -1",
        ),
        row(
            "vary: negative sd",
            Set(&["population.E.vary.v_th={dist=\"normal\",mean=20.0,sd=-1.0}"]),
            "population.E.vary.v_th.sd = -1",
        ),
        row(
            "vary: unknown parameter",
            Set(&["population.E.vary.tau={dist=\"normal\",mean=20.0,sd=1.0}"]),
            "population.E.vary.tau =",
        ),
        row(
            "vary: unknown law",
            Set(&["population.E.vary.v_th={dist=\"cauchy\",mean=20.0,sd=1.0}"]),
            "population.E.vary.v_th.dist = \"cauchy\"",
        ),
        row(
            "vary: unknown key in an entry",
            Set(&["population.E.vary.v_th={dist=\"normal\",mean=20.0,sd=1.0,sdev=2.0}"]),
            "sdev",
        ),
        row(
            "vary: a normal tau_m can be negative",
            Set(&["population.E.vary.tau_m={dist=\"normal\",mean=20.0,sd=1.0}"]),
            "population.E.vary.tau_m.low",
        ),
        row(
            "vary: lognormal with a negative mean",
            Set(&["population.E.vary.tau_m={dist=\"lognormal\",mean=-20.0,sd=1.0}"]),
            "population.E.vary.tau_m.mean = -20",
        ),
        row(
            "vary: uniform max below min",
            Set(&["population.E.vary.tau_m={dist=\"uniform\",min=20.0,max=10.0}"]),
            "population.E.vary.tau_m.max = 10",
        ),
        row(
            "vary: bounds outside the law",
            Set(&["population.E.vary.tau_m={dist=\"uniform\",min=15.0,max=25.0,low=30.0}"]),
            "population.E.vary.tau_m.low = 30",
        ),
        row(
            "vary: a uniform sigma below 0",
            Set(&["population.E.vary.sigma={dist=\"uniform\",min=-1.0,max=1.0}"]),
            "population.E.vary.sigma.min = -1",
        ),
        row(
            "vary: y on the ring",
            Set(&["population.E.vary.i_e={of=\"y\",kind=\"linear\",a=0.0,b=1.0}"]),
            "population.E.vary.i_e.of = \"y\"",
        ),
        row(
            "vary: dist and of together",
            Set(&["population.E.vary.i_e={dist=\"normal\",mean=0.0,sd=1.0,of=\"x\"}"]),
            "population.E.vary.i_e.of",
        ),
        row(
            "vary: empty blocks",
            Set(&["population.E.vary.i_e={of=\"x\",kind=\"blocks\",values=[]}"]),
            "population.E.vary.i_e.values",
        ),
        row(
            "vary: a cosine tau_m reaching 0",
            Set(&["population.E.vary.tau_m={of=\"x\",kind=\"cosine\",a=10.0,b=10.0}"]),
            "population.E.vary.tau_m = 0",
        ),
        row(
            "vary: a neuron's threshold below its reset",
            Set(&["population.E.vary.v_th={dist=\"uniform\",min=5.0,max=30.0}"]),
            "population.E.vary.v_th = ",
        ),
        row(
            "vary: truncation holding too little of the law",
            Set(&["population.E.vary.v_th={dist=\"normal\",mean=20.0,sd=1.0,low=30.0}"]),
            "population.E.vary.v_th = (table) (gid 0)",
        ),
        row(
            "vary: a gamma law that overflows",
            Set(&["population.E.vary.tau_m={dist=\"gamma\",mean=1e300,sd=1e-300}"]),
            "population.E.vary.tau_m.sd = 1e-300",
        ),
        row(
            "vary: a uniform range that overflows",
            Set(&["population.E.vary.i_e={dist=\"uniform\",min=-1e308,max=1e308}"]),
            "population.E.vary.i_e.max",
        ),
        row(
            "vary: not the plain LIF neuron",
            Set(&[
                "population.E.model=\"perfect\"",
                "population.E.vary.v_th={dist=\"normal\",mean=20.0,sd=1.0}",
            ]),
            "population.E.vary.v_th",
        ),
        row(
            "meanfield.vary_nodes zero",
            Set(&["meanfield.vary_nodes=0"]),
            "meanfield.vary_nodes = 0",
        ),
        row(
            "checkpoint interval not a multiple of dt",
            Set(&["checkpoint.every=0.05"]),
            "checkpoint.every = 0.05",
        ),
    ]
}

fn substitute(arg: &str, dir: &Path, config: &Path, out: &Path) -> String {
    arg.replace("{dir}", dir.to_str().unwrap())
        .replace("{config}", config.to_str().unwrap())
        .replace("{out}", out.to_str().unwrap())
}

#[test]
fn every_invalid_input_fails_cleanly_on_three_ranks() {
    let rows = rows();
    assert!(rows.len() >= 50, "the table has {} rows", rows.len());
    let dir = common::scratch("bad_input");
    std::fs::write(dir.join("exists.h5"), b"a previous result").unwrap();
    let out = dir.join("out.h5");
    let mut failures = Vec::new();
    for r in &rows {
        let config = dir.join("bad.toml");
        let text = match &r.input {
            Input::Text(t) => t.to_string(),
            Input::Replace(a, b) => {
                assert!(BASE.contains(a), "{}: {a:?} not in the base", r.what);
                BASE.replacen(a, b, 1)
            }
            _ => BASE.to_string(),
        };
        std::fs::write(&config, &text).unwrap();
        let mut args = vec!["run".to_string()];
        match &r.input {
            Input::Args(a) => args.extend(a.iter().map(|s| substitute(s, &dir, &config, &out))),
            Input::Set(sets) => {
                args.extend([
                    config.display().to_string(),
                    "-o".into(),
                    out.display().to_string(),
                ]);
                for s in sets.iter() {
                    args.extend(["--set".to_string(), s.to_string()]);
                }
            }
            _ => args.extend([
                config.display().to_string(),
                "-o".into(),
                out.display().to_string(),
            ]),
        }
        // Each rank records its own exit code, so the test sees every rank's verdict; the
        // wrapper exits 0, so mpirun adds nothing to stderr.
        let quoted: Vec<String> = args
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect();
        let script = format!(
            "{} {}; echo $? > {}/rc.$OMPI_COMM_WORLD_RANK",
            common::binary(),
            quoted.join(" "),
            dir.display()
        );
        let start = Instant::now();
        let o = common::run_with_timeout(
            common::mpirun_program(3, "sh", &["-c", &script]),
            Duration::from_secs(60),
        );
        let took = start.elapsed();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        // Errors found while the network is built follow the run's banner line
        // ("lapicque: N neurons, T ms at dt = ..., R rank(s)"); anything else is one line.
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| !(l.starts_with("lapicque: ") && l.ends_with(" rank(s)")))
            .collect();
        let mut problems = Vec::new();
        for rank in 0..3 {
            let f = dir.join(format!("rc.{rank}"));
            let rc = std::fs::read_to_string(&f).unwrap_or_default();
            if rc.trim() != r.code.to_string() {
                problems.push(format!("rank {rank} exit code {:?}", rc.trim()));
            }
            let _ = std::fs::remove_file(f);
        }
        if lines.len() != 1 {
            problems.push(format!("{} lines on stderr", lines.len()));
        }
        if !stderr.contains(r.expect) {
            problems.push(format!("does not name {:?}", r.expect));
        }
        if out.exists() || dir.join("out.h5.partial").exists() {
            problems.push("left an output file".into());
        }
        if std::fs::read(dir.join("exists.h5")).unwrap() != b"a previous result" {
            problems.push("touched the existing file".into());
        }
        if took > Duration::from_secs(20) {
            problems.push(format!("took {took:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {} -- stderr {:?}",
                r.what,
                problems.join(", "),
                stderr.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// `lapicque check` gives the same verdicts without MPI, on a few rows.
#[test]
fn check_refuses_the_same_configs() {
    let dir = common::scratch("bad_input_check");
    for (set, expect) in [
        ("population.E.tau_m=-20", "population.E.tau_m = -20"),
        ("projection.EE.source=\"Q\"", "projection.EE.source = \"Q\""),
        ("simulation.dt=nan", "simulation.dt = NaN"),
    ] {
        let config = dir.join("c.toml");
        std::fs::write(&config, BASE).unwrap();
        let o = std::process::Command::new(common::binary())
            .args(["check", config.to_str().unwrap(), "--set", set])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{set}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(expect) && e.lines().count() == 1, "{set}: {e}");
    }
}

/// A run whose potentials become infinite stops on every rank with the neuron, its population
/// and the time, exit code 3, and no output.
#[test]
fn diverging_dynamics_stop_with_the_neuron_and_time() {
    let dir = common::scratch("diverge");
    let config = dir.join("div.toml");
    std::fs::write(
        &config,
        "[simulation]\nt_stop = 50.0\n[population.P]\nsize = 20\ni_e = 2.0\n[population.T]\nsize = 10\n\
         [projection.PT]\nsource = \"P\"\ntarget = \"T\"\nrule = \"fixed_indegree\"\nindegree = 10\nweight = -1e308\ndelay = 1.0\n",
    )
    .unwrap();
    let out = dir.join("div.h5");
    let o = common::run_with_timeout(
        common::mpirun(
            3,
            &["run", config.to_str().unwrap(), "-o", out.to_str().unwrap()],
        ),
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(3));
    let e = String::from_utf8_lossy(&o.stderr);
    // P fires first when V crosses 20 mV under mu = 40 mV: t = 20 ln 2 = 13.86 ms, stamped
    // 13.9 ms; the -1e308 jumps of 10 synapses arrive one delay (1 ms) later.
    assert!(
        e.contains("population T") && e.contains("t = 14.9 ms"),
        "{e}"
    );
    assert!(!out.exists() && !dir.join("div.h5.partial").exists());
}
