#!/usr/bin/env bash
# Install the NEST simulator (reference implementation for the Brunel benchmark)
# into a private virtual environment, so it never pollutes the system Python.
#
# Usage: scripts/install_nest.sh
#   NEST_VENV  where the venv lives (default: $HOME/.cache/lapicque/nest-venv)
#
# Idempotent: re-running only checks that `import nest` works.
# The last line of stdout is the venv's python path, so callers can do
#   PY=$(scripts/install_nest.sh | tail -n 1)
set -euo pipefail

venv="${NEST_VENV:-$HOME/.cache/lapicque/nest-venv}"
py="$venv/bin/python"

if [[ ! -x "$py" ]]; then
    echo "creating venv at $venv" >&2
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
fi

# PYNEST_QUIET silences the banner NEST prints on import.
if ! PYNEST_QUIET=1 "$py" -c 'import nest' >/dev/null 2>&1; then
    echo "installing nest-simulator 3.10 into $venv" >&2
    # pip output goes to stderr so stdout stays reserved for the python path.
    "$py" -m pip install --upgrade pip >&2
    # The PyPI wheel bundles NEST's compiled kernel; its Python dependencies
    # (numpy, matplotlib, ...) come from the wheel metadata.
    "$py" -m pip install 'nest-simulator==3.10.*' >&2
    PYNEST_QUIET=1 "$py" -c 'import nest' >&2
fi

echo "$py"
