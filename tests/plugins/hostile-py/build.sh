#!/usr/bin/env bash
# Builds the hostile Python test plugin into a WebAssembly component:
#
#   bash tests/plugins/hostile-py/build.sh OUT_WASM TOOLS_DIR
#
# See plugins/build/componentize-py.sh for what it installs and writes.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NAME=hostile-py exec bash "$here/../../../plugins/build/componentize-py.sh" "$here" "$@"
