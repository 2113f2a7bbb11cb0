#!/usr/bin/env bash
# Run every test: installs what the tests need, then runs the Rust workspace
# tests (host, end-to-end against real plugins and peers), the plugins' own
# native unit tests, and the Windows DPAPI module's tests under Wine.
set -euo pipefail
cd "$(dirname "$0")/.."
./tests/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tresor-target}"
cargo test --workspace --all-targets
cargo test --manifest-path plugins/Cargo.toml --workspace
./tests/dpapi-wine/run.sh
