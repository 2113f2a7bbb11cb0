#!/usr/bin/env bash
# Builds the JSON-file provider (Python) into a WebAssembly component:
#
#   bash plugins/json-file/build.sh OUT_WASM TOOLS_DIR
#
# See plugins/build/componentize-py.sh for what it installs and writes.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NAME=json-file exec bash "$here/../build/componentize-py.sh" "$here" "$@"
