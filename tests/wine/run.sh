#!/usr/bin/env bash
# Runs Tresor's Windows code paths without a Windows machine: the host is
# cross-compiled for x86_64-pc-windows-gnu and its tests run under Wine.
#   - the host's unit tests, among them host/src/platform.rs: the real
#     CryptProtectData/CryptUnprotectData calls;
#   - the `tresor` binary's offline commands (host/tests/cli.rs);
#   - the conformance suite against the embedded file provider, and the core
#     access-path tests (tests/e2e/core.rs);
#   - tests/e2e/provider_dpapi.rs: the dpapi plugin in the whole host
#     (wasmtime, Cedar, audit), through the provider conformance suite.
# Install Wine, MinGW-w64 and the Rust target first with tests/peers/wine.sh
# (tests/setup.sh runs it).
#
#   CARGO_TARGET_DIR  the shared target directory (default ~/.cache/tresor-target)
#   WINEPREFIX        the Wine prefix (default ~/.cache/tresor-wine, created on first use)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."

log() { echo "[wine] $*" >&2; }

for tool in wine wineserver x86_64-w64-mingw32-gcc; do
    command -v "$tool" >/dev/null 2>&1 || { log "error: $tool is missing: run tests/peers/wine.sh"; exit 1; }
done
if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-pc-windows-gnu; then
    log "error: the Rust target x86_64-pc-windows-gnu is missing: run tests/peers/wine.sh"
    exit 1
fi

cache="${XDG_CACHE_HOME:-$HOME/.cache}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/tresor-target}"
export WINEPREFIX="${WINEPREFIX:-$cache/tresor-wine}"
export WINEDEBUG="${WINEDEBUG:--all}"
# No desktop integration, no Mono/Gecko installer prompts in a fresh prefix.
export WINEDLLOVERRIDES="${WINEDLLOVERRIDES:-mscoree,mshtml=;winemenubuilder.exe=d}"
export DISPLAY=""
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$here/runner.sh"

if [ ! -f "$WINEPREFIX/system.reg" ]; then
    log "creating the Wine prefix $WINEPREFIX (first run only, ~20-60 s)"
    mkdir -p "$WINEPREFIX"
    start=$(date +%s)
    wine wineboot --init >/dev/null 2>&1
    wineserver -w
    log "Wine prefix ready in $(( $(date +%s) - start )) s"
fi

target=(--target x86_64-pc-windows-gnu)
cargo test "${target[@]}" -p tresor --lib --test cli
cargo test "${target[@]}" -p tresor-e2e --lib --test core --test provider_dpapi
