#!/usr/bin/env bash
# Installs the peer of the Windows tests (tests/wine/run.sh): Wine, the
# MinGW-w64 cross compiler (for the ProcessPrng shim DLL and the final link)
# and the Rust target x86_64-pc-windows-gnu. Idempotent: does nothing when
# everything is already there. Run by tests/setup.sh.
set -euo pipefail

log() { echo "[peers/wine] $*" >&2; }

packages=(wine wine64 gcc-mingw-w64-x86-64)

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { log "error: need root (or sudo) to install ${missing[*]}"; exit 1; }
        sudo=(sudo)
    fi
    # Refresh the package lists only when they do not know a package yet.
    for pkg in "${missing[@]}"; do
        if ! apt-cache show "$pkg" >/dev/null 2>&1; then
            log "apt-get update (package lists do not know $pkg)"
            "${sudo[@]}" apt-get update -qq
            break
        fi
    done
    log "installing ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! rustup target list --installed | grep -qx x86_64-pc-windows-gnu; then
    log "rustup target add x86_64-pc-windows-gnu"
    rustup target add x86_64-pc-windows-gnu
fi

for tool in wine x86_64-w64-mingw32-gcc; do
    command -v "$tool" >/dev/null 2>&1 || { log "error: $tool is not on PATH after installation"; exit 1; }
done
