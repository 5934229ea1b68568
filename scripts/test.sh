#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests, and the end-to-end tests that drive
# the real kubectl (1.31, 1.32, 1.33) and the Python client against real servers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --no-fail-fast
