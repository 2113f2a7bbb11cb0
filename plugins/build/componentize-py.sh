#!/usr/bin/env bash
# Builds a Python plugin (PLUGIN_DIR/app.py and the modules beside it) into a
# WebAssembly component; each plugin's build.sh sets NAME and calls:
#
#   bash plugins/build/componentize-py.sh PLUGIN_DIR OUT_WASM TOOLS_DIR
#
# Installs the pinned componentize-py into TOOLS_DIR when it is missing,
# then builds against wit/plugin.wit (world `provider-plugin`) and writes the
# component to OUT_WASM. Writes nothing inside the repository: the sources
# are copied to a temporary directory first. Skips the build when OUT_WASM
# was built from the same sources, WIT, script and tool version.
set -euo pipefail
: "${NAME:?set NAME}"

COMPONENTIZE_PY_VERSION=0.25.1
APP=app
WORLD=provider-plugin

say() { echo "$NAME/build.sh: $*"; }
die() { echo "$NAME/build.sh: error: $*" >&2; exit 1; }

[ $# -eq 3 ] || die "usage: componentize-py.sh PLUGIN_DIR OUT_WASM TOOLS_DIR (with NAME set)"
here=$(cd "$1" && pwd)
out=$2
tools=$3
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
wit="$root/wit/plugin.wit"
[ -f "$wit" ] || die "the WIT contract $wit is missing"

command -v python3 >/dev/null 2>&1 ||
    die "python3 is not installed: install Python 3 with pip (Debian: apt-get install python3 python3-pip)"
python3 -m pip --version >/dev/null 2>&1 ||
    die "pip is missing for $(command -v python3): install it (Debian: apt-get install python3-pip)"

# Never write bytecode next to the sources.
export PYTHONDONTWRITEBYTECODE=1
# pip warns about running as root; the install goes to TOOLS_DIR only.
export PIP_ROOT_USER_ACTION=ignore

mkdir -p "$tools" "$(dirname "$out")"
tools=$(cd "$tools" && pwd)
cpy="$tools/componentize-py-$COMPONENTIZE_PY_VERSION"
if [ ! -f "$cpy/.installed" ]; then
    say "installing componentize-py $COMPONENTIZE_PY_VERSION into $cpy"
    rm -rf "$cpy.partial.$$"
    python3 -m pip install --disable-pip-version-check --no-compile --quiet \
        --target "$cpy.partial.$$" "componentize-py==$COMPONENTIZE_PY_VERSION" ||
        die "pip could not install componentize-py==$COMPONENTIZE_PY_VERSION (is PyPI reachable?)"
    touch "$cpy.partial.$$/.installed"
    # Another build may have finished the same install meanwhile.
    if [ -f "$cpy/.installed" ]; then
        rm -rf "$cpy.partial.$$"
    else
        rm -rf "$cpy"
        mv "$cpy.partial.$$" "$cpy"
    fi
fi

sources=$(cd "$here" && ls ./*.py)
stamp=$( (echo "componentize-py $COMPONENTIZE_PY_VERSION $WORLD $APP"; cat "$wit" "${BASH_SOURCE[0]}"; cd "$here" && cat $sources) |
    python3 -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
if [ -f "$out" ] && [ -f "$out.stamp" ] && [ "$(cat "$out.stamp")" = "$stamp" ]; then
    say "$out is up to date"
    exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/tresor-$NAME.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$here" && cp $sources "$work/")
say "building $out from $here with componentize-py $COMPONENTIZE_PY_VERSION"
(
    cd "$work"
    PYTHONPATH="$cpy" PYTHONPYCACHEPREFIX="$work/pycache" python3 -c \
        'import sys; from componentize_py import script; sys.argv[0] = "componentize-py"; sys.exit(script())' \
        -d "$wit" -w "$WORLD" componentize -p "$work" -o "$work/out.wasm" "$APP"
) || die "componentize-py failed (see above)"
mv "$work/out.wasm" "$out.tmp"
mv "$out.tmp" "$out"
echo "$stamp" >"$out.stamp"
say "wrote $out ($(wc -c <"$out") bytes)"
