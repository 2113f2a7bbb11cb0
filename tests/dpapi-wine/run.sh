#!/usr/bin/env bash
# Runs the tests of host/src/platform.rs (Windows DPAPI) for
# x86_64-pc-windows-gnu under Wine. Install Wine, MinGW-w64 and the Rust
# target first with tests/peers/wine.sh (tests/setup.sh runs it).
# Extra arguments go to `cargo test` (e.g. a test name filter).
#
#   CARGO_TARGET_DIR  builds go to $CARGO_TARGET_DIR/dpapi (default ~/.cache/tresor-target/dpapi)
#   WINEPREFIX        the Wine prefix (default ~/.cache/tresor-wine, created on first use)
set -euo pipefail
cd "$(dirname "$0")"

log() { echo "[dpapi-wine] $*" >&2; }

for tool in wine x86_64-w64-mingw32-gcc; do
    command -v "$tool" >/dev/null 2>&1 || { log "error: $tool is missing: run tests/peers/wine.sh"; exit 1; }
done
if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-pc-windows-gnu; then
    log "error: the Rust target x86_64-pc-windows-gnu is missing: run tests/peers/wine.sh"
    exit 1
fi

cache="${XDG_CACHE_HOME:-$HOME/.cache}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/tresor-target}/dpapi"
export WINEPREFIX="${WINEPREFIX:-$cache/tresor-wine}"
export WINEDEBUG="${WINEDEBUG:--all}"
# No desktop integration, no Mono/Gecko installer prompts in a fresh prefix.
export WINEDLLOVERRIDES="${WINEDLLOVERRIDES:-mscoree,mshtml=;winemenubuilder.exe=d}"
export DISPLAY=""

if [ ! -f "$WINEPREFIX/system.reg" ]; then
    log "creating the Wine prefix $WINEPREFIX (first run only, ~20-60 s)"
    mkdir -p "$WINEPREFIX"
    start=$(date +%s)
    wine wineboot --init >/dev/null 2>&1
    wineserver -w
    log "Wine prefix ready in $(( $(date +%s) - start )) s"
fi

cargo test --target x86_64-pc-windows-gnu "$@"
