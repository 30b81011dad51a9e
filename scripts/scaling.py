#!/usr/bin/python3
"""Strong- and weak-scaling series of lapicque runs, locally under mpirun or as Slurm jobs.

    scripts/scaling.py run --mode strong|weak --config C --ranks 1,2,4 --dir D \\
        [--slurm [--overcommit] [--no-exclusive] [--sbatch-arg=--time=01:00:00 ...] [--no-wait]] \\
        [--set key=value ...] [--bin PATH]
    scripts/scaling.py collect D

`run` makes one run directory per rank count, D/<mode>-n<ranks>/, holding the resolved
configuration (config.toml), the binary's version (version.txt), the output (output.h5) and,
under Slurm, the job script and log. Strong mode runs the same network on every rank count;
weak mode multiplies every population size by the rank count (sizes are read from the resolved
configuration, after the --set overrides), so the work per rank stays fixed when in-degrees
are fixed (`fixed_indegree`; Bernoulli connectivity grows as N^2).

Without --slurm the runs go one after the other under `mpirun -n R` on this machine
(oversubscribed, with idle ranks yielding, when R exceeds the cores). With --slurm each run is
one job of slurm/run.sbatch (--ntasks=R, --exclusive so that runs do not share nodes; add
--overcommit for more ranks than cores, e.g. on a laptop), then a job of slurm/collect.sbatch
that depends on all of them (afterany) writes the table; the script waits for it unless
--no-wait is given.

`collect` reads D/*/output.h5 and writes D/scaling.csv, one row per complete run: mode, ranks,
neurons, synapses, wall time, every phase of /timers/seconds as the maximum and the mean over
ranks, synaptic events, peak memory (largest rank and sum over ranks), speed-up and parallel
efficiency, and the plots speedup.png, efficiency.png and phases.png (mean time per phase over
ranks, stacked). Within each mode, with p0 the smallest rank count, N the neuron count and T
the wall time:

    speed-up   S(p) = p0 * (N(p) / T(p)) / (N(p0) / T(p0))     (strong: p0 T(p0) / T(p))
    efficiency E(p) = S(p) / p

so that ideal scaling gives S = p and E = 1 in both modes (weak: E = T(p0) / T(p)).

Uses Debian's python3 (h5py, numpy, matplotlib; tomllib from Python 3.11).
"""
import argparse
import csv
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def die(msg):
    sys.exit(f"scaling: error: {msg}")


def physical_cores():
    """Cores as Open MPI counts slots (hardware threads of one core count once)."""
    try:
        out = subprocess.run(["lscpu", "-p=core,socket"], capture_output=True, text=True,
                             check=True).stdout
        cores = {line for line in out.splitlines() if line and not line.startswith("#")}
        if cores:
            return len(cores)
    except (OSError, subprocess.CalledProcessError):
        pass
    return os.cpu_count() or 1


def resolved_config(binary, config, sets):
    out = subprocess.run([binary, "check", config, "--resolved", *sum((["--set", s] for s in sets), [])],
                         capture_output=True, text=True)
    if out.returncode != 0:
        die(f"`lapicque check {config}` failed:\n{out.stderr.strip()}")
    return out.stdout


def run_sets(mode, ranks, base_sets, resolved):
    """The --set overrides of one run: the user's, then weak mode's population sizes."""
    sets = list(base_sets)
    if mode == "weak":
        pops = tomllib.loads(resolved).get("population", {})
        if not pops:
            die("weak mode: the resolved configuration has no [population.*] tables")
        for name, table in pops.items():
            sets.append(f"population.{name}.size={int(table['size']) * ranks}")
    return sets


def env_for_mpi():
    env = dict(os.environ)
    if os.geteuid() == 0:  # Open MPI refuses root unless told that this is intended.
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env


def cmd_run(a):
    binary = os.path.abspath(a.bin)
    if not os.access(binary, os.X_OK):
        die(f"no executable {binary} (build with `cargo build --release` or pass --bin)")
    config = os.path.abspath(a.config)
    if not os.path.isfile(config):
        die(f"no configuration file {config}")
    try:
        ranks = sorted({int(r) for r in a.ranks.split(",") if r.strip()})
    except ValueError:
        die(f"--ranks {a.ranks!r}: expected a comma-separated list of integers")
    if not ranks or ranks[0] < 1:
        die("--ranks: at least one positive rank count")
    top = os.path.abspath(a.dir)
    os.makedirs(top, exist_ok=True)
    base = resolved_config(binary, config, a.set)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()

    runs = []
    for r in ranks:
        run_dir = os.path.join(top, f"{a.mode}-n{r}")
        if os.path.exists(os.path.join(run_dir, "output.h5")):
            die(f"{run_dir}/output.h5 exists: choose another --dir or remove it")
        os.makedirs(run_dir, exist_ok=True)
        sets = run_sets(a.mode, r, a.set, base)
        with open(os.path.join(run_dir, "scaling.json"), "w") as f:
            json.dump({"mode": a.mode, "ranks": r, "config": config, "set": sets}, f, indent=1)
        runs.append((r, run_dir, sets))

    if a.slurm:
        submit(a, binary, config, top, runs)
        return
    cores = physical_cores()
    env = env_for_mpi()
    for r, run_dir, sets in runs:
        out = os.path.join(run_dir, "output.h5")
        set_args = sum((["--set", s] for s in sets), [])
        with open(os.path.join(run_dir, "config.toml"), "w") as f:
            f.write(resolved_config(binary, config, sets + [f"output.path={out}"]))
        with open(os.path.join(run_dir, "version.txt"), "w") as f:
            f.write(version + "\n")
        mpi = ["mpirun", "-n", str(r)]
        if r > cores:
            mpi += ["--oversubscribe", "--mca", "mpi_yield_when_idle", "1"]
        cmd = mpi + [binary, "run", config, "-o", out, *set_args]
        with open(os.path.join(run_dir, "command.txt"), "w") as f:
            f.write(shlex.join(cmd) + "\n")
        print(f"scaling: {a.mode} {r} rank(s): {shlex.join(cmd)}", file=sys.stderr, flush=True)
        with open(os.path.join(run_dir, "run.log"), "w") as log:
            rc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT).returncode
        if rc != 0:
            die(f"the run on {r} rank(s) failed with exit code {rc}: see {run_dir}/run.log")
    collect(top)


def sbatch(args, env):
    out = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        die(f"sbatch {shlex.join(args)} failed:\n{out.stderr.strip()}")
    return out.stdout.strip().split(";")[0]


def submit(a, binary, config, top, runs):
    env = dict(os.environ, LAPICQUE_BIN=binary, LAPICQUE_ROOT=ROOT, LAPICQUE_PYTHON=sys.executable)
    ids = []
    for r, run_dir, sets in runs:
        opts = [f"--job-name=lapicque-{a.mode}-n{r}", f"--ntasks={r}",
                f"--output={run_dir}/job-%j.log"]
        if not a.no_exclusive:
            opts.append("--exclusive")
        if a.overcommit:
            opts.append("--overcommit")
        opts += a.sbatch_arg
        set_args = sum((["--set", s] for s in sets), [])
        job = sbatch(opts + [os.path.join(ROOT, "slurm", "run.sbatch"), config, run_dir, "--", *set_args], env)
        print(f"scaling: {a.mode} {r} rank(s): job {job}, run directory {run_dir}", file=sys.stderr)
        ids.append(job)
    opts = ["--job-name=lapicque-collect", "--ntasks=1", f"--output={top}/collect-%j.log",
            "--dependency=afterany:" + ":".join(ids)]
    opts += [o for o in a.sbatch_arg if re.match(r"--(partition|account|qos|time)\b", o)]
    script = [os.path.join(ROOT, "slurm", "collect.sbatch"), top]
    if a.no_wait:
        job = sbatch(opts + script, env)
        print(f"scaling: collect job {job} writes {top}/scaling.csv when the runs are done",
              file=sys.stderr)
        return
    print(f"scaling: waiting for the collect job (log {top}/collect-*.log)", file=sys.stderr, flush=True)
    rc = subprocess.run(["sbatch", "--wait", *opts, *script], env=env).returncode
    table = os.path.join(top, "scaling.csv")
    if rc != 0 or not os.path.exists(table):
        die(f"the collect job failed (exit code {rc}): see {top}/collect-*.log and the run logs")
    print_table(read_csv(table))


# ----------------------------------------------------------------------------------------------
# collect

def run_info(run_dir, f):
    """Mode and rank count of a run: scaling.json if there is one, else the file itself."""
    meta = {}
    try:
        with open(os.path.join(run_dir, "scaling.json")) as j:
            meta = json.load(j)
    except (OSError, ValueError):
        pass
    mode = meta.get("mode")
    if mode is None:
        m = re.match(r"(strong|weak)-n\d+$", os.path.basename(run_dir))
        mode = m.group(1) if m else "run"
    return mode, int(f.attrs["n_ranks"])


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def read_run(path):
    import h5py
    import numpy as np
    with h5py.File(path, "r") as f:
        status = text(f.attrs.get("status", ""))
        if status != "complete":
            print(f"scaling: skipping {path}: status {status!r}", file=sys.stderr)
            return None
        mode, ranks = run_info(os.path.dirname(path), f)
        t = f["timers/seconds"]
        phases = [p.strip() for p in text(t.attrs["phases"]).split(",")]
        sec = np.asarray(t[...], dtype=float).reshape(ranks, len(phases))
        row = {
            "mode": mode,
            "ranks": ranks,
            "neurons": int(f.attrs["n_neurons"]),
            "synapses": int(f.attrs["n_synapses"]),
            "t_stop_ms": float(f.attrs["t_stop"]),
            "wall_time_s": float(f.attrs["wall_time"]),
        }
        for i, p in enumerate(phases):
            row[f"{p}_max_s"] = float(sec[:, i].max())
            row[f"{p}_mean_s"] = float(sec[:, i].mean())
        row["events"] = int(np.asarray(f["timers/events"][...]).sum())
        mem = np.asarray(f["timers/peak_memory"][...])
        row["peak_memory_max_bytes"] = int(mem.max())
        row["peak_memory_sum_bytes"] = int(mem.sum())
        row["run_dir"] = os.path.basename(os.path.dirname(path))
    return row, phases


def collect(top):
    top = os.path.abspath(top)
    rows, phases = [], []
    for name in sorted(os.listdir(top)):
        path = os.path.join(top, name, "output.h5")
        if os.path.isfile(path):
            got = read_run(path)
            if got:
                rows.append(got[0])
                phases += [p for p in got[1] if p not in phases]
    if not rows:
        die(f"no complete run (*/output.h5 with status = complete) in {top}")
    rows.sort(key=lambda r: (r["mode"], r["ranks"]))
    for mode in {r["mode"] for r in rows}:
        series = [r for r in rows if r["mode"] == mode]
        base = series[0]
        for r in series:
            s = base["ranks"] * (r["neurons"] / r["wall_time_s"]) / (base["neurons"] / base["wall_time_s"])
            r["speedup"] = s
            r["efficiency"] = s / r["ranks"]
    fields = list(rows[0].keys())
    for r in rows:
        fields += [k for k in r if k not in fields]
    fields = [k for k in fields if k not in ("speedup", "efficiency", "run_dir")] + [
        "speedup", "efficiency", "run_dir"]
    table = os.path.join(top, "scaling.csv")
    with open(table, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, restval="")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    plot(top, rows, phases)
    print_table(read_csv(table))
    print(f"scaling: wrote {table} and {top}/{{speedup,efficiency,phases}}.png", file=sys.stderr)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def print_table(rows):
    cols = ["mode", "ranks", "neurons", "synapses", "wall_time_s"]
    cols += [k for k in rows[0] if k.endswith("_max_s")]
    cols += ["events", "peak_memory_max_bytes", "speedup", "efficiency"]
    cols = [c for c in cols if c in rows[0]]
    head = [c.replace("_max_s", " max [s]").replace("_s", " [s]").replace("_bytes", " [B]") for c in cols]
    cells = [[r[c] for c in cols] for r in rows]
    width = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    print("  ".join(h.rjust(n) for h, n in zip(head, width)))
    for c in cells:
        print("  ".join(v.rjust(n) for v, n in zip(c, width)))


def plot(top, rows, phases):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    modes = sorted({r["mode"] for r in rows})
    curves = (("speedup", "speed-up", lambda p: p),
              ("efficiency", "parallel efficiency", lambda p: np.ones_like(p)))
    for key, ylabel, ideal in curves:
        fig, ax = plt.subplots(figsize=(5, 4))
        allp = np.array(sorted({r["ranks"] for r in rows}), dtype=float)
        ax.plot(allp, ideal(allp), "k--", lw=1, label="ideal")
        for mode in modes:
            s = [r for r in rows if r["mode"] == mode]
            ax.plot([r["ranks"] for r in s], [r[key] for r in s], "o-", label=mode)
        ax.set_xscale("log", base=2)
        if key == "speedup":
            ax.set_yscale("log", base=2)
        else:
            ax.set_ylim(0, 1.1 * max(1.0, max(r[key] for r in rows)))
        ax.set_xticks(allp, [str(int(p)) for p in allp])
        ax.set_xlabel("MPI ranks")
        ax.set_ylabel(ylabel)
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(top, f"{key}.png"), dpi=120)
        plt.close(fig)

    fig, axes = plt.subplots(1, len(modes), figsize=(5 * len(modes), 4), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        s = [r for r in rows if r["mode"] == mode]
        x = np.arange(len(s))
        bottom = np.zeros(len(s))
        for p in phases:
            h = np.array([r.get(f"{p}_mean_s", 0.0) for r in s])
            ax.bar(x, h, bottom=bottom, label=p)
            bottom += h
        ax.plot(x, [r["wall_time_s"] for r in s], "k_", ms=30, mew=2,
                label="wall_time (to the end of the simulation)")
        ax.set_xticks(x, [str(r["ranks"]) for r in s])
        ax.set_xlabel("MPI ranks")
        ax.set_ylabel("time [s] (mean over ranks)")
        ax.set_title(f"{mode} scaling")
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(os.path.join(top, "phases.png"), dpi=120)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run or submit a scaling series, then collect it")
    r.add_argument("--mode", choices=["strong", "weak"], required=True)
    r.add_argument("--config", required=True)
    r.add_argument("--ranks", required=True, help="comma-separated rank counts, e.g. 1,2,4")
    r.add_argument("--dir", required=True, help="series directory (one run directory per rank count)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration key in every run")
    r.add_argument("--bin", default=os.environ.get(
        "LAPICQUE_BIN", os.path.join(ROOT, "target", "release", "lapicque")))
    r.add_argument("--slurm", action="store_true",
                   help="submit the runs with sbatch instead of running them here")
    r.add_argument("--overcommit", action="store_true", help="(--slurm) allow more tasks than CPUs")
    r.add_argument("--no-exclusive", action="store_true", help="(--slurm) let runs share nodes")
    r.add_argument("--sbatch-arg", action="append", default=[], metavar="OPTION",
                   help="(--slurm) extra sbatch option for every run, e.g. --sbatch-arg=--time=01:00:00")
    r.add_argument("--no-wait", action="store_true", help="(--slurm) submit and return")
    c = sub.add_parser("collect", help="write DIR/scaling.csv and plots from the runs in DIR")
    c.add_argument("dir")
    a = ap.parse_args()
    if a.cmd == "run":
        cmd_run(a)
    else:
        collect(a.dir)


if __name__ == "__main__":
    main()
