#!/usr/bin/python3
"""Side-by-side benchmark of lapicque and NEST on the Brunel network (configs/brunel.toml).

Runs both simulators alternately, `--reps` times each, at 1 core (1 MPI rank vs 1 thread) and
2 cores (2 ranks vs 2 threads), and prints a Markdown table of medians (min-max) with the
NEST / lapicque ratios. Machines are shared and noisy: only ratios from one sitting mean much.

    scripts/bench_brunel.py [--reps 3] [--cores 1 2] [--json results.json]

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
PHASES_SIM = ("update", "exchange", "deliver", "observe")


def run_lapicque(cores, out):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = ["mpirun", "-n", str(cores), "--oversubscribe",
           os.path.join(ROOT, "target/release/lapicque"), "run",
           os.path.join(ROOT, "configs/brunel.toml"), "-o", out]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    with h5py.File(out, "r") as f:
        phases = f["timers/seconds"].attrs["phases"].split(",")
        t = f["timers/seconds"][:]
        col = {p: t[:, i].max() for i, p in enumerate(phases)}
        rate = {p: float(f[f"rates/{p}"][:].mean()) for p in ("E", "I")}
        rss = int(f["timers/peak_memory"][:].sum())
        syn = int(f.attrs["n_synapses"])
    return {"simulator": "lapicque", "cores": cores, "wall_s": wall, "build_s": col["build"],
            "sim_s": sum(col[p] for p in PHASES_SIM), "rss_mib": rss / 2**20,
            "rate_e_hz": rate["E"], "rate_i_hz": rate["I"], "n_synapses": syn}


def run_nest(py, cores, seed):
    cmd = [py, os.path.join(ROOT, "scripts/nest_brunel.py"), "--threads", str(cores), "--seed", str(seed)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t0
    r = json.loads(out.strip().splitlines()[-1])
    return {"simulator": "nest", "cores": cores, "wall_s": wall, "build_s": r["build_s"],
            "sim_s": r["sim_s"], "rss_mib": r["rss_peak_kib"] / 1024,
            "rate_e_hz": r["rate_e_hz"], "rate_i_hz": r["rate_i_hz"], "n_synapses": r["n_synapses"]}


def summary(xs):
    return f"{statistics.median(xs):.4g} ({min(xs):.4g}-{max(xs):.4g})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", help="write every measurement to this file")
    a = ap.parse_args()

    subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)
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
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)

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


if __name__ == "__main__":
    main()
