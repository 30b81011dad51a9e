"""Shared helpers: the repository, and the command line run directly (not through the
package), so that the package's results are checked against the files the CLI writes."""

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"


def binary() -> str:
    return os.environ.get("LAPICQUE_BIN") or str(ROOT / "target" / "release" / "lapicque")


def environment() -> dict:
    env = dict(os.environ)
    if os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def cli(*args, ranks=None) -> subprocess.CompletedProcess:
    """`lapicque ARGS` (under `mpirun -n RANKS` with its own session directory if given)."""
    command = [binary(), *map(str, args)]
    with tempfile.TemporaryDirectory() as mpi_tmp:
        if ranks is not None:
            command = ["mpirun", "-n", str(ranks), "--oversubscribe", "--mca",
                       "orte_tmpdir_base", mpi_tmp, *command]
        return subprocess.run(command, env=environment(), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)


def cli_ok(*args, ranks=None) -> subprocess.CompletedProcess:
    done = cli(*args, ranks=ranks)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="session")
def smoke_cli(tmp_path_factory) -> Path:
    """configs/smoke.toml shortened to 200 ms, run by the CLI on 2 ranks."""
    out = tmp_path_factory.mktemp("cli") / "smoke.h5"
    cli_ok("run", CONFIGS / "smoke.toml", "-o", out, "--set", "simulation.t_stop=200",
           ranks=2)
    return out
