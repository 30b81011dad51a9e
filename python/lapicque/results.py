"""Reading an output file of `lapicque run` or `lapicque meanfield` (layout: docs/output.md)
with h5py into numpy arrays. Units: times in ms, potentials in mV, rates in Hz."""

from __future__ import annotations

import os
import shutil
import tomllib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import h5py
import numpy as np

__all__ = ["Results", "Population", "Rates", "Moments", "Histograms", "Densities", "Tree",
           "load"]


def _str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _attr(value):
    """An HDF5 attribute as a plain Python value (strings decoded, scalars unwrapped)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SO":
            return [_str(v) for v in value.tolist()]
        return value
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class Population:
    """One population: `name`, `size`, `gid_start` (its first global id; node ids are
    `gid - gid_start`), `model` (`lif`, `perfect`, `linear`, `exp_if`, `fhn`), `spike`
    (`threshold`, `escape`, `none`) and `record_spikes` (how many of its first neurons have
    their spikes written)."""

    name: str
    size: int
    gid_start: int
    model: str
    spike: str
    record_spikes: int

    @property
    def gids(self) -> np.ndarray:
        """The global ids of its neurons."""
        return np.arange(self.gid_start, self.gid_start + self.size, dtype=np.uint64)

    @property
    def slice(self) -> slice:
        """Its rows in by-gid arrays (`Results.state["v"][pop.slice]`)."""
        return slice(self.gid_start, self.gid_start + self.size)


class Rates(dict):
    """Population rates: `rates[pop]` [Hz], spikes per neuron per second in each bin;
    `time` [ms], the start of each bin; `bin_width` [ms]."""

    def __init__(self, time, bin_width, data):
        super().__init__(data)
        self.time = time
        self.bin_width = bin_width


class Moments(dict):
    """Population moments of V at `time` [ms]: `moments[pop]["mean"]` [mV] and
    `moments[pop]["variance"]` [mV^2]."""

    def __init__(self, time, data):
        super().__init__(data)
        self.time = time


class Histograms(dict):
    """The empirical density of V: `histograms[pop]` [1/mV], shape (len(time), len(edges) -
    1), at `time` [ms], on bins with `edges` [mV]. Times the bin widths it sums to the
    fraction of neurons inside the range."""

    def __init__(self, time, edges, data):
        super().__init__(data)
        self.time = time
        self.edges = edges


class Densities(dict):
    """The extended density f(t, v, xi) over V and the first coordinate: `densities[pop]`
    [1/mV], shape (len(time), len(xi_edges) - 1, len(edges) - 1), V bins `edges` [mV],
    coordinate bins `xi_edges` [1], at the histogram `time` [ms]."""

    def __init__(self, time, edges, xi_edges, data):
        super().__init__(data)
        self.time = time
        self.edges = edges
        self.xi_edges = xi_edges


@dataclass
class Tree:
    """A tree-indexed observable: `value` at `time` [ms], in `units`; `parents`, `functions`,
    `projections` describe the tree (docs/output.md). A sampled tree (`sample` < 1) has the
    standard errors of its values in `stderr` (same units), computed from `replicates`
    independent estimates; `stderr` is None when the values are exact."""

    name: str
    time: np.ndarray
    value: np.ndarray
    units: str
    parents: np.ndarray
    functions: list
    projections: str
    stderr: np.ndarray | None = None
    sample: float = 1.0
    replicates: int | None = None


class Results:
    """An output file of `lapicque run` (kind "run") or `lapicque meanfield` (kind
    "meanfield"), read with h5py. Attributes are read when first used.

    Units: times in ms, potentials in mV, rates in Hz, densities in 1/mV (docs/output.md).
    A Results made by `lapicque.run` or `lapicque.meanfield` without `output=` owns a
    temporary directory holding the file, removed when the Results is; `save(path)` copies
    the file out of it.
    """

    def __init__(self, path, *, _keep=None):
        self.path = os.fspath(path)
        self._keep = _keep  # a TemporaryDirectory that must live as long as this object
        with h5py.File(self.path, "r") as f:
            status = _str(f.attrs.get("status", ""))
            if status != "complete":
                raise ValueError(f"{self.path}: not a complete lapicque output "
                                 f"(status = {status!r})")
            fmt = _str(f.attrs.get("format", ""))
            if fmt != "lapicque":
                raise ValueError(f"{self.path}: format = {fmt!r}, expected 'lapicque'")

    def __repr__(self):
        pops = ", ".join(f"{p.name}: {p.size}" for p in self.populations.values())
        return f"<lapicque.Results {self.kind} {self.path!r} ({pops}), t_stop {self.t_stop} ms>"

    def _file(self):
        return h5py.File(self.path, "r")

    def save(self, path) -> str:
        """Copies the file to `path` and reads from there from now on; returns the path."""
        path = os.fspath(path)
        shutil.copyfile(self.path, path)
        self.path = path
        if self._keep is not None:
            self._keep.cleanup()
            self._keep = None
        return path

    # Provenance ------------------------------------------------------------------------

    @cached_property
    def attrs(self) -> dict:
        """The root attributes (provenance): version, commit, config text, seed, n_ranks,
        dt and t_stop [ms], started/finished (UTC, RFC 3339), wall_time [s], status, ..."""
        with self._file() as f:
            return {k: _attr(v) for k, v in f.attrs.items()}

    @property
    def kind(self) -> str:
        """The file's kind: "run" or "meanfield"."""
        return self.attrs.get("kind", "run")

    @cached_property
    def config(self) -> dict:
        """The resolved configuration (every default filled in), parsed with tomllib."""
        return tomllib.loads(self.attrs["config"])

    @property
    def dt(self) -> float:
        """Time step [ms]."""
        return float(self.attrs["dt"])

    @property
    def t_stop(self) -> float:
        """Simulated time [ms]."""
        return float(self.attrs["t_stop"])

    @cached_property
    def populations(self) -> dict[str, Population]:
        """Populations by name, in the order of their gids (the configuration's order)."""
        pops = []
        configured = self.config.get("population", {})
        with self._file() as f:
            for name, g in f["populations"].items():
                size = int(g.attrs["size"])
                rec = configured.get(name, {}).get("record_spikes")
                pops.append(Population(
                    name=name, size=size, gid_start=int(g.attrs["gid_start"]),
                    model=_str(g.attrs["model"]), spike=_str(g.attrs["spike"]),
                    record_spikes=size if rec is None else min(int(rec), size)))
        pops.sort(key=lambda p: p.gid_start)
        return {p.name: p for p in pops}

    # Spikes ----------------------------------------------------------------------------

    def _population(self, pop) -> Population:
        try:
            return self.populations[pop]
        except KeyError:
            raise KeyError(f"no population {pop!r} (have: {', '.join(self.populations)})") from None

    @property
    def has_spikes(self) -> bool:
        with self._file() as f:
            return "spikes" in f

    def spikes(self, pop: str) -> tuple[np.ndarray, np.ndarray]:
        """(node_ids, times): the written spikes of population `pop` as SONATA stores them,
        sorted by node id, then time. node_ids are u64 (gid - gid_start), times f64 [ms]
        (the end of the step in which the neuron crossed threshold). Use
        `np.argsort(times, kind="stable")` for a time-ordered raster."""
        self._population(pop)
        with self._file() as f:
            if "spikes" not in f:
                raise KeyError(f"{self.path} has no spikes ({self.kind} file, or "
                               "output.spikes = false)")
            g = f["spikes"][pop]
            return g["node_ids"][:], g["timestamps"][:]

    def spiketrains(self, pop: str) -> list[np.ndarray]:
        """The spike times [ms] of each recorded neuron of `pop` (node ids 0 ...
        record_spikes - 1; empty arrays for neurons that did not fire), in node-id order."""
        p = self._population(pop)
        ids, times = self.spikes(pop)
        bounds = np.searchsorted(ids, np.arange(p.record_spikes + 1, dtype=ids.dtype))
        return [times[bounds[i]:bounds[i + 1]] for i in range(p.record_spikes)]

    # Observables -----------------------------------------------------------------------

    @cached_property
    def rates(self) -> Rates | None:
        """Population rates [Hz] per bin (`Rates`), or None if not recorded."""
        with self._file() as f:
            if "rates" not in f:
                return None
            g = f["rates"]
            return Rates(time=g["time"][:], bin_width=float(g.attrs["bin_width"]),
                         data={p: g[p][:] for p in self.populations if p in g})

    @cached_property
    def moments(self) -> Moments | None:
        """Population mean [mV] and variance [mV^2] of V over time (`Moments`), or None."""
        with self._file() as f:
            if "moments" not in f:
                return None
            g = f["moments"]
            return Moments(time=g["time"][:],
                           data={p: {"mean": g[p]["mean"][:], "variance": g[p]["variance"][:]}
                                 for p in self.populations if p in g})

    @cached_property
    def histograms(self) -> Histograms | None:
        """The density of V [1/mV] per population over time (`Histograms`), or None."""
        with self._file() as f:
            if "histograms" not in f or "edges" not in f["histograms"]:
                return None
            g = f["histograms"]
            return Histograms(time=g["time"][:], edges=g["edges"][:],
                              data={p: g[p][:] for p in self.populations if p in g})

    @cached_property
    def densities(self) -> Densities | None:
        """The extended density f(t, v, xi) [1/mV] (`Densities`; only with
        `observables.histogram.xi_bins > 1`), or None."""
        with self._file() as f:
            if "densities" not in f:
                return None
            g, h = f["densities"], f["histograms"]
            return Densities(time=h["time"][:], edges=h["edges"][:], xi_edges=g["xi_edges"][:],
                             data={p: g[p][:] for p in self.populations if p in g})

    @cached_property
    def trees(self) -> dict[str, Tree]:
        """Tree-indexed observables by name (empty if none are configured)."""
        out = {}
        with self._file() as f:
            if "trees" not in f:
                return out
            for name, g in f["trees"].items():
                # Units on the value dataset; the tree's definition on its group.
                a, ga = g["value"].attrs, g.attrs
                sampled = "stderr" in g
                out[name] = Tree(name=name, time=g["time"][:], value=g["value"][:],
                                 units=_str(a.get("units", "")),
                                 parents=np.asarray(ga.get("parents", [])),
                                 functions=[_str(x) for x in ga.get("functions", [])],
                                 projections=_str(ga.get("projections", "")),
                                 stderr=g["stderr"][:] if sampled else None,
                                 sample=float(g.attrs["sample"]) if sampled else 1.0,
                                 replicates=int(g.attrs["replicates"]) if sampled else None)
        return out

    @cached_property
    def state(self) -> dict[str, Any]:
        """The final state by gid: `v` [mV], `refractory_steps`, `xi` (N, 2), and where
        present `w`, `lambda`, `beta`, `syn_e`, `syn_i`; `state["time"]` is its time [ms].
        Empty for mean-field files. Per population: `state["v"][results.populations[p].slice]`."""
        out = {}
        with self._file() as f:
            if "state" not in f:
                return out
            g = f["state"]
            for name, d in g.items():
                out[name] = d[:]
            out["time"] = float(g.attrs.get("time", self.t_stop))
        return out

    @cached_property
    def statistics(self) -> dict[str, dict]:
        """Spike statistics per population (`cv_isi`, `cv_neurons`, `fano_factor`, `chi`) and
        their window (`statistics["window"]`: `start`, `stop`, `fano_window` [ms])."""
        out = {}
        with self._file() as f:
            if "statistics" not in f:
                return out
            g = f["statistics"]
            out["window"] = {k: _attr(v) for k, v in g.attrs.items()}
            for p, sub in g.items():
                out[p] = {k: _attr(v) for k, v in sub.attrs.items()}
        return out

    @cached_property
    def limit(self) -> dict[str, Any]:
        """Mean-field files: the `/meanfield` group, its attributes (`solver`, `converged`,
        `cells`, ...) and datasets (`stationary_rate`, `siegert_rate`, ... [Hz], indexed by
        population in gid order); empty for runs."""
        out = {}
        with self._file() as f:
            if "meanfield" not in f:
                return out
            g = f["meanfield"]
            out.update({k: _attr(v) for k, v in g.attrs.items()})
            for name, d in g.items():
                out[name] = d[:]
        return out

    def stationary_rate(self) -> dict[str, float]:
        """Mean-field files: the stationary rate [Hz] of the limit per population."""
        r = self.limit["stationary_rate"]
        return {p: float(r[i]) for i, p in enumerate(self.populations)}

    def dataset(self, path: str) -> np.ndarray:
        """Any dataset of the file by its path (e.g. "balance/E/net", "timers/seconds")."""
        with self._file() as f:
            return f[path][()]

    # Exports (lapicque.export) ---------------------------------------------------------

    def to_neo(self, *, populations=None, spikes: bool = True, rates: bool = True,
               annotations: dict | None = None):
        """A `neo.Block` with one `Segment`: a `neo.SpikeTrain` [ms] per recorded neuron
        (annotated as PyNN does: `source_population`, `source_id` = gid, `source_index` =
        node id; also `population`, `node_id`, `gid`) and, with `rates`, each population's
        rate as an `AnalogSignal` [Hz]. See `lapicque.export.to_neo`."""
        from .export import to_neo

        return to_neo(self, populations=populations, spikes=spikes, rates=rates,
                      annotations=annotations)

    def get_data(self, variables="all", gather=True, clear=False, annotations=None):
        """PyNN's `Population.get_data`: the recorded data as a `neo.Block` (`variables`:
        "all", "spikes", "rates" or a list of them; `gather` and `clear` are accepted for
        compatibility and have no effect: the file holds everything)."""
        if isinstance(variables, str):
            variables = ["spikes", "rates"] if variables == "all" else [variables]
        unknown = set(variables) - {"spikes", "rates"}
        if unknown:
            raise ValueError(f"cannot get {sorted(unknown)}: lapicque records spikes and rates")
        from .export import to_neo

        return to_neo(self, spikes="spikes" in variables, rates="rates" in variables,
                      annotations=annotations)

    def to_nwb(self, path=None, **kwargs):
        """An NWB file (pynwb): spike times [s] of every recorded neuron in the `units` table
        (columns `population`, `node_id`, `gid`), the rates as TimeSeries in the processing
        module "rates". Written to `path` if given; returns the `pynwb.NWBFile`. See
        `lapicque.export.to_nwb`."""
        from .export import to_nwb

        return to_nwb(self, path, **kwargs)


def load(path) -> Results:
    """Opens an output file of `lapicque run` or `lapicque meanfield` (complete files only)."""
    return Results(path)
