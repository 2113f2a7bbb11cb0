#!/usr/bin/env bash
# Builds the yaml-file provider (JavaScript) into a WebAssembly component:
#
#   bash plugins/yaml-file/build.sh OUT_WASM TOOLS_DIR
#
# See plugins/build/componentize-js.sh for what it installs and writes.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NAME=yaml-file WORLD=yaml-file-provider ENTRY=src/provider.js exec bash "$here/../build/componentize-js.sh" "$here" "$@"
