#!/usr/bin/env bash
# Set up, build, and run the laptop-sized smoke network on 2 MPI ranks; print a summary.
# Usage: scripts/demo.sh [OUTPUT.h5]   (default: smoke.h5 in the repository)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

out="${1:-$ROOT/smoke.h5}"
mpirun -n 2 --oversubscribe "$ROOT/target/release/lapicque" run "$ROOT/configs/smoke.toml" -o "$out" --force
"$ROOT/target/release/lapicque" inspect "$out"
echo "output: $out"
