"""lapicque.run and lapicque.load against the files the command line writes, read directly
with h5py."""

import gc
import os
import tomllib

import h5py
import numpy as np
import pytest

import lapicque
from conftest import CONFIGS, cli, cli_ok

SMOKE = CONFIGS / "smoke.toml"
SHORT = {"simulation.t_stop": 200}


@pytest.fixture(scope="module")
def smoke_py():
    """The same run as `smoke_cli`, through the package."""
    return lapicque.run(SMOKE, ranks=2, overrides=SHORT)


def spikes_of(path):
    with h5py.File(path, "r") as f:
        return {p: (f[f"spikes/{p}/node_ids"][:], f[f"spikes/{p}/timestamps"][:])
                for p in f["spikes"]}


def test_run_equals_the_command_line(smoke_cli, smoke_py):
    res = smoke_py
    assert res.kind == "run"
    with h5py.File(smoke_cli, "r") as f:
        assert list(res.populations) == ["E", "I"]
        for name, p in res.populations.items():
            g = f[f"populations/{name}"]
            assert (p.size, p.gid_start, p.model) == (g.attrs["size"], g.attrs["gid_start"],
                                                      g.attrs["model"])
            ids, t = res.spikes(name)
            assert ids.dtype == np.uint64 and len(ids) > 1000
            np.testing.assert_array_equal(ids, f[f"spikes/{name}/node_ids"][:])
            np.testing.assert_array_equal(t, f[f"spikes/{name}/timestamps"][:])
            np.testing.assert_array_equal(res.rates[name], f[f"rates/{name}"][:])
            np.testing.assert_array_equal(res.moments[name]["mean"], f[f"moments/{name}/mean"][:])
            np.testing.assert_array_equal(res.moments[name]["variance"],
                                          f[f"moments/{name}/variance"][:])
            np.testing.assert_array_equal(res.histograms[name], f[f"histograms/{name}"][:])
        np.testing.assert_array_equal(res.rates.time, f["rates/time"][:])
        assert res.rates.bin_width == f["rates"].attrs["bin_width"] == 1.0
        np.testing.assert_array_equal(res.histograms.edges, f["histograms/edges"][:])
        np.testing.assert_array_equal(res.state["v"], f["state/v"][:])
        np.testing.assert_array_equal(res.state["refractory_steps"],
                                      f["state/refractory_steps"][:])
        assert res.config == tomllib.loads(f.attrs["config"])
        assert res.t_stop == 200.0 and res.attrs["n_ranks"] == 2
    assert res.densities is None and res.trees == {}


def test_spiketrains_split_the_sonata_datasets(smoke_cli, smoke_py):
    with h5py.File(smoke_cli, "r") as f:
        ids, t = f["spikes/I/node_ids"][:], f["spikes/I/timestamps"][:]
    trains = smoke_py.spiketrains("I")
    assert len(trains) == 400
    for node in (0, 17, 399):
        np.testing.assert_array_equal(trains[node], t[ids == node])
    assert sum(len(x) for x in trains) == len(t)


def test_a_dict_config_equal_to_the_file_gives_the_same_spikes(smoke_cli):
    with open(SMOKE, "rb") as f:
        config = tomllib.load(f)
    config["simulation"]["t_stop"] = 200.0
    res = lapicque.run(config, ranks=2)
    want = spikes_of(smoke_cli)
    for p in ("E", "I"):
        np.testing.assert_array_equal(res.spikes(p)[0], want[p][0])
        np.testing.assert_array_equal(res.spikes(p)[1], want[p][1])


def test_a_dict_config_replays_a_spike_file_relative_to_base_dir(smoke_cli, tmp_path):
    """A replay stimulus naming `source.h5` in a dict reads it from `base_dir`: each neuron of
    a population that only counts (perfect integrator, weight 1 mV) ends at the number of
    spikes of its node in the file stamped before the end of the run, counted here."""
    os.symlink(smoke_cli, tmp_path / "source.h5")
    t_stop = 100.0
    config = {
        "simulation": {"t_stop": t_stop},
        "population": {"R": {"size": 1600, "model": "perfect", "v_th": 1e9, "v_reset": 0.0}},
        "stimulus": {"r": {"target": "R", "kind": "replay", "file": "source.h5",
                           "population": "E", "weight": 1.0}},
    }
    res = lapicque.run(config, ranks=2, base_dir=tmp_path)
    ids, times = spikes_of(smoke_cli)["E"]
    want = np.bincount(ids[times < t_stop - 1e-9].astype(int), minlength=1600)
    np.testing.assert_array_equal(res.state["v"], want.astype(float))


def test_one_rank_and_two_ranks_give_the_same_spikes(smoke_cli):
    res = lapicque.run(SMOKE, ranks=1, overrides=SHORT)
    assert res.attrs["n_ranks"] == 1
    want = spikes_of(smoke_cli)
    for p in ("E", "I"):
        np.testing.assert_array_equal(res.spikes(p)[0], want[p][0])
        np.testing.assert_array_equal(res.spikes(p)[1], want[p][1])


def test_overrides_are_the_command_lines_set(tmp_path):
    """Overrides of several types resolve to what `lapicque check --resolved --set` gives."""
    overrides = {"population.E.size": 800, "simulation.t_stop": 50.5,
                 "population.I.record_spikes": 10, "output.final_state": False,
                 "parameters.g": 5.0, "projection.IE.weight": "= -g * 0.25",
                 "population.E.bridge": False}
    sets = ["--set", "population.E.size=800", "--set", "simulation.t_stop=50.5",
            "--set", "population.I.record_spikes=10", "--set", "output.final_state=false",
            "--set", "parameters.g=5.0", "--set", "projection.IE.weight== -g * 0.25",
            "--set", "population.E.bridge=false", "--create"]
    want = tomllib.loads(cli_ok("check", SMOKE, "--resolved", *sets).stdout)
    got = lapicque.check(SMOKE, overrides=overrides, create=True)
    assert got == want
    assert got["projection"]["IE"]["weight"] == -1.25 and got["population"]["E"]["size"] == 800
    res = lapicque.run(SMOKE, overrides=overrides, create=True, output=tmp_path / "o.h5")
    assert res.path == str(tmp_path / "o.h5") and os.path.exists(res.path)
    assert res.populations["E"].size == 800 and res.populations["I"].record_spikes == 10
    assert res.state == {}  # output.final_state = false
    ids, _ = res.spikes("I")
    assert ids.max() < 10
    assert len(res.spiketrains("I")) == 10


def test_a_bad_override_raises_with_the_key_and_exit_code_2(tmp_path):
    with pytest.raises(lapicque.LapicqueError) as e:
        lapicque.run(SMOKE, overrides={"population.E.tau_m": -20})
    assert e.value.returncode == 2
    assert "population.E.tau_m" in e.value.message
    unused = tmp_path / "unused.h5"
    direct = cli("run", SMOKE, "-o", unused, "--set", "population.E.tau_m=-20", ranks=2)
    assert direct.returncode == 2
    said = [l for l in direct.stderr.splitlines() if l.startswith("lapicque: error:")]
    assert [e.value.message] == said  # one line, from rank 0 only
    assert not unused.exists()
    with pytest.raises(lapicque.LapicqueError) as e:
        lapicque.run(SMOKE, overrides={"population.e.size": 10})  # misspelt population
    assert e.value.returncode == 2 and "population.e.size" in e.value.message
    with pytest.raises(lapicque.LapicqueError) as e:
        lapicque.meanfield(SMOKE, overrides={"simulation.dt": "fast"})
    assert e.value.returncode == 2 and "simulation.dt" in e.value.message


def test_a_temporary_output_lives_as_long_as_its_results(tmp_path):
    res = lapicque.run(SMOKE, overrides={"simulation.t_stop": 20})
    path = res.path
    assert os.path.exists(path)
    kept = res.save(tmp_path / "kept.h5")
    assert not os.path.exists(path) and os.path.exists(kept)
    res2 = lapicque.run(SMOKE, overrides={"simulation.t_stop": 20})
    path2 = res2.path
    del res2
    gc.collect()
    assert not os.path.exists(path2)
    np.testing.assert_array_equal(lapicque.load(kept).spikes("E")[1], res.spikes("E")[1])


def test_toml_values_parse_back():
    """What `--set` receives is TOML that parses (tomllib) to the value given."""
    values = [True, False, 0, -3, 800, 5.0, 0.1, 1e-7, -2.5e10, "E", 'a "quoted" \\ string',
              "= -g * J", [1, 2, 3], [0.5, 1.5], ["E", "I"], np.float64(0.25), np.int64(7),
              np.array([1.0, 2.0])]
    for v in values:
        text = lapicque.toml_value(v)
        got = tomllib.loads(f"v = {text}")["v"]
        want = v.tolist() if hasattr(v, "tolist") else v
        assert got == want and type(got) is type(want), (v, text)
    assert tomllib.loads(f"v = {lapicque.toml_value(float('inf'))}")["v"] == float("inf")
    assert lapicque.set_arguments({"population": {"E": {"size": 8}}, "parameters.g": 4.5}) == [
        "--set", "population.E.size=8", "--set", "parameters.g=4.5"]


def test_trees_carry_their_definition():
    """A tree's parents, functions and projections come from the group's attributes (as
    written), its values and units from the file; the definition is the configuration's."""
    res = lapicque.run(SMOKE, ranks=1, overrides={
        "simulation.t_stop": 100,
        "observables.tree.path.shape": "path", "observables.tree.path.vertices": 3,
        "observables.tree.path.functions": ["v", 1, "spike"],
        "observables.tree.path.every": 50.0}, create=True)
    tree = res.trees["path"]
    np.testing.assert_array_equal(tree.parents, [-1, 0, 1])
    assert tree.functions == ["v", "1", "spike"]
    with h5py.File(res.path, "r") as f:
        g = f["trees/path"]
        np.testing.assert_array_equal(tree.value, g["value"][:])
        assert tree.units == g["value"].attrs["units"] and tree.units
        assert tree.projections == g.attrs["projections"] and tree.projections
    assert len(tree.time) == 3 and tree.stderr is None
