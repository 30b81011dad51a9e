#!/usr/bin/python3
"""Convergence of the particle system to its mean-field limit as N grows, over seeds.

    scripts/convergence.py --config configs/nonexchangeable_escape.toml --dir runs/convergence \\
        [--sizes 1000,2000,4000,8000,16000] [--seeds 3] [--ranks 2] [--t-stop 1000] \\
        [--from 200] [--sparse BETA] [--fixed-coupling] [--no-limit] [--set key=value ...] [--create] \\
        [--bin target/release/lapicque]

Solves the limit of the configuration once (`lapicque meanfield`, with only --t-stop and --set
applied), then runs the configuration for every total size N in --sizes (each population
scaled in proportion to its share of the configured network) and every seed 1..--seeds, under
`mpirun -n RANKS`, and compares each run with the limit by `lapicque compare --from FROM` (so
every distance has the one definition of `src/compare.rs`). Per run, over [FROM, t_stop]:

    rate_error       |mean particle rate - mean limit rate| / mean limit rate
    l1_each_time     L1 distance of the densities of V at each sample, mean over samples
    w1_each_time     Wasserstein-1 distance [mV] at each sample, mean over samples
    l1_of_mean       L1 distance of the time-averaged densities
    w1_of_mean       W1 distance [mV] of the time-averaged densities
    density_l1, density_w1, label_l1, label_w1
                     the same at each sample for f(t, v, xi) and the label densities, where
                     both files have them
(each the mean over populations), and per tree observable the time average of its value.

With --sparse BETA the in-degree grows like K = c N^BETA (0 < BETA < 1: K -> infinity with
K/N -> 0, the regime of the non-exchangeable limit): `bernoulli` probabilities scale as
N^(BETA - 1), fixed in-degrees as N^BETA, from their configured values at the configured N
(weights scaled by 1/K keep the same limit). With --fixed-coupling every aggregate term's total
coupling J n is held at its value at the configured size (alpha = 0 with j0 n^alpha): the
McKean-Vlasov limit n -> infinity at fixed coupling strength, for terms with alpha > 0.

Writes to DIR: `runs.csv` (one row per run and quantity), `summary.csv` (per N and quantity:
mean, standard deviation and count over seeds), `slopes.csv` (least-squares slope of
log(distance) on log(N) over every run, its 95% confidence interval from Student's t, and the
slope theory expects), `trees.csv` (per N and tree: the seed-averaged value, its standard error,
the limit's value and the relative error of the average: the expectation over networks that
the theory speaks of), and `convergence.png`. Configurations without a limit solver (or with
--no-limit) get a finite-size extrapolation instead: per population the mean rate and mean V,
and each tree observable, fitted against N^(-1/2) and against 1/N by weighted least squares
over the seed means; the intercept estimates the limit (`extrapolation.csv`, the PNG).
Uses Debian's python3 (h5py, numpy, matplotlib; tomllib).
"""
import argparse
import csv
import math
import os
import subprocess
import sys
import tomllib
from collections import defaultdict

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom.
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042]

# Distances per run (from compare's CSV) and the slope against N that theory expects for each:
# the empirical measure of N independent-ish particles is O(N^(-1/2)) from its limit at each
# time; time averages smooth those fluctuations, so their slope can be steeper (down to -1,
# where an O(1/K) or O(1/N) bias dominates), which the docs discuss per family.
DISTANCES = {
    "rate_error": -0.5,
    "l1_each_time": -0.5,
    "w1_each_time": -0.5,
    "l1_of_mean": -0.5,
    "w1_of_mean": -0.5,
    "density_l1": -0.5,
    "density_w1": -0.5,
    "label_l1": -0.5,
    "label_w1": -0.5,
}
LABELS = {
    "rate_error": "relative rate error",
    "l1_each_time": "L1 of densities, each time",
    "w1_each_time": "W1 [mV], each time",
    "l1_of_mean": "L1 of time-averaged densities",
    "w1_of_mean": "W1 [mV] of time-averaged densities",
    "density_l1": "L1 of f(v, xi), each time",
    "density_w1": "W1 [mV] of f(v | xi), each time",
    "label_l1": "L1 of label densities",
    "label_w1": "W1 of label densities",
}


def die(msg):
    sys.exit(f"convergence: error: {msg}")


def run(cmd, check=True):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and p.returncode != 0:
        die(f"{' '.join(cmd)} failed:\n{p.stderr.strip()}")
    return p


def fit_slope(ns, ys):
    """Least-squares slope of log(y) on log(N), its 95% confidence interval (nan if < 3 points)."""
    x, y = np.log(np.asarray(ns, float)), np.log(np.asarray(ys, float))
    if len(x) < 2 or np.ptp(x) == 0:
        return math.nan, math.nan, math.nan
    b, a = np.polyfit(x, y, 1)
    dof = len(x) - 2
    if dof < 1:
        return float(b), math.nan, math.nan
    resid = y - (a + b * x)
    se = math.sqrt(float(np.sum(resid ** 2)) / dof / float(np.sum((x - x.mean()) ** 2)))
    t = T975[dof - 1] if dof <= len(T975) else 1.96
    return float(b), float(b - t * se), float(b + t * se)


def weighted_line(x, y, se):
    """Fit y = a + b x with weights 1/se^2; returns a, its standard error, b."""
    x, y, se = (np.asarray(v, float) for v in (x, y, se))
    w = 1.0 / np.maximum(se, 1e-12 * np.maximum(np.abs(y), 1e-300)) ** 2
    A = np.vstack([np.ones_like(x), x]).T
    cov = np.linalg.inv(A.T @ (A * w[:, None]))
    a, b = cov @ (A.T @ (w * y))
    # Scale by the reduced chi^2 when the points scatter more than their errors say.
    dof = len(x) - 2
    chi2 = float(np.sum(w * (y - a - b * x) ** 2)) / dof if dof > 0 else 1.0
    return float(a), float(math.sqrt(cov[0, 0] * max(chi2, 1.0))), float(b)


def read_compare(path):
    """compare's CSV -> {(subject, quantity): [(time, value), ...]}."""
    out = defaultdict(list)
    with open(path) as fh:
        for r in csv.DictReader(fh):
            out[(r["subject"], r["quantity"])].append((float(r["time_ms"]), float(r["value"])))
    return out


def run_distances(series, pops):
    """The per-run distances (means over populations) from compare's series."""
    d = {}

    def per_pop(f):
        vals = [f(p) for p in pops]
        vals = [v for v in vals if v is not None and math.isfinite(v)]
        return float(np.mean(vals)) if vals else None

    def time_mean(q):
        return lambda p: (float(np.mean([v for _, v in series[(p, q)]]))
                          if series.get((p, q)) else None)

    def one(q):
        return lambda p: series[(p, q)][0][1] if series.get((p, q)) else None

    # A relative error is no measure where the limit hardly fires (FitzHugh-Nagumo neurons
    # held below v_th, say): populations whose limit rate is below 1e-3 Hz are left out.
    d["rate_error"] = per_pop(lambda p: abs(one("mean_rate_a")(p) - one("mean_rate_b")(p))
                              / one("mean_rate_b")(p) if one("mean_rate_b")(p) > 1e-3 else None)
    d["l1_each_time"] = per_pop(time_mean("histogram_l1"))
    d["w1_each_time"] = per_pop(time_mean("histogram_w1"))
    d["l1_of_mean"] = per_pop(one("histogram_l1_of_mean"))
    d["w1_of_mean"] = per_pop(one("histogram_w1_of_mean"))
    for q in ("density_l1", "density_w1", "label_l1", "label_w1"):
        d[q] = per_pop(time_mean(q))
    return {k: v for k, v in d.items() if v is not None}


def particle_observables(path, pops, t0):
    """Time averages from t0 of a run's rates [Hz], mean V [mV] and tree values."""
    out = {}
    with h5py.File(path, "r") as f:
        t = f["rates/time"][:]
        for p in pops:
            out[f"rate {p} [Hz]"] = float(f[f"rates/{p}"][:][t >= t0].mean())
        if "moments" in f:
            t = f["moments/time"][:]
            for p in pops:
                out[f"mean V {p} [mV]"] = float(f[f"moments/{p}/mean"][:][t >= t0].mean())
        if "trees" in f:
            for name in f["trees"]:
                t = f[f"trees/{name}/time"][:]
                v = f[f"trees/{name}/value"][:][t >= t0]
                if len(v):
                    out[f"tree {name}"] = float(v.mean())
    return out


def sparse_sets(resolved, total, n, beta):
    """--set overrides giving in-degrees K ~ N^beta from the configured values at `total`."""
    sets = []
    factor = n / total
    for name, proj in resolved.get("projection", {}).items():
        rule = proj.get("rule")
        if rule == "bernoulli":
            p = min(1.0, proj["p"] * factor ** (beta - 1.0))
            sets += ["--set", f"projection.{name}.p={p!r}"]
        elif rule == "fixed_indegree":
            k = max(1, round(proj["indegree"] * factor ** beta))
            sets += ["--set", f"projection.{name}.indegree={k}"]
    return sets


def fixed_coupling_sets(resolved):
    """--set overrides that hold every aggregate term's total coupling J n at its configured
    value as N grows (alpha = 0 with j0 n^alpha): the McKean-Vlasov limit at fixed coupling."""
    sets = []
    sizes = {p: v["size"] for p, v in resolved["population"].items()}
    for name, term in resolved.get("aggregate", {}).items():
        alpha = term.get("alpha", 0.0)
        if alpha != 0.0:
            j0 = term["j0"] * sizes[term["source"]] ** alpha
            sets += ["--set", f"aggregate.{name}.alpha=0.0", "--set", f"aggregate.{name}.j0={j0!r}"]
    return sets


def plot(a, sizes, rows, summary, trees, extrapolation, slopes):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = (1 if rows else 0) + (1 if trees else 0) + (1 if extrapolation else 0)
    fig, axes = plt.subplots(1, max(panels, 1), figsize=(6.2 * max(panels, 1), 4.8),
                             squeeze=False)
    axes = list(axes[0])
    ns = np.array(sizes, float)
    if rows:
        ax = axes.pop(0)
        first = None
        for q in DISTANCES:
            pts = [(n, summary[(n, q)]) for n in sizes if (n, q) in summary]
            if not pts:
                continue
            x = [n for n, _ in pts]
            m = np.array([s[0] for _, s in pts])
            sd = np.array([s[1] for _, s in pts])
            b, lo, hi = slopes[q]
            ax.errorbar(x, m, yerr=sd, marker="o", capsize=3,
                        label=f"{LABELS[q]}: {b:.2f} [{lo:.2f}, {hi:.2f}]")
            first = m[0] if first is None else first
        if first is not None:
            ax.plot(ns, first * (ns / ns[0]) ** -0.5, "k--", lw=0.8, label="N^(-1/2)")
            ax.plot(ns, first * (ns / ns[0]) ** -1.0, "k:", lw=0.8, label="N^(-1)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("N (neurons)")
        ax.set_ylabel("distance to the mean-field limit (mean ± sd over seeds)")
        ax.set_title(f"{os.path.basename(a.config)}: slope [95% CI]", fontsize=10)
        ax.legend(fontsize=7)
    if trees:
        ax = axes.pop(0)
        for name in sorted({t["tree"] for t in trees}):
            pts = [t for t in trees if t["tree"] == name]
            x = [t["n"] for t in pts]
            err = [abs(t["relative_error"]) for t in pts]
            se = [t["se"] / abs(t["limit"]) for t in pts]
            b, lo, hi = fit_slope(x, err) if all(e > 0 for e in err) else (math.nan,) * 3
            ax.errorbar(x, err, yerr=se, marker="s", capsize=3,
                        label=f"tree {name}: slope {b:.2f} [{lo:.2f}, {hi:.2f}]")
        ax.plot(ns, abs(trees[0]["relative_error"]) * (ns / ns[0]) ** -0.5, "k--", lw=0.8,
                label="N^(-1/2)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("N (neurons)")
        ax.set_ylabel("|seed mean - limit| / |limit| (± standard error)")
        ax.set_title("tree observables, averaged over networks", fontsize=10)
        ax.legend(fontsize=7)
    if extrapolation:
        ax = axes.pop(0)
        for e in extrapolation:
            x = np.array(e["x"])
            line, = ax.plot(x, e["y"] / abs(e["a"]), "o")
            xs = np.linspace(0, x.max(), 20)
            ax.plot(xs, (e["a"] + e["b"] * xs) / abs(e["a"]), "-", color=line.get_color(),
                    label=f"{e['name']}: {e['a']:.4g} ± {e['se']:.2g}")
        ax.set_xlabel("N^(-1/2)")
        ax.set_ylabel("observable / extrapolated limit")
        ax.set_title("finite-size extrapolation (intercept: N -> infinity)", fontsize=10)
        ax.legend(fontsize=7)
    fig.tight_layout()
    png = os.path.join(a.dir, "convergence.png")
    fig.savefig(png, dpi=120)
    return png


def write_csv(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.10e}" if isinstance(v, float) else v) for k, v in r.items()})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--sizes", default="1000,2000,4000,8000,16000")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--t-stop", type=float, default=None,
                    help="model time [ms] (default: the configuration's)")
    ap.add_argument("--from", "--transient", dest="t0", type=float, default=0.0,
                    help="start of the compared window [ms] (drop the transient)")
    ap.add_argument("--sparse", type=float, default=None, metavar="BETA",
                    help="in-degrees grow like N^BETA")
    ap.add_argument("--fixed-coupling", action="store_true",
                    help="hold each aggregate term's J n at its configured value as N grows")
    ap.add_argument("--no-limit", action="store_true",
                    help="finite-size extrapolation even when the limit can be solved")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--create", action="store_true",
                    help="let --set define populations, projections, aggregate terms and trees (lapicque's --create)")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/lapicque"))
    a = ap.parse_args()
    if a.sparse is not None and not 0.0 < a.sparse <= 1.0:
        die(f"--sparse {a.sparse}: must be in (0, 1]")
    if a.seeds < 1:
        die(f"--seeds {a.seeds}: must be at least 1")
    os.makedirs(a.dir, exist_ok=True)
    sizes = sorted(int(s) for s in a.sizes.split(","))
    base = [] if a.t_stop is None else ["--set", f"simulation.t_stop={a.t_stop}"]
    for s in a.set:
        base += ["--set", s]
    if a.create:
        base += ["--create"]
    resolved = tomllib.loads(run([a.bin, "check", a.config, "--resolved"] + base).stdout)
    if a.fixed_coupling:
        base += fixed_coupling_sets(resolved)
    pops = list(resolved["population"].keys())
    total = sum(p["size"] for p in resolved["population"].values())
    shares = {p: resolved["population"][p]["size"] / total for p in pops}

    limit = os.path.join(a.dir, "limit.h5")
    have_limit = False
    if not a.no_limit:
        p = run([a.bin, "meanfield", a.config, "-o", limit, "--force"] + base, check=False)
        if p.returncode == 0:
            have_limit = True
            print(p.stdout.strip())
        elif p.returncode == 2 and "no limit equation" in p.stderr:
            print(f"no limit solver: {p.stderr.strip()}\nfinite-size extrapolation instead")
        else:
            die(f"lapicque meanfield failed:\n{p.stderr.strip()}")

    rows, observables = [], defaultdict(list)
    for n in sizes:
        for seed in range(1, a.seeds + 1):
            out = os.path.join(a.dir, f"n{n}-seed{seed}.h5")
            sets = list(base) + ["--set", f"simulation.seed={seed}", "--set", "output.spikes=false",
                                 "--set", "output.final_state=false"]
            for p in pops:
                sets += ["--set", f"population.{p}.size={max(1, round(n * shares[p]))}"]
            if a.sparse is not None:
                sets += sparse_sets(resolved, total, n, a.sparse)
            run(["mpirun", "--oversubscribe", "-n", str(a.ranks), a.bin, "run", a.config,
                 "-o", out, "--force"] + sets)
            for k, v in particle_observables(out, pops, a.t0).items():
                observables[(n, k)].append(v)
            if not have_limit:
                print(f"N = {n:>7} seed {seed}: done")
                continue
            cmp_csv = os.path.join(a.dir, f"n{n}-seed{seed}.csv")
            run([a.bin, "compare", out, limit, "--from", str(a.t0), "-o", cmp_csv])
            series = read_compare(cmp_csv)
            for q, v in run_distances(series, pops).items():
                rows.append({"n": n, "seed": seed, "quantity": q, "value": v})
            for (subject, q), pts in series.items():
                if q == "tree_mean_b":
                    observables[(n, f"limit tree {subject}")] = [pts[0][1]]
            print(f"N = {n:>7} seed {seed}: " + ", ".join(
                f"{r['quantity']} {r['value']:.4g}" for r in rows
                if r["n"] == n and r["seed"] == seed))

    summary, slopes, trees, extrapolation = {}, {}, [], []
    if rows:
        write_csv(os.path.join(a.dir, "runs.csv"), rows)
        out = []
        for q in DISTANCES:
            pts = [(r["n"], r["value"]) for r in rows if r["quantity"] == q]
            if not pts:
                continue
            for n in sizes:
                v = [y for m, y in pts if m == n]
                summary[(n, q)] = (float(np.mean(v)), float(np.std(v)), len(v))
                out.append({"n": n, "quantity": q, "mean": summary[(n, q)][0],
                            "sd": summary[(n, q)][1], "seeds": len(v)})
            ok = [(m, y) for m, y in pts if y > 0]
            slopes[q] = fit_slope([m for m, _ in ok], [y for _, y in ok])
        write_csv(os.path.join(a.dir, "summary.csv"), out)
        write_csv(os.path.join(a.dir, "slopes.csv"), [
            {"quantity": q, "slope": s[0], "ci95_low": s[1], "ci95_high": s[2],
             "expected": DISTANCES[q]} for q, s in slopes.items()])
        for q, (b, lo, hi) in slopes.items():
            print(f"slope of {LABELS[q]} against N: {b:.3f} (95% CI {lo:.3f} .. {hi:.3f}; "
                  f"expected {DISTANCES[q]})")
        names = sorted({k[len("tree "):] for (_, k) in observables if k.startswith("tree ")})
        for name in names:
            for n in sizes:
                v = observables.get((n, f"tree {name}"), [])
                ref = observables.get((n, f"limit tree {name}"))
                if not v or not ref:
                    continue
                m = float(np.mean(v))
                se = float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan
                trees.append({"n": n, "tree": name, "seed_mean": m, "se": se,
                              "limit": ref[0], "relative_error": (m - ref[0]) / ref[0]})
        if trees:
            write_csv(os.path.join(a.dir, "trees.csv"), trees)
            for name in names:
                pts = [t for t in trees if t["tree"] == name]
                b, lo, hi = fit_slope([t["n"] for t in pts],
                                      [abs(t["relative_error"]) for t in pts])
                print(f"slope of the seed-averaged error of tree {name}: {b:.3f} "
                      f"(95% CI {lo:.3f} .. {hi:.3f})")
    else:
        keys = sorted({k for (_, k) in observables})
        table = []
        for k in keys:
            ns = [n for n in sizes if observables.get((n, k))]
            if len(ns) < 3:
                continue
            y = [float(np.mean(observables[(n, k)])) for n in ns]
            se = [float(np.std(observables[(n, k)], ddof=1) / math.sqrt(len(observables[(n, k)])))
                  if len(observables[(n, k)]) > 1 else abs(y[i]) * 1e-3 + 1e-12
                  for i, n in enumerate(ns)]
            for power in (0.5, 1.0):
                x = [n ** -power for n in ns]
                a0, sa, b = weighted_line(x, y, se)
                table.append({"observable": k, "fit": f"a + b N^(-{power:g})", "limit": a0,
                              "limit_se": sa, "b": b})
                print(f"{k}: limit {a0:.6g} ± {sa:.2g} (fit a + b N^(-{power:g}))")
                if power == 0.5:
                    extrapolation.append({"name": k, "x": x, "y": np.array(y), "a": a0,
                                          "se": sa, "b": b})
        if table:
            write_csv(os.path.join(a.dir, "extrapolation.csv"), table)
    png = plot(a, sizes, rows, summary, trees, extrapolation, slopes)
    print(f"wrote {png} and the CSV files in {a.dir}")


if __name__ == "__main__":
    main()
