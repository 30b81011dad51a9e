#!/usr/bin/python3
"""Weak-scaling projection from emulated ranks (lapicque run --emulate-ranks, docs/cluster.md).

A Brunel-type network (configs/brunel.toml: 80% E, 20% I, in-degree 8,000 E + 2,000 I, weights
scaled by 1/sqrt(8) from Brunel's J = 0.1 mV) with a fixed share of SHARE neurons per rank is
built and simulated as rank 0 of P ranks, in one process, for each P of --ranks; the other
ranks' spikes are made up at the limit's stationary rates. Each emulated run gives the rank's
peak memory and its time per phase; delivery is reported per synaptic event. Then:

  compute(P) = update + observe per model second (measured at P) + events per model second
               (local synapses x the limit's rate) x delivery time per event (measured at P)
  collective(P) = windows per model second x (alpha ceil(log2 P) + beta (P - 1) m)

with m the bytes a rank sends per window (header, counts and the spikes of its share at the
limit's rate), alpha and beta fitted here (examples/allgather.rs on 2 ranks, shared memory) and
for an InfiniBand cluster from stated figures (--ib-latency, --ib-bandwidth). Between measured
P, compute(P) is interpolated linearly in log P, and the projection stops at the largest P
measured; waiting for slower ranks is not modelled.

    scripts/weak_scaling.py [--share 100000] [--ranks 1,32,1024,16384] [--t-stop 20]
                            [--binary OTHER_BUILD] [--json results.json]

Prints Markdown tables: memory and phases per emulated P, and the projection per P.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import h5py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "lapicque")
ALLGATHER = os.path.join(ROOT, "target", "release", "examples", "allgather")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def network(share, ranks):
    e, i = share * 4 // 5 * ranks, share // 5 * ranks
    j = 0.1 / math.sqrt(8.0)
    sets = {
        "population.E.size": e, "population.I.size": i,
        "population.E.v_init_min": 0.0, "population.E.v_init_max": 20.0,
        "population.I.v_init_min": 0.0, "population.I.v_init_max": 20.0,
        "projection.EE.indegree": 8000, "projection.EI.indegree": 8000,
        "projection.IE.indegree": 2000, "projection.II.indegree": 2000,
        "projection.EE.weight": j, "projection.EI.weight": j,
        "projection.IE.weight": -5 * j, "projection.II.weight": -5 * j,
        "output.final_state": "false", "output.spikes": "false",
    }
    args = []
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    return args


def emulate(share, ranks, t_stop, tmp, binary=BIN):
    out = os.path.join(tmp, f"p{ranks}.h5")
    cmd = [binary, "run", os.path.join(ROOT, "configs", "brunel.toml"), "-o", out, "--force",
           "--set", f"simulation.t_stop={t_stop}", "--emulate-ranks", str(ranks)]
    cmd += network(share, ranks)
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"emulated run at P = {ranks} failed:\n{r.stderr}")
    banner = next(l for l in r.stderr.splitlines() if "emulated" in l)
    with h5py.File(out) as f:
        t = dict(zip(f["timers/seconds"].attrs["phases"].split(","), f["timers/seconds"][0]))
        res = {
            "ranks": ranks,
            "peak_mib": float(f["timers/peak_memory"][0]) / 2**20,
            "synapses": int(f.attrs["n_synapses"]),
            "events": int(f["timers/events"][0]),
            "t_stop": t_stop,
            **{k: float(v) for k, v in t.items()},
        }
    os.remove(out)
    # The rate of the made-up spikes (the limit's), from the banner: "E 15.519 Hz".
    res["rate_hz"] = float(banner.split("at E ")[1].split(" Hz")[0])
    return res


def allgather_fit():
    """alpha [s] and beta [s/byte] of the all-gather on 2 ranks here (least squares on sizes
    of 4 KiB and more for beta, the empty message for alpha)."""
    r = subprocess.run(["mpirun", "-n", "2", ALLGATHER], env=ENV, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"examples/allgather failed (cargo build --release --example allgather):\n{r.stderr}")
    pts = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    alpha = min(p["seconds"] for p in pts if p["words"] <= 4)
    big = [p for p in pts if p["words"] * 4 >= 4096]
    # Bytes received per rank: (P - 1) m with P = 2.
    xs = [4 * p["words"] for p in big]
    ys = [p["seconds"] - alpha for p in big]
    beta = sum(x * y for x, y in zip(xs, ys)) / sum(x * x for x in xs)
    return alpha, beta, pts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--share", type=int, default=100_000)
    ap.add_argument("--ranks", default="1,32,1024,16384")
    ap.add_argument("--t-stop", type=float, default=20.0, help="model time per emulated run [ms]")
    ap.add_argument("--ib-latency", type=float, default=2e-6,
                    help="[s] per step of the all-gather's log2 P stages (default 2 us)")
    ap.add_argument("--ib-bandwidth", type=float, default=12.5e9,
                    help="[bytes/s] per rank (default 12.5 GB/s: a 100 Gb/s HDR100 port)")
    ap.add_argument("--binary", default=BIN, help="the lapicque to emulate with")
    ap.add_argument("--json")
    a = ap.parse_args()
    ranks = [int(x) for x in a.ranks.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        runs = [emulate(a.share, p, a.t_stop, tmp, a.binary) for p in ranks]
    alpha, beta, pts = allgather_fit()

    print(f"Emulated rank 0, share {a.share} neurons x 10,000 synapses, {a.t_stop} ms each:\n")
    print("| P | neurons | peak memory [MiB] | vs P = 1 | bytes per local synapse | build [s] "
          "| update [s] | deliver [s] | ns per event | events |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    base = runs[0]["peak_mib"]
    for r in runs:
        ns = 1e9 * r["deliver"] / r["events"] if r["events"] else float("nan")
        r["ns_per_event"] = ns
        print(f"| {r['ranks']} | {a.share * r['ranks']:,} | {r['peak_mib']:.1f} | "
              f"{r['peak_mib'] / base:.3f} | {r['peak_mib'] * 2**20 / r['synapses']:.2f} | "
              f"{r['build']:.1f} | {r['update']:.3f} | {r['deliver']:.3f} | {ns:.2f} | {r['events']:,} |")

    rate = runs[-1]["rate_hz"]
    dt, window = 0.1, 15  # [ms], steps (the smallest delay, 1.5 ms)
    steps = 1000.0 / dt
    windows = steps / window
    spikes = a.share * rate * window * dt / 1000.0
    m = 4 * (4 + window + spikes)
    synapses = a.share * 10_000

    def compute(p):
        # Interpolated in log P between the measured points (the last beyond them).
        pts_ = sorted((r["ranks"], r) for r in runs)
        def per_model_s(r):
            scale = 1000.0 / r["t_stop"]
            return (r["update"] + r["observe"]) * scale + synapses * rate * r["ns_per_event"] * 1e-9
        if p <= pts_[0][0]:
            return per_model_s(pts_[0][1])
        for (p0, r0), (p1, r1) in zip(pts_, pts_[1:]):
            if p <= p1:
                w = (math.log(p) - math.log(p0)) / (math.log(p1) - math.log(p0))
                return (1 - w) * per_model_s(r0) + w * per_model_s(r1)
        return per_model_s(pts_[-1][1])

    def collective(p, alpha_, beta_):
        if p == 1:
            return 0.0
        return windows * (alpha_ * math.ceil(math.log2(p)) + beta_ * (p - 1) * m)

    print(f"\nCollective model: m = {m:.0f} bytes per rank per window ({spikes:.0f} spikes at "
          f"{rate:.2f} Hz), {windows:.0f} windows per model second; here alpha = "
          f"{alpha * 1e6:.2f} us, beta = {beta * 1e9:.3f} ns/byte (shared memory, 2 ranks); "
          f"InfiniBand alpha = {a.ib_latency * 1e6:.1f} us per stage, "
          f"beta = {1e9 / a.ib_bandwidth:.3f} ns/byte.\n")
    print("| P | compute [s per model s] | all-gather, IB [s per model s] | projected wall "
          "[s per model s] | efficiency | all-gather share |")
    print("|---|---|---|---|---|---|")
    t1 = compute(1)
    proj = []
    # Only up to the largest P measured: beyond it compute(P) would be a guess.
    largest = max(ranks)
    for k in range(0, 15):
        p = 2 ** k
        if p > largest:
            break
        c = compute(p)
        g = collective(p, a.ib_latency, 1.0 / a.ib_bandwidth)
        wall = c + g
        proj.append({"ranks": p, "compute": c, "collective": g, "wall": wall, "efficiency": t1 / wall})
        print(f"| {p} | {c:.2f} | {g:.3f} | {wall:.2f} | {t1 / wall:.2f} | {g / wall:.3f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"runs": runs, "allgather": pts, "alpha": alpha, "beta": beta,
                       "projection": proj}, f, indent=1)


if __name__ == "__main__":
    main()
