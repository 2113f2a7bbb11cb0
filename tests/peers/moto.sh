#!/usr/bin/env bash
# Install the AWS Secrets Manager peer (shared/PEERS.md): moto's standalone
# server, `moto_server`. Idempotent: does nothing when it is on PATH.
# tests/src/peers.rs starts it (`moto_server -H 127.0.0.1 -p PORT`).
set -euo pipefail
PY=${PYTHON:-python3}
if ! command -v moto_server >/dev/null 2>&1; then
    echo "==> installing moto[server] (AWS Secrets Manager peer)" >&2
    $PY -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "moto[server]"
    # pyenv installs console scripts as shims; refresh them.
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi
command -v moto_server >/dev/null 2>&1 || { echo "error: moto_server is not on PATH after installing moto[server]" >&2; exit 1; }
