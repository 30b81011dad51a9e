"""Export of a `Results` to neo (for elephant and PyNN users) and to NWB (pynwb).

neo: one `Block`, one `Segment`, one `SpikeTrain` per recorded neuron, annotated as PyNN's
recorder annotates its spike trains (`source_population`, `source_id`, `source_index`), and
the population rates as `AnalogSignal`s. NWB: the `units` table with spike times in seconds
and the rates as `TimeSeries` in the processing module "rates".
"""

from __future__ import annotations

import datetime
import uuid

import numpy as np

__all__ = ["to_neo", "to_nwb"]


def _started(results) -> datetime.datetime | None:
    """The run's start time (root attribute `started`, UTC, RFC 3339), if present."""
    text = results.attrs.get("started")
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _selected(results, populations):
    if populations is None:
        return list(results.populations.values())
    if isinstance(populations, str):
        populations = [populations]
    return [results._population(p) for p in populations]


def to_neo(results, *, populations=None, spikes: bool = True, rates: bool = True,
           annotations: dict | None = None):
    """A `neo.Block` of `results` (a run or a mean-field file).

    The block has one `Segment` (name "segment000", `rec_datetime` the run's start) holding
    - with `spikes` (runs only): a `neo.SpikeTrain` per recorded neuron of each selected
      population, in population then node-id order, times in ms, `t_start` 0 ms, `t_stop`
      the run's `t_stop`, annotated with `source_population` (population name), `source_id`
      (global id), `source_index` (index within the population), as PyNN does, and the same
      as `population`, `gid`, `node_id`;
    - with `rates`: each selected population's rate as a one-channel `neo.AnalogSignal` in
      Hz, named "rate", `t_start` the first bin's start, `sampling_period` the bin width,
      annotated with `source_population` (and `population`).
    Block annotations follow PyNN's recorder metadata where they apply: `simulator`
    ("lapicque"), `dt` [ms], `mpi_processes`, `label`; for a single population also
    `size`, `first_index`, `last_index`, `first_id`, `last_id`. `annotations` are added.
    """
    import neo
    import quantities as pq

    pops = _selected(results, populations)
    started = _started(results)
    t_stop = results.t_stop * pq.ms
    label = pops[0].name if len(pops) == 1 else "+".join(p.name for p in pops)
    block = neo.Block(name=label, description=f"lapicque {results.kind}: {results.path}",
                      rec_datetime=started)
    meta = {"simulator": "lapicque", "dt": results.dt, "label": label, "kind": results.kind,
            "mpi_processes": int(results.attrs.get("n_ranks", 1)),
            "lapicque_version": results.attrs.get("lapicque_version", "")}
    if len(pops) == 1:
        p = pops[0]
        meta.update(size=p.size, first_index=0, last_index=p.size, first_id=p.gid_start,
                    last_id=p.gid_start + p.size - 1)
    block.annotate(**meta)
    if annotations:
        block.annotate(**annotations)
    segment = neo.Segment(name="segment000", description=block.description,
                          rec_datetime=started)
    block.segments.append(segment)

    if spikes and results.kind == "run" and results.has_spikes:
        for p in pops:
            for node, times in enumerate(results.spiketrains(p.name)):
                gid = p.gid_start + node
                st = neo.SpikeTrain(times, units="ms", t_start=0.0 * pq.ms, t_stop=t_stop,
                                    name=f"{p.name}[{node}]",
                                    source_population=p.name, source_id=gid,
                                    source_index=node, population=p.name, gid=gid,
                                    node_id=node)
                segment.spiketrains.append(st)
    rate_data = results.rates if rates else None
    if rate_data is not None:
        for p in pops:
            if p.name not in rate_data:
                continue
            t0 = float(rate_data.time[0]) if len(rate_data.time) else 0.0
            sig = neo.AnalogSignal(np.asarray(rate_data[p.name])[:, None], units="Hz",
                                   t_start=t0 * pq.ms,
                                   sampling_period=rate_data.bin_width * pq.ms,
                                   name="rate", source_population=p.name, population=p.name,
                                   description="population rate per bin (bin start times)")
            segment.analogsignals.append(sig)
    if hasattr(block, "create_relationship"):
        block.create_relationship()
    return block


def to_nwb(results, path=None, *, populations=None, session_description=None,
           identifier=None, session_start_time=None, moments: bool = False):
    """An NWB file (`pynwb.NWBFile`) of `results`, written to `path` if given.

    - `units` table (runs with spikes): one row per recorded neuron of each selected
      population, `spike_times` in seconds (ms / 1000), columns `population`, `node_id`,
      `gid`;
    - processing module "rates": a `TimeSeries` per population (unit "Hz", `timestamps` the
      bin starts in seconds, the bin width in `description`);
    - with `moments`, processing module "moments": `<pop>_mean` (mV) and `<pop>_variance`
      (mV^2) TimeSeries.
    `session_start_time` defaults to the run's `started` attribute (mean-field files have
    none: then the time of export); `identifier` to a new UUID; the resolved configuration
    goes into `notes`.
    """
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    pops = _selected(results, populations)
    start = session_start_time or _started(results) or datetime.datetime.now(
        datetime.timezone.utc)
    nwb = NWBFile(
        session_description=session_description
        or f"lapicque {results.kind} of {', '.join(p.name for p in pops)}",
        identifier=identifier or str(uuid.uuid4()),
        session_start_time=start,
        source_script="lapicque", source_script_file_name="lapicque",
        notes=results.attrs.get("config", ""),
    )
    if results.kind == "run" and results.has_spikes:
        nwb.add_unit_column(name="population", description="lapicque population name")
        nwb.add_unit_column(name="node_id", description="index within the population "
                            "(SONATA node id, gid - gid_start)")
        nwb.add_unit_column(name="gid", description="global id over all populations")
        for p in pops:
            for node, times in enumerate(results.spiketrains(p.name)):
                nwb.add_unit(spike_times=np.asarray(times, dtype=np.float64) / 1000.0,
                             population=p.name, node_id=node, gid=p.gid_start + node)
    rates = results.rates
    if rates is not None:
        module = nwb.create_processing_module(
            name="rates", description="population rates of lapicque [Hz] per bin of "
            f"{rates.bin_width} ms; timestamps are the bin starts [s]")
        for p in pops:
            if p.name in rates:
                module.add(TimeSeries(name=p.name, data=np.asarray(rates[p.name]), unit="Hz",
                                      timestamps=np.asarray(rates.time) / 1000.0,
                                      description=f"rate of population {p.name}, bin width "
                                      f"{rates.bin_width} ms"))
    m = results.moments if moments else None
    if m is not None:
        module = nwb.create_processing_module(name="moments",
                                              description="population moments of V")
        for p in pops:
            if p.name in m:
                ts = np.asarray(m.time) / 1000.0
                module.add(TimeSeries(name=f"{p.name}_mean", data=m[p.name]["mean"],
                                      unit="mV", timestamps=ts))
                module.add(TimeSeries(name=f"{p.name}_variance", data=m[p.name]["variance"],
                                      unit="mV^2", timestamps=ts))
    if path is not None:
        with NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)
    return nwb
