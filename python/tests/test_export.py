"""neo and NWB exports against the SONATA datasets and rates of the CLI's file."""

import datetime

import h5py
import numpy as np
import pytest
import quantities as pq
from pynwb import NWBHDF5IO

import lapicque
from conftest import CONFIGS


@pytest.fixture(scope="module")
def cli_data(smoke_cli):
    with h5py.File(smoke_cli, "r") as f:
        return {
            "spikes": {p: (f[f"spikes/{p}/node_ids"][:], f[f"spikes/{p}/timestamps"][:])
                       for p in f["spikes"]},
            "rates": {p: f[f"rates/{p}"][:] for p in ("E", "I")},
            "rate_time": f["rates/time"][:],
            "bin_width": f["rates"].attrs["bin_width"],
            "sizes": {p: int(f[f"populations/{p}"].attrs["size"]) for p in ("E", "I")},
            "gid_start": {p: int(f[f"populations/{p}"].attrs["gid_start"]) for p in ("E", "I")},
            "t_stop": f.attrs["t_stop"],
            "started": f.attrs["started"],
        }


def test_neo_spiketrains_are_the_sonata_spikes(smoke_cli, cli_data):
    block = lapicque.load(smoke_cli).to_neo()
    assert len(block.segments) == 1
    trains = block.segments[0].spiketrains
    sizes = cli_data["sizes"]
    assert len(trains) == sizes["E"] + sizes["I"]
    total = sum(len(ids) for ids, _ in cli_data["spikes"].values())
    assert sum(len(st) for st in trains) == total
    for st in trains:
        pop, node = st.annotations["source_population"], st.annotations["source_index"]
        ids, t = cli_data["spikes"][pop]
        assert st.units == pq.ms
        np.testing.assert_array_equal(st.magnitude, t[ids == node])
        assert st.t_start == 0 * pq.ms and st.t_stop == cli_data["t_stop"] * pq.ms
        assert st.annotations["source_id"] == cli_data["gid_start"][pop] + node
        assert (st.annotations["population"], st.annotations["node_id"],
                st.annotations["gid"]) == (pop, node, st.annotations["source_id"])
    assert block.annotations["simulator"] == "lapicque"
    assert block.annotations["mpi_processes"] == 2


def test_neo_rates_are_analog_signals_in_hz(smoke_cli, cli_data):
    block = lapicque.load(smoke_cli).get_data("rates")
    seg = block.segments[0]
    assert len(seg.spiketrains) == 0 and len(seg.analogsignals) == 2
    for sig in seg.analogsignals:
        pop = sig.annotations["source_population"]
        assert sig.units == pq.Hz and sig.shape == (len(cli_data["rate_time"]), 1)
        np.testing.assert_array_equal(sig.magnitude[:, 0], cli_data["rates"][pop])
        np.testing.assert_allclose(sig.times.rescale("ms").magnitude, cli_data["rate_time"],
                                   rtol=0, atol=1e-9)
        assert sig.sampling_period == cli_data["bin_width"] * pq.ms


def test_neo_of_one_population_carries_pynn_metadata(smoke_cli, cli_data):
    block = lapicque.load(smoke_cli).to_neo(populations="I", rates=False)
    a = block.annotations
    assert (a["size"], a["first_id"], a["last_id"]) == (400, 1600, 1999)
    assert len(block.segments[0].spiketrains) == 400


def test_nwb_units_are_the_spikes_in_seconds(smoke_cli, cli_data, tmp_path):
    path = tmp_path / "smoke.nwb"
    lapicque.load(smoke_cli).to_nwb(path)
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        units = nwb.units.to_dataframe()
        assert len(units) == sum(cli_data["sizes"].values())
        for row in units.itertuples():
            ids, t = cli_data["spikes"][row.population]
            assert row.gid == cli_data["gid_start"][row.population] + row.node_id
            np.testing.assert_array_equal(np.asarray(row.spike_times),
                                          t[ids == row.node_id] / 1000.0)
        assert sum(len(x) for x in units.spike_times) == sum(
            len(t) for _, t in cli_data["spikes"].values())
        rates = nwb.processing["rates"]
        for pop in ("E", "I"):
            ts = rates[pop]
            assert ts.unit == "Hz"
            np.testing.assert_array_equal(ts.data[:], cli_data["rates"][pop])
            np.testing.assert_array_equal(ts.timestamps[:], cli_data["rate_time"] / 1000.0)
        started = datetime.datetime.fromisoformat(cli_data["started"].replace("Z", "+00:00"))
        assert nwb.session_start_time == started


def test_a_meanfield_file_exports_rates_only(tmp_path):
    lim = lapicque.meanfield(CONFIGS / "uncoupled_lif.toml",
                             overrides={"simulation.t_stop": 20})
    block = lim.to_neo()
    assert len(block.segments[0].spiketrains) == 0
    assert len(block.segments[0].analogsignals) == 1
    nwb = lim.to_nwb(tmp_path / "limit.nwb")
    assert nwb.units is None
    with NWBHDF5IO(str(tmp_path / "limit.nwb"), "r") as io:
        np.testing.assert_array_equal(io.read().processing["rates"]["E"].data[:],
                                      lim.rates["E"])
