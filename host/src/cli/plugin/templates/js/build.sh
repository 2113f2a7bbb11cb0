#!/usr/bin/env bash
# Build __NAME__.wasm from app.js with componentize-js (installed with npm
# into ./.tools on first use; TOOLS_DIR to put it elsewhere).
set -euo pipefail
cd "$(dirname "$0")"
tools=${TOOLS_DIR:-$PWD/.tools}/componentize-js-0.23.0
command -v npm >/dev/null || { echo "error: node and npm (Node.js 18 or later) are needed" >&2; exit 1; }
if [ ! -f "$tools/.installed" ]; then
    echo "installing componentize-js into $tools"
    mkdir -p "$tools"
    cp package.json "$tools/"
    (cd "$tools" && npm install --no-audit --no-fund --loglevel=error)
    touch "$tools/.installed"
fi
node "$tools/node_modules/@bytecodealliance/componentize-js/src/cli.js" app.js \
    --wit wit --world-name plugin --disable http fetch-event -o __NAME__.wasm
echo "built __NAME__.wasm"
