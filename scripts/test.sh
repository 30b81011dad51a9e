#!/usr/bin/env bash
# Set up, then run the whole test suite: formatting, lints, the API documentation without
# warnings, unit tests and the integration tests that run the binary under mpirun on 1 to 4
# ranks.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

cargo fmt --check
cargo clippy --release --locked --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps
cargo test --release --locked
