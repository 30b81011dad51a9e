"""lapicque.meanfield: the file the CLI writes, and the stationary rate of uncoupled noisy LIF
neurons against the Siegert formula evaluated here by a quadrature of its own."""

import math
import tomllib

import h5py
import numpy as np
import pytest

import lapicque
from conftest import CONFIGS, cli_ok

UNCOUPLED = CONFIGS / "uncoupled_lif.toml"


def siegert_hz(tau_m, t_ref, v_th, v_reset, mu, sigma_v, intervals=4000):
    """Brunel (2000): 1/rate = t_ref + tau_m sqrt(pi) int_{y_r}^{y_th} e^(u^2) (1 + erf u) du,
    y = (v - mu) / sigma_v, by the composite Simpson rule (times in ms, result in Hz).
    e^(u^2) (1 + erf u) is written e^(u^2) erfc(-u), which stays accurate for u < 0."""
    a, b = (v_reset - mu) / sigma_v, (v_th - mu) / sigma_v
    h = (b - a) / intervals
    f = [math.exp(u * u) * math.erfc(-u) for u in (a + k * h for k in range(intervals + 1))]
    integral = h / 3 * (f[0] + f[-1] + 4 * sum(f[1:-1:2]) + 2 * sum(f[2:-1:2]))
    return 1000.0 / (t_ref + tau_m * math.sqrt(math.pi) * integral)


def expected_rate():
    with open(UNCOUPLED, "rb") as f:
        e = tomllib.load(f)["population"]["E"]
    mu = e["e_l"] + e["tau_m"] * e["i_e"]              # 18 mV
    sigma_v = e["sigma"] * math.sqrt(e["tau_m"])        # 4.47 mV
    return siegert_hz(e["tau_m"], e["t_ref"], e["v_th"], e["v_reset"], mu, sigma_v)


def test_quadrature_is_converged():
    assert abs(expected_rate() / 17.91 - 1) < 1e-3  # the value the config's comment states
    with open(UNCOUPLED, "rb") as f:
        e = tomllib.load(f)["population"]["E"]
    args = (e["tau_m"], e["t_ref"], e["v_th"], e["v_reset"], 18.0, math.sqrt(20.0))
    assert abs(siegert_hz(*args, intervals=400) / siegert_hz(*args) - 1) < 1e-10


@pytest.mark.parametrize("cells", [400, 1000])
def test_stationary_rate_is_the_siegert_rate(cells):
    """The solver is second order in the cell width; its documentation
    (src/meanfield/lif.rs) states a relative error of the stationary rate below 1e-4 at 1000
    cells for the cases tested, and docs/meanfield.md 0.33% at 400 cells for a strongly
    drift-dominated population (the worst case it reports). The rate after 100 ms is
    stationary to 1e-7 (relaxation on the scale of tau_m = 20 ms), so the mean of the last 50
    ms of rate bins must be the Siegert rate to the same tolerance."""
    res = lapicque.meanfield(UNCOUPLED, overrides={"simulation.t_stop": 150,
                                                   "meanfield.cells": cells})
    assert res.kind == "meanfield" and res.limit["cells"] == cells
    want = expected_rate()
    tol = 1e-4 if cells == 1000 else 3.3e-3
    late = res.rates["E"][res.rates.time >= 100].mean()
    assert abs(late / want - 1) < tol, (late, want)
    assert abs(res.stationary_rate()["E"] / want - 1) < tol
    assert res.limit["converged"] == 1


def test_meanfield_equals_the_command_line(tmp_path):
    out = tmp_path / "limit.h5"
    cli_ok("meanfield", UNCOUPLED, "-o", out, "--set", "simulation.t_stop=50")
    res = lapicque.meanfield(UNCOUPLED, overrides={"simulation.t_stop": 50})
    with h5py.File(out, "r") as f:
        assert res.kind == f.attrs["kind"] == "meanfield"
        np.testing.assert_array_equal(res.rates["E"], f["rates/E"][:])
        np.testing.assert_array_equal(res.moments["E"]["mean"], f["moments/E/mean"][:])
        np.testing.assert_array_equal(res.histograms["E"], f["histograms/E"][:])
        np.testing.assert_array_equal(res.histograms.time, f["histograms/time"][:])
        np.testing.assert_array_equal(res.limit["siegert_rate"], f["meanfield/siegert_rate"][:])
    assert res.state == {}
    with pytest.raises(KeyError):
        res.spikes("E")
