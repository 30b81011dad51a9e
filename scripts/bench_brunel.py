#!/usr/bin/python3
"""Side-by-side benchmark of lapicque and NEST on the Brunel network (configs/brunel.toml).

Runs both simulators alternately, `--reps` times each, at 1 core (1 MPI rank vs 1 thread) and
2 cores (2 ranks vs 2 threads), and prints a Markdown table of medians (min-max) with the
NEST / lapicque ratios. Machines are shared and noisy: only ratios from one sitting mean much.

    scripts/bench_brunel.py [--reps 3] [--cores 1 2] [--json results.json]
    scripts/bench_brunel.py --baseline OLD_BINARY [--reps 5] [--cores 1 2]

With `--baseline`, NEST is left out: this tree's lapicque and another build of it (a copy of
`target/release/lapicque` from an earlier commit) run alternately, and the table gives each
phase's median and the ratio new / baseline, to show that a change did not slow the step loop;
a second table gives both builds' delivery per event against the scatter-add loop, run after
each pair.

Besides time, it reports bytes per synapse (peak memory with the synapses minus peak memory
of the same network without them, over the synapse count) and lapicque's delivery time per
synaptic event against a plain scatter-add loop of the same event count
(`examples/scatter_add.rs`), the bound for delivery on this machine. At c cores the bound is
c such loops running at once, each with one rank's share (N/c targets, runs of K/c targets
per spike, the slowest rank's event count), so that it pays the same sharing of caches and
memory as c ranks do.

Uses Debian's python3 (for h5py); NEST is installed into a venv by scripts/install_nest.sh.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import h5py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHASES_SIM = ("update", "exchange", "wait", "deliver", "observe")


EMPTY = [a for p in ("EE", "EI", "IE", "II") for a in ("--set", f"projection.{p}.indegree=0")]


def run_lapicque(cores, out, extra=(), exe=None):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = ["mpirun", "-n", str(cores), "--oversubscribe",
           exe or os.path.join(ROOT, "target/release/lapicque"), "run",
           os.path.join(ROOT, "configs/brunel.toml"), "-o", out, "--force", *extra]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    with h5py.File(out, "r") as f:
        phases = f["timers/seconds"].attrs["phases"].split(",")
        t = f["timers/seconds"][:]
        col = {p: t[:, i].max() for i, p in enumerate(phases)}
        rate = {p: float(f[f"rates/{p}"][:].mean()) for p in ("E", "I")}
        rss = int(f["timers/peak_memory"][:].sum())
        rss_build = int(f["timers/peak_memory_build"][:].sum())
        syn = int(f.attrs["n_synapses"])
        # Delivery cost per event on the slowest rank.
        deliver_ns = max(t[r, phases.index("deliver")] / max(int(e), 1) * 1e9
                         for r, e in enumerate(f["timers/events"][:]))
        events = int(f["timers/events"][:].max())
    return {"simulator": "lapicque", "cores": cores, "wall_s": wall, "build_s": col["build"],
            **{p: col[p] for p in PHASES_SIM},
            "sim_s": sum(col[p] for p in PHASES_SIM), "rss_mib": rss / 2**20,
            "rss_build_mib": rss_build / 2**20, "rate_e_hz": rate["E"], "rate_i_hz": rate["I"], "n_synapses": syn,
            "deliver_ns_per_event": deliver_ns, "events": events}


def run_nest(py, cores, seed, extra=()):
    cmd = [py, os.path.join(ROOT, "scripts/nest_brunel.py"), "--threads", str(cores), "--seed", str(seed), *extra]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t0
    r = json.loads(out.strip().splitlines()[-1])
    return {"simulator": "nest", "cores": cores, "wall_s": wall, "build_s": r["build_s"],
            "sim_s": r["sim_s"], "rss_mib": r["rss_peak_kib"] / 1024,
            "rss_build_mib": r["rss_build_kib"] / 1024,
            "rate_e_hz": r["rate_e_hz"], "rate_i_hz": r["rate_i_hz"], "n_synapses": r["n_synapses"]}


def scatter_add_bound(cores, events, n_neurons, n_synapses):
    """ns per event of the slowest of `cores` concurrent scatter-add loops, each with one
    rank's share: `events` events into n_neurons/cores targets from a table of
    n_synapses/cores indices in runs of (n_synapses/n_neurons)/cores."""
    exe = os.path.join(ROOT, "target/release/examples/scatter_add")
    args = [str(events), str(n_neurons // cores), str(n_synapses // cores),
            str(n_synapses // n_neurons // cores)]
    procs = [subprocess.Popen([exe, *args], stdout=subprocess.PIPE, text=True) for _ in range(cores)]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        sys.exit("scatter_add failed")
    return max(json.loads(o)["ns_per_event"] for o in outs)


def summary(xs):
    return f"{statistics.median(xs):.4g} ({min(xs):.4g}-{max(xs):.4g})"


def against_baseline(baseline, reps, cores_list):
    """This tree's lapicque against another build, alternately, per phase."""
    keys = ("sim_s", *PHASES_SIM)
    runs = {"new": {}, "baseline": {}}
    bound = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(reps):
            for cores in cores_list:
                for name, exe in (("new", None), ("baseline", baseline)):
                    r = run_lapicque(cores, os.path.join(tmp, "brunel.h5"), exe=exe)
                    runs[name].setdefault(cores, []).append(r)
                last = runs["new"][cores][-1]
                bound.setdefault(cores, []).append(
                    scatter_add_bound(cores, last["events"], 12500, last["n_synapses"]))
                print(f"rep {rep + 1} cores {cores}: new {last['sim_s']:.3f} s, "
                      f"baseline {runs['baseline'][cores][-1]['sim_s']:.3f} s", file=sys.stderr)
    print("| cores | binary | " + " | ".join(f"{k} [s]" for k in keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for cores in cores_list:
        med = {}
        for name in ("new", "baseline"):
            rs = runs[name][cores]
            med[name] = {k: statistics.median(r[k] for r in rs) for k in keys}
            print(f"| {cores} | {name} | " + " | ".join(summary([r[k] for r in rs]) for k in keys) + " |")
        print(f"| {cores} | new / baseline | " + " | ".join(
            f"{med['new'][k] / med['baseline'][k]:.3f}" if med["baseline"][k] > 0 else "-" for k in keys) + " |")
    print()
    print("Delivery per event (slowest rank) against the scatter-add loop of the same events, run after "
          "each pair:")
    print()
    print("| cores | new [ns per event] | baseline [ns per event] | scatter-add [ns per event] | "
          "new / scatter-add | baseline / scatter-add |")
    print("|---|---|---|---|---|---|")
    for cores in cores_list:
        d = {name: statistics.median(r["deliver_ns_per_event"] for r in runs[name][cores])
             for name in ("new", "baseline")}
        b = statistics.median(bound[cores])
        print(f"| {cores} | {summary([r['deliver_ns_per_event'] for r in runs['new'][cores]])} | "
              f"{summary([r['deliver_ns_per_event'] for r in runs['baseline'][cores]])} | "
              f"{summary(bound[cores])} | {d['new'] / b:.3f} | {d['baseline'] / b:.3f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", help="write every measurement to this file")
    ap.add_argument("--baseline", help="compare against this lapicque binary instead of NEST")
    a = ap.parse_args()

    subprocess.run(["cargo", "build", "--release", "--locked", "--bins", "--examples"], cwd=ROOT, check=True)
    if a.baseline:
        against_baseline(a.baseline, a.reps, a.cores)
        return
    py = subprocess.run([os.path.join(ROOT, "scripts/install_nest.sh")], check=True,
                        capture_output=True, text=True).stdout.strip().splitlines()[-1]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.reps):
            for cores in a.cores:
                results.append(run_lapicque(cores, os.path.join(tmp, "brunel.h5")))
                results.append(run_nest(py, cores, seed=rep + 1))
                print(f"rep {rep + 1} cores {cores}: " + ", ".join(
                    f"{r['simulator']} {r['sim_s']:.2f} s" for r in results[-2:]), file=sys.stderr)
        # Memory of the same network without recurrent synapses: the baseline of the
        # bytes-per-synapse figure. Memory is not noisy, so once per core count is enough.
        empty = {}
        for cores in a.cores:
            empty[("lapicque", cores)] = run_lapicque(cores, os.path.join(tmp, "empty.h5"), EMPTY)["rss_build_mib"]
            empty[("nest", cores)] = run_nest(py, cores, 1, ["--no-connect"])["rss_build_mib"]
    # The scatter-add bound at each core count: one loop per core, all at once, each with one
    # rank's share of the targets, synapses and events.
    n_neurons = 12500
    bound = {}
    for cores in a.cores:
        run = next(r for r in results if r["simulator"] == "lapicque" and r["cores"] == cores)
        bound[cores] = scatter_add_bound(cores, run["events"], n_neurons, run["n_synapses"])
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"runs": results, "empty_rss_mib": {f"{k[0]}-{k[1]}": v for k, v in empty.items()},
                       "scatter_add_ns_per_event": bound}, f, indent=1)

    print("| cores | simulator | build [s] | simulate [s] | process wall [s] | peak memory [MiB] | rate E [Hz] | rate I [Hz] |")
    print("|---|---|---|---|---|---|---|---|")
    for cores in a.cores:
        for sim in ("lapicque", "nest"):
            rs = [r for r in results if r["cores"] == cores and r["simulator"] == sim]
            cells = [summary([r[k] for r in rs]) for k in ("build_s", "sim_s", "wall_s", "rss_mib", "rate_e_hz", "rate_i_hz")]
            print(f"| {cores} | {sim} | " + " | ".join(cells) + " |")
    print()
    print("| cores | NEST / lapicque simulate | NEST / lapicque build | NEST / lapicque process wall |")
    print("|---|---|---|---|")
    for cores in a.cores:
        med = {sim: {k: statistics.median(r[k] for r in results if r["cores"] == cores and r["simulator"] == sim)
                     for k in ("sim_s", "build_s", "wall_s")} for sim in ("lapicque", "nest")}
        print(f"| {cores} | {med['nest']['sim_s'] / med['lapicque']['sim_s']:.1f}x | "
              f"{med['nest']['build_s'] / med['lapicque']['build_s']:.1f}x | "
              f"{med['nest']['wall_s'] / med['lapicque']['wall_s']:.1f}x |")
    print()
    print("Memory once the network is built (before simulating), with and without the recurrent synapses:")
    print()
    print("| cores | simulator | memory with synapses [MiB] | without [MiB] | bytes per synapse |")
    print("|---|---|---|---|---|")
    for cores in a.cores:
        for sim in ("lapicque", "nest"):
            rs = [r for r in results if r["cores"] == cores and r["simulator"] == sim]
            full = statistics.median(r["rss_build_mib"] for r in rs)
            per = (full - empty[(sim, cores)]) * 2**20 / rs[0]["n_synapses"]
            print(f"| {cores} | {sim} | {full:.1f} | {empty[(sim, cores)]:.1f} | {per:.2f} |")
    print()
    print("| cores | lapicque delivery [ns per event, slowest rank] | scatter-add bound [ns per event, slowest loop] | bound / lapicque |")
    print("|---|---|---|---|")
    for cores in a.cores:
        d = statistics.median(r["deliver_ns_per_event"] for r in results
                              if r["cores"] == cores and r["simulator"] == "lapicque")
        print(f"| {cores} | {d:.3f} | {bound[cores]:.3f} | {bound[cores] / d:.2f} |")


if __name__ == "__main__":
    main()
