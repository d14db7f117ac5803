#!/usr/bin/env bash
# The test suite (what README calls the test command): unit, integration and doc tests on
# the CPU (flex) backend.
set -euo pipefail
cd "$(dirname "$0")/.."
# The example binaries first: tests/reliability.rs runs them to check their error output.
cargo build --examples "$@"
cargo test --all-targets "$@"
cargo test --doc "$@"
