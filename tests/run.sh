#!/usr/bin/env bash
# Run every test: installs what the tests need, then runs the Rust workspace
# tests (host, end-to-end against real plugins and peers), the plugins' own
# native unit tests, the examples in the library's docs, and the Windows
# DPAPI module's tests under Wine. Ends
# with one summary line of all the counts.
set -euo pipefail
cd "$(dirname "$0")/.."
./tests/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tresor-target}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee -a "$log"
# The examples in the library's docs (--all-targets leaves doctests out).
cargo test -p tresor --doc 2>&1 | tee -a "$log"
cargo test --manifest-path plugins/Cargo.toml --workspace 2>&1 | tee -a "$log"
./tests/wine/run.sh 2>&1 | tee -a "$log"
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
