#!/usr/bin/env bash
# The Azure Key Vault peer (shared/PEERS.md): nothing to install but Python's
# `cryptography` (tests/peers/azure_keyvault.py is our own protocol-faithful
# server; it makes its throw-away CA with it). Idempotent.
# tests/peers/azure_validate.py checks the server against Microsoft's client
# (which needs `pip install azure-keyvault-secrets azure-identity`, not
# installed here).
set -euo pipefail
PY=${PYTHON:-python3}
if ! $PY -c 'import cryptography.x509' 2>/dev/null; then
    echo "==> installing cryptography (Azure Key Vault peer)" >&2
    $PY -m pip install --quiet --disable-pip-version-check --root-user-action=ignore cryptography
fi
