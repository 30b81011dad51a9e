"""Python interface of lapicque, a distributed simulator of noisy integrate-and-fire networks.

    import lapicque
    res = lapicque.run("configs/smoke.toml", ranks=2, overrides={"simulation.t_stop": 200})
    ids, t = res.spikes("E")              # SONATA node ids and spike times [ms]
    res.rates["E"], res.rates.time         # population rate [Hz] per bin starting at time [ms]
    lim = lapicque.meanfield("configs/smoke.toml")
    block = res.to_neo()                   # neo.Block of SpikeTrains (for elephant)
    res.to_nwb("smoke.nwb")                # NWB file (pynwb)

Units throughout: ms, mV, Hz (the output layout is docs/output.md of the repository).
"""

from ._run import LapicqueError, check, find_binary, meanfield, run, set_arguments, toml_value
from .results import (Densities, Histograms, Moments, Population, Rates, Results, Tree, load)

__version__ = "0.1.0"

__all__ = ["run", "meanfield", "check", "load", "Results", "Population", "Rates", "Moments",
           "Histograms", "Densities", "Tree", "LapicqueError", "find_binary", "set_arguments",
           "toml_value"]
