#!/usr/bin/python3
"""Emulated ranks against real ones: Brunel's network (configs/brunel.toml) on P real ranks, and
each rank r of it emulated alone (lapicque run --emulate-ranks P --as-rank r --emulate-replay,
the other ranks' spikes replayed from the real run, so that both do the same work). Prints,
per P and rank, the peak memory and the update, deliver and observe times of both and their
ratios (emulated / real), and the peak memory of the rank emulated at the limit's rates (no
replay: the replayed spikes themselves, 16 bytes each, are held in memory).

    scripts/emulate_vs_real.py [--ranks 2,3,4] [--t-stop 1000]

On a machine with fewer cores than P the real ranks share cores and their times grow; compare
times at P <= cores, memory at every P.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import h5py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "lapicque")
CONFIG = os.path.join(ROOT, "configs", "brunel.toml")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
PHASES = ("update", "deliver", "observe")


def run(cmd):
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")


def timers(path):
    with h5py.File(path) as f:
        names = f["timers/seconds"].attrs["phases"].split(",")
        rows = [dict(zip(names, row)) for row in f["timers/seconds"][()]]
        for row, mem in zip(rows, f["timers/peak_memory"][()]):
            row["peak_mib"] = mem / 2**20
        return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", default="2,3,4")
    ap.add_argument("--t-stop", type=float, default=1000.0)
    a = ap.parse_args()
    t = ["--set", f"simulation.t_stop={a.t_stop}"]
    print("| P | rank | peak memory real / emulated at the limit's rates / replaying [MiB] | "
          "ratio (limit's rates) | "
          + " | ".join(f"{p} real / emulated [s] | ratio" for p in PHASES) + " |")
    print("|---" * (4 + 2 * len(PHASES)) + "|")
    peak = lambda path: timers(path)[0]["peak_mib"]
    with tempfile.TemporaryDirectory() as tmp:
        for p in [int(x) for x in a.ranks.split(",")]:
            real = os.path.join(tmp, f"real{p}.h5")
            run(["mpirun", "--oversubscribe", "-n", str(p), BIN, "run", CONFIG, "-o", real] + t)
            real_rows = timers(real)
            for r in range(p):
                em = os.path.join(tmp, f"em{p}-{r}.h5")
                run([BIN, "run", CONFIG, "-o", em, "--emulate-ranks", str(p), "--as-rank", str(r),
                     "--emulate-replay", real] + t)
                rates = os.path.join(tmp, f"rates{p}-{r}.h5")
                run([BIN, "run", CONFIG, "-o", rates, "--emulate-ranks", str(p), "--as-rank", str(r)] + t)
                e, x = timers(em)[0], real_rows[r]
                m = peak(rates)
                cells = [f"{x['peak_mib']:.1f} / {m:.1f} / {e['peak_mib']:.1f}", f"{m / x['peak_mib']:.3f}"]
                for ph in PHASES:
                    cells += [f"{x[ph]:.3f} / {e[ph]:.3f}", f"{e[ph] / x[ph]:.2f}"]
                print(f"| {p} | {r} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
