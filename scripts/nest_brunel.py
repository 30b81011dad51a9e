#!/usr/bin/env python3
"""NEST reference run of the Brunel (2000) balanced network with delta synapses.

Builds the same network as NEST's own example `brunel_delta_nest.py`
(NEST 3.10) so lapicque can be compared against it, and prints ONE line of
JSON on stdout with timings, memory, synapse count and population rates.

Defaults equal the NEST example: order 2500 (NE=10000, NI=2500),
epsilon 0.1, J 0.1 mV, g 5, eta 2, delay 1.5 ms, dt 0.1 ms, 1000 ms.
What differs on purpose: spikes of *all* neurons are recorded (the example
records 50 per population) to get population rates, nothing is written to
disk or plotted, and the RNG seed is explicit.

Run with the venv made by scripts/install_nest.sh:
    "$(scripts/install_nest.sh | tail -n 1)" scripts/nest_brunel.py --threads 2
"""
import argparse
import json
import os
import resource
import sys
import time

# Must be set before `import nest`, or NEST prints its banner.
os.environ.setdefault("PYNEST_QUIET", "1")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="NEST local_num_threads")
    p.add_argument("--seed", type=int, default=1, help="NEST rng_seed")
    p.add_argument("--simtime", type=float, default=1000.0, help="simulated time (ms)")
    p.add_argument("--dt", type=float, default=0.1, help="resolution (ms)")
    p.add_argument("--order", type=int, default=2500, help="NE = 4*order, NI = order")
    p.add_argument("--epsilon", type=float, default=0.1, help="connection probability")
    p.add_argument("--J", type=float, default=0.1, help="excitatory PSP amplitude (mV)")
    p.add_argument("--g", type=float, default=5.0, help="inhibitory/excitatory weight ratio")
    p.add_argument("--eta", type=float, default=2.0, help="external rate / threshold rate")
    p.add_argument("--delay", type=float, default=1.5, help="synaptic delay (ms)")
    p.add_argument(
        "--no-connect",
        action="store_true",
        help="skip the recurrent synapses (the empty network whose memory is the baseline "
        "of the bytes-per-synapse figure)",
    )
    p.add_argument(
        "--record-all",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="record every neuron (default); --no-record-all records the first "
        "50 of each population, as NEST's example does",
    )
    return p.parse_args()


def peak_rss_kib():
    # ru_maxrss is the high-water mark of the process, in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main():
    a = parse_args()

    # NEST's C++ kernel may write to fd 1 directly; point fd 1 at stderr while
    # NEST runs so that stdout carries nothing but the final JSON line.
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    import nest

    # Only errors from NEST's logger; 3.10 deprecates set_verbosity (it warns).
    if hasattr(nest, "VerbosityLevel"):
        nest.verbosity = nest.VerbosityLevel.ERROR
    else:
        nest.set_verbosity("M_ERROR")
    nest.ResetKernel()
    nest.SetKernelStatus(
        {"local_num_threads": a.threads, "resolution": a.dt, "rng_seed": a.seed, "print_time": False}
    )

    # Network size and in-degrees, as in the NEST example.
    NE, NI = 4 * a.order, a.order
    CE, CI = int(a.epsilon * NE), int(a.epsilon * NI)

    # Neuron parameters of the example; everything else keeps iaf_psc_delta's
    # defaults (notably refractory_input=False: input arriving during the
    # refractory period is dropped, and V_min is unbounded).
    tau_m, theta = 20.0, 20.0
    neuron = {"C_m": 1.0, "tau_m": tau_m, "t_ref": 2.0, "E_L": 0.0,
              "V_reset": 0.0, "V_m": 0.0, "V_th": theta}

    # External drive: rate at which CE Poisson inputs of weight J alone would
    # bring the mean potential to threshold, times eta, summed over CE inputs.
    nu_th = theta / (a.J * CE * tau_m)  # per input, in spikes/ms
    p_rate = 1000.0 * a.eta * nu_th * CE  # in Hz

    t0 = time.perf_counter()
    exc = nest.Create("iaf_psc_delta", NE, params=neuron)
    inh = nest.Create("iaf_psc_delta", NI, params=neuron)
    # One poisson_generator sends an independent train to each target.
    noise = nest.Create("poisson_generator", params={"rate": p_rate})
    rec_e = nest.Create("spike_recorder")
    rec_i = nest.Create("spike_recorder")

    nest.CopyModel("static_synapse", "excitatory", {"weight": a.J, "delay": a.delay})
    nest.CopyModel("static_synapse", "inhibitory", {"weight": -a.g * a.J, "delay": a.delay})

    n_rec_e, n_rec_i = (NE, NI) if a.record_all else (min(50, NE), min(50, NI))
    nest.Connect(noise, exc + inh, syn_spec="excitatory")
    nest.Connect(exc[:n_rec_e], rec_e)
    nest.Connect(inh[:n_rec_i], rec_i)

    # Count only recurrent synapses (the number lapicque builds), not the
    # poisson->neuron and neuron->recorder device connections.
    n_device = nest.GetKernelStatus("num_connections")
    # fixed_indegree with NEST's defaults: autapses and multapses allowed.
    if not a.no_connect:
        nest.Connect(exc, exc + inh, {"rule": "fixed_indegree", "indegree": CE}, "excitatory")
        nest.Connect(inh, exc + inh, {"rule": "fixed_indegree", "indegree": CI}, "inhibitory")
    n_synapses = nest.GetKernelStatus("num_connections") - n_device
    build_s = time.perf_counter() - t0
    rss_build = peak_rss_kib()

    t0 = time.perf_counter()
    nest.Simulate(a.simtime)
    sim_s = time.perf_counter() - t0
    rss_peak = peak_rss_kib()

    seconds = a.simtime / 1000.0
    result = {
        "simulator": f"nest-{nest.__version__}",
        "threads": a.threads,
        "seed": a.seed,
        "n_neurons": NE + NI,
        "n_synapses": n_synapses,
        "build_s": round(build_s, 3),
        "sim_s": round(sim_s, 3),
        "rss_build_kib": rss_build,
        "rss_peak_kib": rss_peak,
        "rate_e_hz": round(rec_e.n_events / (n_rec_e * seconds), 4),
        "rate_i_hz": round(rec_i.n_events / (n_rec_i * seconds), 4),
    }
    json_out.write(json.dumps(result) + "\n")
    json_out.flush()


if __name__ == "__main__":
    sys.exit(main())
