#!/usr/bin/env bash
# Builds the hostile JavaScript test plugin (the sandbox probes) into a WebAssembly component:
#
#   bash tests/plugins/hostile-js/build.sh OUT_WASM TOOLS_DIR
#
# See plugins/build/componentize-js.sh for what it installs and writes.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NAME=hostile-js WORLD=hostile-js ENTRY=src/hostile.js exec bash "$here/../../../plugins/build/componentize-js.sh" "$here" "$@"
