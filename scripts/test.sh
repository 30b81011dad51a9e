#!/usr/bin/env bash
# Set up, then run the whole test suite: formatting, lints, the API documentation without
# warnings, unit tests and the integration tests that run the binary under mpirun on 1 to 4
# ranks, then the Python interface's tests (python/tests, pytest in .venv).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

cargo fmt --check
cargo clippy --release --locked --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps
cargo test --release --locked
"$ROOT/.venv/bin/python" -m pytest -q "$ROOT/python/tests"
