#!/usr/bin/env bash
# Installs what lapicque needs on Debian 12 when it is missing (Open MPI, parallel HDF5,
# libclang and pkg-config for the HDF5 bindings, Debian's h5py and matplotlib for the
# plotting scripts, Slurm and munge for the one-node cluster of scripts/local_slurm.sh on
# which tests/slurm.rs runs the batch scripts, neo, quantities, pytest and pynwb's
# dependencies for the Python interface), then builds the release binary and sets up the
# Python interface in .venv (Debian's python3 with its packages, plus pynwb and hdmf from
# PyPI at pinned versions, plus python/ installed editable). Safe to run again: it installs
# nothing that is already there. Sourced by demo.sh and test.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PACKAGES=(openmpi-bin libopenmpi-dev libhdf5-openmpi-dev libclang-dev pkg-config
          python3-h5py python3-matplotlib python3-numpy slurm-wlm munge
          python3-venv python3-pytest python3-tomli-w python3-neo python3-quantities
          python3-pandas python3-jsonschema python3-ruamel.yaml python3-dateutil)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    if [[ $(id -u) -eq 0 ]]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else
        echo "setup: error: need root or sudo to install ${missing[*]}" >&2; exit 1; fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq
    "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
    [[ -x "$HOME/.cargo/bin/cargo" ]] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null; then
    echo "setup: error: no Rust toolchain (cargo) found; install Rust >= 1.89 (rustup) first" >&2
    exit 1
fi

# Open MPI refuses to start as root unless told that this is intended.
if [[ $(id -u) -eq 0 ]]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

cd "$ROOT"
cargo build --release --locked

# The Python interface (docs/python.md): a virtual environment on Debian's python3 that sees
# its packages (numpy 1.24, h5py 3.7, neo, quantities, pytest), with pynwb and hdmf from PyPI.
# They are installed without dependencies: every requirement they declare is met by the
# Debian packages above (Debian registers h5py under another name, so pip would otherwise
# install a second h5py and numpy over Debian's).
PYNWB_VERSION=3.0.0
HDMF_VERSION=4.3.1
VENV="$ROOT/.venv"
venv_ready() {
    [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" - "$ROOT" "$PYNWB_VERSION" "$HDMF_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
from pathlib import Path
import lapicque
root, pynwb, hdmf = sys.argv[1:]
assert version("pynwb") == pynwb and version("hdmf") == hdmf
assert Path(lapicque.__file__).resolve() == Path(root, "python", "lapicque", "__init__.py").resolve()
PY
}
if ! venv_ready; then
    echo "setup: setting up the Python interface in .venv" >&2
    # (Re)create it unless it is one on Debian's python3 that sees Debian's packages.
    if ! grep -qx "home = /usr/bin" "$VENV/pyvenv.cfg" 2>/dev/null ||
       ! grep -qx "include-system-site-packages = true" "$VENV/pyvenv.cfg"; then
        /usr/bin/python3 -m venv --clear --system-site-packages "$VENV"
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
        "pynwb==$PYNWB_VERSION" "hdmf==$HDMF_VERSION"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
        --no-build-isolation -e "$ROOT/python"
    venv_ready || { echo "setup: error: the Python interface in .venv does not import" >&2; exit 1; }
fi
