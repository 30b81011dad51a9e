#!/usr/bin/env bash
# Installs what lapicque needs on Debian 12 when it is missing (Open MPI, parallel HDF5,
# libclang and pkg-config for the HDF5 bindings, Debian's h5py and matplotlib for the
# plotting scripts, Slurm and munge for the one-node cluster of scripts/local_slurm.sh on
# which tests/slurm.rs runs the batch scripts), then builds the release binary. Safe to run
# again: it installs nothing that is already there. Sourced by demo.sh and test.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PACKAGES=(openmpi-bin libopenmpi-dev libhdf5-openmpi-dev libclang-dev pkg-config
          python3-h5py python3-matplotlib python3-numpy slurm-wlm munge)

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
    echo "setup: error: no Rust toolchain (cargo) found; install Rust >= 1.85 (rustup) first" >&2
    exit 1
fi

# Open MPI refuses to start as root unless told that this is intended.
if [[ $(id -u) -eq 0 ]]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

cd "$ROOT"
cargo build --release --locked
