#!/usr/bin/env bash
# Build __NAME__.wasm from app.py with componentize-py (installed into
# ./.tools on first use; TOOLS_DIR to put it elsewhere).
set -euo pipefail
cd "$(dirname "$0")"
VERSION=0.25.1
tools=${TOOLS_DIR:-$PWD/.tools}
cpy="$tools/componentize-py-$VERSION"
command -v python3 >/dev/null || { echo "error: python3 with pip is needed" >&2; exit 1; }
if [ ! -f "$cpy/.installed" ]; then
    echo "installing componentize-py $VERSION into $cpy"
    python3 -m pip install --quiet --disable-pip-version-check --target "$cpy" "componentize-py==$VERSION"
    touch "$cpy/.installed"
fi
export PYTHONDONTWRITEBYTECODE=1
PYTHONPATH="$cpy" python3 -c 'import sys; from componentize_py import script; sys.argv[0] = "componentize-py"; sys.exit(script())' \
    -d wit -w provider-plugin componentize -p . -o __NAME__.wasm app
echo "built __NAME__.wasm"
