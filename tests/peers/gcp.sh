#!/usr/bin/env bash
# Install the GCP Secret Manager peer (shared/PEERS.md): cloudbox 0.2.3,
# pinned, without its dependencies (most are for other GCP services), plus
# the web stack its Secret Manager emulator runs on. Idempotent.
# tests/peers/gcp_server.py starts it; tests/peers/gcp_validate.py checks it
# against Google's official client (which needs `pip install
# google-cloud-secret-manager`, not installed here).
set -euo pipefail
PY=${PYTHON:-python3}
pip_install() {
    $PY -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$@"
}
if [ "$($PY -c 'import importlib.metadata as m; print(m.version("cloudbox"))' 2>/dev/null)" != "0.2.3" ]; then
    echo "==> installing cloudbox==0.2.3 (GCP Secret Manager emulator)" >&2
    pip_install --ignore-requires-python --no-deps cloudbox==0.2.3
fi
if ! $PY -c 'import fastapi, uvicorn, pydantic, cryptography' 2>/dev/null; then
    echo "==> installing fastapi, uvicorn, pydantic, cryptography" >&2
    pip_install fastapi 'uvicorn[standard]' pydantic cryptography
fi
