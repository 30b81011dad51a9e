"""Running the `lapicque` binary: finding it, writing configurations, turning overrides into
`--set` arguments, and raising `LapicqueError` on failure."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import tomllib
from pathlib import Path
from typing import Any, Mapping

import tomli_w

__all__ = ["LapicqueError", "find_binary", "run", "meanfield", "check", "toml_value",
           "set_arguments"]


class LapicqueError(RuntimeError):
    """`lapicque` (or `mpirun`) exited with a non-zero code.

    `message` is the one line lapicque printed on stderr (`lapicque: error: KEY = VALUE:
    reason`), `returncode` its exit code (2 bad input, 3 diverging dynamics, 4 stopped by a
    signal after writing a checkpoint, 1 failed write; `docs/faults.md`), `stderr` all it
    printed there and `command` the command line.
    """

    def __init__(self, message: str, returncode: int, stderr: str = "", command=()):
        super().__init__(f"{message} (exit code {returncode})")
        self.message = message
        self.returncode = returncode
        self.stderr = stderr
        self.command = list(command)


def find_binary() -> str:
    """The `lapicque` executable: `$LAPICQUE_BIN`, else `target/release/lapicque` of the
    repository this package lies in, else `lapicque` on `PATH`."""
    env = os.environ.get("LAPICQUE_BIN")
    if env:
        return env
    repo = Path(__file__).resolve().parents[2]
    built = repo / "target" / "release" / "lapicque"
    if built.is_file() and os.access(built, os.X_OK):
        return str(built)
    found = shutil.which("lapicque")
    if found:
        return found
    raise LapicqueError(
        "no lapicque binary: set LAPICQUE_BIN, build it with `cargo build --release` in the "
        "repository, or put lapicque on PATH", 127)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays, tuples and paths as the plain Python values TOML has."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def toml_value(value: Any) -> str:
    """`value` as a TOML value for `--set key=VALUE`: `true`, `800`, `5.0`, `"E"`,
    `[1, 2]`, `inf`. Strings are always quoted, so `"= -g * J"` stays an expression."""
    value = _plain(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    text = tomli_w.dumps({"v": value})
    assert text.startswith("v = ")
    return text[4:].strip()


def set_arguments(overrides: Mapping[str, Any] | None) -> list[str]:
    """`{"population.E.size": 800, "parameters": {"g": 5}}` as
    `["--set", "population.E.size=800", "--set", "parameters.g=5"]` (nested dicts become
    dotted keys)."""
    args: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            args.extend(["--set", f"{prefix}={toml_value(value)}"])

    for key, value in (overrides or {}).items():
        walk(str(key), value)
    return args


def _resolve_relative_paths(config: dict, base: Path) -> dict:
    """Edge files of `rule = "file"` projections and spike files of replay stimuli are
    relative to the configuration file; a dict has none, so its relative paths are made
    absolute against `base`."""
    for section, keys in (("projection", ("file", "edge_types")), ("stimulus", ("file",))):
        for entry in (config.get(section) or {}).values():
            if isinstance(entry, dict):
                for key in keys:
                    f = entry.get(key)
                    if isinstance(f, str) and not os.path.isabs(f):
                        entry[key] = str(base / f)
    return config


class _Config:
    """A configuration argument as a file path: a path as it is, a dict written as TOML into
    a temporary directory (removed by `close`)."""

    def __init__(self, config, base_dir=None):
        self._tmp = None
        if isinstance(config, Mapping):
            data = _resolve_relative_paths(_plain(dict(config)),
                                           Path(base_dir or os.getcwd()).resolve())
            self._tmp = tempfile.TemporaryDirectory(prefix="lapicque-config-")
            self.path = os.path.join(self._tmp.name, "config.toml")
            with open(self.path, "wb") as f:
                tomli_w.dump(data, f)
        else:
            self.path = os.fspath(config)
            if not os.path.isfile(self.path):
                raise FileNotFoundError(f"no configuration file {self.path}")

    def close(self):
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _environment() -> dict:
    env = dict(os.environ)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Open MPI refuses to start as root unless told that this is intended (as
        # scripts/setup.sh does).
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def _error_line(stderr: str) -> str:
    lines = [l.strip() for l in stderr.splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith("lapicque: error:")]
    if errors:
        return errors[0]
    return lines[-1] if lines else "lapicque failed without a message"


def _execute(command: list[str], quiet: bool, timeout: float | None) -> subprocess.CompletedProcess:
    """Runs `command`; with `quiet=False` its output is passed through as it comes (and kept)."""
    env = _environment()
    if quiet:
        done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)
    else:
        proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                bufsize=1)
        kept = {"out": [], "err": []}

        def pump(stream, sink, key):
            for line in stream:
                kept[key].append(line)
                sink.write(line)
                sink.flush()

        threads = [threading.Thread(target=pump, args=(proc.stdout, sys.stdout, "out")),
                   threading.Thread(target=pump, args=(proc.stderr, sys.stderr, "err"))]
        for t in threads:
            t.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        finally:
            for t in threads:
                t.join()
        done = subprocess.CompletedProcess(command, code, "".join(kept["out"]),
                                           "".join(kept["err"]))
    if done.returncode != 0:
        raise LapicqueError(_error_line(done.stderr), done.returncode, done.stderr, command)
    return done


def _output_path(output, name):
    """(path, temporary directory or None): a given path, or a file in a new temporary
    directory that the returned Results keeps alive."""
    if output is not None:
        return os.fspath(output), None
    tmp = tempfile.TemporaryDirectory(prefix="lapicque-")
    return os.path.join(tmp.name, name), tmp


def run(config, *, ranks: int = 1, overrides=None, output=None, create: bool = False,
        force: bool = True, quiet: bool = True, base_dir=None, mpirun: str | None = None,
        mpirun_args=(), timeout: float | None = None):
    """Runs `lapicque run` on `ranks` MPI ranks (through `mpirun`) and returns its `Results`.

    config: path of a TOML file, or a dict nested like the file (`{"simulation": {"t_stop":
        200.0}, "population": {"E": {...}}, ...}`); relative edge-file paths in a dict are
        taken relative to `base_dir` (default: the current directory).
    overrides: `{"population.E.size": 800, "parameters.g": 5}`, each passed as `--set
        key=value` (values rendered as TOML: booleans, numbers, quoted strings, lists).
    output: the output file; default a file in a temporary directory that lives as long as
        the returned Results (use `Results.save` to keep it).
    create: let overrides define populations, projections, ... the configuration lacks.
    force: replace an existing output file (default True).
    quiet: capture lapicque's progress output instead of passing it through.
    mpirun: the launcher (default `$LAPICQUE_MPIRUN`, else `mpirun` on PATH); mpirun_args
        are added to its arguments (each run gets its own `--mca orte_tmpdir_base`).

    Raises LapicqueError (with lapicque's one-line message and exit code) on failure.
    Units of everything returned: ms, mV, Hz (docs/output.md).
    """
    if int(ranks) < 1:
        raise ValueError(f"ranks = {ranks}: must be at least 1")

    def produce(out):
        with _Config(config, base_dir) as cfg, \
                tempfile.TemporaryDirectory(prefix="lapicque-mpi-") as mpi_tmp:
            launcher = mpirun or os.environ.get("LAPICQUE_MPIRUN") or "mpirun"
            command = [launcher, "-n", str(int(ranks)), "--oversubscribe",
                       "--mca", "orte_tmpdir_base", mpi_tmp, *mpirun_args,
                       find_binary(), "run", cfg.path, "-o", out, *set_arguments(overrides),
                       *_flags(create, force)]
            _execute(command, quiet, timeout)

    return _written(output, "run.h5", produce)


def _flags(create: bool, force: bool) -> list:
    """`--create` and `--force` as asked."""
    return (["--create"] if create else []) + (["--force"] if force else [])


def _written(output, name: str, produce):
    """Calls `produce(path)` to write an output at `output` (or at `name` in a temporary
    directory that lives as long as the returned `Results`, and is removed on failure)."""
    from .results import Results

    out, out_tmp = _output_path(output, name)
    try:
        produce(out)
    except BaseException:
        if out_tmp is not None:
            out_tmp.cleanup()
        raise
    return Results(out, _keep=out_tmp)


def meanfield(config, *, overrides=None, output=None, create: bool = False, force: bool = True,
              quiet: bool = True, base_dir=None, timeout: float | None = None):
    """Solves the mean-field limit of a configuration (`lapicque meanfield`, one process) and
    returns its `Results` (kind "meanfield": the run's layout, without spikes and state).
    Arguments as in `run`."""

    def produce(out):
        with _Config(config, base_dir) as cfg:
            command = [find_binary(), "meanfield", cfg.path, "-o", out,
                       *set_arguments(overrides), *_flags(create, force)]
            _execute(command, quiet, timeout)

    return _written(output, "meanfield.h5", produce)


def check(config, *, overrides=None, create: bool = False, base_dir=None) -> dict:
    """The resolved configuration (`lapicque check --resolved`: every default filled in,
    expressions evaluated) as a dict; raises LapicqueError on invalid input."""
    with _Config(config, base_dir) as cfg:
        command = [find_binary(), "check", cfg.path, "--resolved", *set_arguments(overrides),
                   *_flags(create, False)]
        done = _execute(command, True, None)
    return tomllib.loads(done.stdout)
