#!/usr/bin/python3
"""Convergence of the particle system to its mean-field limit as N grows.

    scripts/convergence.py --config configs/nonexchangeable_escape.toml --dir runs/convergence \\
        [--sizes 1000,2000,4000,8000,16000] [--seeds 3] [--ranks 2] [--t-stop 1000] \\
        [--transient 200] [--set key=value ...] [--bin target/release/lapicque]

Solves the limit once (`lapicque meanfield`), then runs the configuration for every total size
N in --sizes (each population scaled in proportion to its share of the configured network) and
every seed, under `mpirun -n RANKS`. For every run, over the window [transient, t_stop]:

    rate error   |mean particle rate - mean limit rate| / mean limit rate, per population,
                 averaged over populations;
    L1 distance  sum_b |f_N(v_b) - f(v_b)| dv between the time-averaged empirical density of V
                 (/histograms) and the time-averaged limit density, averaged over populations;
    W1 distance  the Wasserstein-1 distance between the same two densities
                 (integral of |F_N - F| dv, F the cumulative distributions) [mV];
    L1 at each time  the L1 distance between the empirical density and the limit density at
                 the same sample time, averaged over the samples: it keeps the O(N^(-1/2))
                 fluctuations of the empirical measure that the time averages above smooth
                 out, while those are dominated by the O(1/K) bias of finite jumps when the
                 in-degree K grows with N.

Writes DIR/convergence.csv (one row per run), DIR/convergence.png (the three distances against N
on log-log axes, the mean over seeds with its spread, and the least-squares slope of
log(distance) on log(N); theory: about -1/2) and prints the slopes. Uses Debian's python3
(h5py, numpy, matplotlib; tomllib).
"""
import argparse
import csv
import os
import subprocess
import sys
import tomllib

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def die(msg):
    sys.exit(f"convergence: error: {msg}")


def run(cmd):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        die(f"{' '.join(cmd)} failed:\n{p.stderr.strip()}")
    return p.stdout


def window_average(f, pop, group, t0):
    """Time average over samples at t >= t0 of /histograms/<pop> (or the rates)."""
    t = f[f"{group}/time"][:]
    data = f[f"{group}/{pop}"][:]
    keep = t >= t0
    if not keep.any():
        die(f"no {group} samples after the transient {t0} ms")
    return data[keep].mean(axis=0)


def distances(particle, limit, pops, t0):
    with h5py.File(particle) as fp, h5py.File(limit) as fl:
        edges = fp["histograms/edges"][:]
        widths = np.diff(edges)
        rate, l1, w1, l1t = [], [], [], []
        for p in pops:
            rp = window_average(fp, p, "rates", t0)
            rl = window_average(fl, p, "rates", t0)
            rate.append(abs(rp - rl) / rl)
            hp = window_average(fp, p, "histograms", t0)
            hl = window_average(fl, p, "histograms", t0)
            l1.append(float(np.sum(np.abs(hp - hl) * widths)))
            cp, cl = np.cumsum(hp * widths), np.cumsum(hl * widths)
            w1.append(float(np.sum(np.abs(cp - cl) * widths)))
            t = fp["histograms/time"][:]
            keep = t >= t0
            per = np.abs(fp[f"histograms/{p}"][:][keep] - fl[f"histograms/{p}"][:][keep])
            l1t.append(float(np.mean(np.sum(per * widths, axis=1))))
        return (float(np.mean(rate)), float(np.mean(l1)), float(np.mean(w1)),
                float(np.mean(l1t)))


def slope(ns, ys):
    x, y = np.log(np.asarray(ns, float)), np.log(np.asarray(ys, float))
    return float(np.polyfit(x, y, 1)[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--sizes", default="1000,2000,4000,8000,16000")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--t-stop", type=float, default=1000.0)
    ap.add_argument("--transient", type=float, default=200.0)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/lapicque"))
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    sizes = [int(s) for s in a.sizes.split(",")]
    base = ["--set", f"simulation.t_stop={a.t_stop}"]
    for s in a.set:
        base += ["--set", s]
    # Population sizes from the resolved configuration.
    resolved = tomllib.loads(run([a.bin, "check", a.config, "--resolved"] + base))
    pops = list(resolved["population"].keys())
    total = sum(p["size"] for p in resolved["population"].values())
    shares = {p: resolved["population"][p]["size"] / total for p in pops}

    limit = os.path.join(a.dir, "limit.h5")
    print(run([a.bin, "meanfield", a.config, "-o", limit, "--force"] + base).strip())
    rows = []
    for n in sizes:
        for seed in range(1, a.seeds + 1):
            out = os.path.join(a.dir, f"n{n}-seed{seed}.h5")
            sets = list(base) + ["--set", f"simulation.seed={seed}", "--set", "output.spikes=false"]
            for p in pops:
                sets += ["--set", f"population.{p}.size={max(1, round(n * shares[p]))}"]
            run(["mpirun", "--oversubscribe", "-n", str(a.ranks), a.bin, "run", a.config,
                 "-o", out, "--force"] + sets)
            rate, l1, w1, l1t = distances(out, limit, pops, a.transient)
            rows.append({"n": n, "seed": seed, "rate_error": rate, "l1": l1, "w1": w1,
                         "l1_each_time": l1t})
            print(f"N = {n:>7} seed {seed}: rate error {rate:.4f}, L1 {l1:.4f}, W1 {w1:.4f} mV, "
                  f"L1 at each time {l1t:.4f}")
    with open(os.path.join(a.dir, "convergence.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for key, label in [("rate_error", "relative rate error"), ("l1", "L1 distance of densities"),
                       ("w1", "W1 distance [mV]"),
                       ("l1_each_time", "L1 at each time, mean over samples")]:
        means = [np.mean([r[key] for r in rows if r["n"] == n]) for n in sizes]
        lo = [np.min([r[key] for r in rows if r["n"] == n]) for n in sizes]
        hi = [np.max([r[key] for r in rows if r["n"] == n]) for n in sizes]
        s = slope(sizes, means)
        ax.errorbar(sizes, means, yerr=[np.subtract(means, lo), np.subtract(hi, means)],
                    marker="o", capsize=3, label=f"{label}: slope {s:.2f}")
        print(f"slope of the {label} against N: {s:.3f}")
    ref = np.array(sizes, float)
    for power, style in [(-0.5, "k--"), (-1.0, "k:")]:
        ax.plot(ref, means[0] * (ref / ref[0]) ** power, style, lw=0.8, label=f"N^({power:g})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N (neurons)")
    ax.set_ylabel("distance to the mean-field limit")
    ax.set_title(os.path.basename(a.config))
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = os.path.join(a.dir, "convergence.png")
    fig.savefig(png, dpi=120)
    print(f"wrote {png} and {os.path.join(a.dir, 'convergence.csv')}")


if __name__ == "__main__":
    main()
