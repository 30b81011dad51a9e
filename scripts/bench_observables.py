#!/usr/bin/python3
"""Cost of the observables on the Brunel network (configs/brunel.toml, 1 s of model time).

Runs the variants below alternately, `--reps` times each, on `--ranks` MPI ranks, and prints the
median simulation time (update + exchange + wait + deliver + observe, max over ranks, from the
file's timers) with min-max, the slowdown against the bare run and against the shipped
defaults, and the median `observe` phase alone:

- bare: every observable off (rates are always counted);
- default: the shipped configuration (moments every 1 ms, histograms every 10 ms, input
  balance in 1 ms bins, spike statistics);
- all: the defaults plus every other observable at its default schedule: an edge tree and a
  path tree of 3 vertices (every 500 ms, the default), the pair histogram and snapshots of
  every neuron (both switched off by default; here every 500 ms too);
- all at 100 ms: the same with trees, pair histogram and snapshots every 100 ms;
- all at 100 ms, sampled: the same with `sample = 0.1` (4 replicates) on both trees and the
  pair histogram; also prints the median relative standard error (stderr / |value|) of the
  two trees over the samples after t = 0.

    scripts/bench_observables.py [--reps 3] [--ranks 1] [--baseline OTHER_BINARY]

With `--baseline`, every run is followed by the same run of another build (for example one
built from an earlier commit), and a table is printed for each: the `observe` phase above the
shipped defaults is the measure to compare on a noisy host.

Uses Debian's python3 (for h5py).
"""
import argparse
import os
import statistics
import subprocess
import tempfile

import h5py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHASES_SIM = ("update", "exchange", "wait", "deliver", "observe")

BARE = ["observables.moments.every=0", "observables.histogram.every=0",
        "observables.balance.every=0"]
ALL = ['observables.tree.edge.shape="edge"', 'observables.tree.edge.functions=[1, "v"]',
       'observables.tree.path.shape="path"', "observables.tree.path.vertices=3",
       'observables.tree.path.functions=["v", 1, "spike"]',
       "observables.pair_histogram.every=500", "observables.snapshots.every=500"]
ALL_100 = ALL[:-2] + ["observables.tree.edge.every=100", "observables.tree.path.every=100",
                      "observables.pair_histogram.every=100", "observables.snapshots.every=100"]
SAMPLE = 0.1
ALL_100_SAMPLED = ALL_100 + [f"observables.tree.edge.sample={SAMPLE}",
                             f"observables.tree.path.sample={SAMPLE}",
                             f"observables.pair_histogram.sample={SAMPLE}"]
VARIANTS = {"bare": BARE, "default": [], "all": ALL, "all at 100 ms": ALL_100,
            f"all at 100 ms, sampled ({SAMPLE})": ALL_100_SAMPLED}


def run(binary, ranks, out, sets):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = ["mpirun", "-n", str(ranks), "--oversubscribe",
           binary, "run",
           os.path.join(ROOT, "configs/brunel.toml"), "-o", out, "--force", "--create"]
    for s in sets:
        cmd += ["--set", s]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with h5py.File(out, "r") as f:
        ds = f["timers/seconds"]
        phases = ds.attrs["phases"].split(",")
        t = ds[:]
        rel = {}
        for name in ("edge", "path"):
            if "trees" in f and name in f["trees"] and "stderr" in f["trees"][name]:
                g = f["trees"][name]
                v, e = g["value"][1:], g["stderr"][1:]
                rel[name] = statistics.median(abs(e[v != 0] / v[v != 0]))
        sim = max(sum(t[r, phases.index(p)] for p in PHASES_SIM) for r in range(t.shape[0]))
        observe = max(t[r, phases.index("observe")] for r in range(t.shape[0]))
        return sim, observe, rel


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--baseline", help="another build's lapicque binary, run after each run")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--locked", "-q"], cwd=ROOT, check=True)
    builds = {"this build": os.path.join(ROOT, "target/release/lapicque")}
    if args.baseline:
        builds["baseline"] = os.path.abspath(args.baseline)
    times = {(b, k): [] for b in builds for k in VARIANTS}
    observe = {(b, k): [] for b in builds for k in VARIANTS}
    errors = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.reps):
            for name, sets in VARIANTS.items():
                for build, binary in builds.items():
                    out = os.path.join(tmp, f"{name.replace(' ', '_').replace(',', '')}.h5")
                    t, o, rel = run(binary, args.ranks, out, sets)
                    times[(build, name)].append(t)
                    observe[(build, name)].append(o)
                    errors.update({(build, name, k): v for k, v in rel.items()})
    for build in builds:
        base = statistics.median(times[(build, "bare")])
        default = statistics.median(times[(build, "default")])
        print(f"| {build}: variant ({args.ranks} rank(s), {args.reps} reps) | simulation [s] "
              "median (min-max) | slowdown vs bare | vs defaults | observe [s] median |")
        print("|---|---|---|---|---|")
        for name in VARIANTS:
            ts = times[(build, name)]
            m = statistics.median(ts)
            print(f"| {name} | {m:.3f} ({min(ts):.3f}-{max(ts):.3f}) | "
                  f"{100 * (m / base - 1):+.1f}% | {100 * (m / default - 1):+.1f}% | "
                  f"{statistics.median(observe[(build, name)]):.3f} |")
        o_default = statistics.median(observe[(build, "default")])
        for name in VARIANTS:
            extra = statistics.median(observe[(build, name)]) - o_default
            print(f"{build}: {name}: observe above the defaults {extra:+.3f} s "
                  f"({100 * extra / default:+.1f}% of the defaults' simulation time)")
    for (build, name, tree), rel in errors.items():
        print(f"{build}: {name}: tree {tree}: median stderr / |value| {rel:.3f}")


if __name__ == "__main__":
    main()
