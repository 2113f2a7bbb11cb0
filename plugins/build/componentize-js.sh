#!/usr/bin/env bash
# Builds a JavaScript plugin into a WebAssembly component; each plugin's
# build.sh sets NAME, WORLD (its world in PLUGIN_DIR/wit) and ENTRY (its main
# module) and calls:
#
#   bash plugins/build/componentize-js.sh PLUGIN_DIR OUT_WASM TOOLS_DIR
#
# Installs the plugin's pinned toolchain (its package-lock.json: ComponentizeJS,
# esbuild, its own packages) with `npm ci` into TOOLS_DIR/js-<hash of the lock>
# when missing, bundles ENTRY with esbuild, componentizes it against its world
# (the repository's wit/plugin.wit plus the WASI interfaces it imports) and
# writes the component to OUT_WASM.
#
# Writes nothing inside the repository (work files go to a temporary
# directory under TOOLS_DIR). Idempotent: when OUT_WASM was built from the
# same inputs (sources, WIT, lock file, these scripts, node's version) it is
# left alone.
set -euo pipefail
: "${NAME:?set NAME}" "${WORLD:?set WORLD}" "${ENTRY:?set ENTRY}"

say() { echo "[$NAME build] $*" >&2; }
die() { echo "[$NAME build] error: $*" >&2; exit 1; }

[ $# -eq 3 ] || die "usage: componentize-js.sh PLUGIN_DIR OUT_WASM TOOLS_DIR (with NAME, WORLD, ENTRY set)"
HERE="$(cd "$1" && pwd)"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$2"
TOOLS_DIR="$3"
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac
case "$TOOLS_DIR" in /*) ;; *) TOOLS_DIR="$PWD/$TOOLS_DIR" ;; esac

command -v node >/dev/null 2>&1 ||
  die "node is not installed: the JavaScript plugin $NAME needs Node.js 18 or later with npm (https://nodejs.org, or your distribution's nodejs and npm packages)"
command -v npm >/dev/null 2>&1 ||
  die "npm is not installed: the JavaScript plugin $NAME needs npm beside node (your distribution's npm package)"
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
[ "$NODE_MAJOR" -ge 18 ] || die "node $(node --version) is too old: ComponentizeJS needs Node.js 18 or later"

hash_files() { sha256sum "$@" | sha256sum | cut -c1-64; }

# What the component is made of: when none of it changed, nothing is done.
INPUTS=("$HERE/build.sh" "${BASH_SOURCE[0]}" "$HERE/package.json" "$HERE/package-lock.json" "$ROOT/wit/plugin.wit")
while IFS= read -r f; do INPUTS+=("$f"); done < <(find "$HERE/src" "$HERE/wit" -type f | LC_ALL=C sort)
STAMP="$( (hash_files "${INPUTS[@]}"; node --version) | sha256sum | cut -c1-64)"
if [ -f "$OUT" ] && [ -f "$OUT.inputs" ] && [ "$(cat "$OUT.inputs")" = "$STAMP" ]; then
  say "$OUT is up to date"
  exit 0
fi

# The pinned toolchain, shared by every build with the same lock file.
LOCK_HASH="$(sha256sum "$HERE/package-lock.json" | cut -c1-16)"
TOOLS="$TOOLS_DIR/js-$LOCK_HASH"
if [ ! -f "$TOOLS/.installed" ]; then
  say "installing the pinned JavaScript toolchain into $TOOLS (npm ci)"
  mkdir -p "$TOOLS_DIR"
  STAGE="$(mktemp -d "$TOOLS_DIR/.js-install.XXXXXX")"
  chmod 755 "$STAGE"
  cp "$HERE/package.json" "$HERE/package-lock.json" "$STAGE/"
  (cd "$STAGE" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2) ||
    { rm -rf "$STAGE"; die "npm ci failed in $STAGE (is the npm registry reachable?)"; }
  touch "$STAGE/.installed"
  rm -rf "$TOOLS"
  mv "$STAGE" "$TOOLS" 2>/dev/null || { rm -rf "$STAGE"; [ -f "$TOOLS/.installed" ] || die "could not install into $TOOLS"; }
else
  say "using the JavaScript toolchain in $TOOLS"
fi

WORK="$(mktemp -d "$TOOLS_DIR/.work-$NAME.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# The WIT: the local world and its WASI deps, plus the repository's contract.
mkdir -p "$WORK/wit/deps"
cp -R "$HERE/wit/." "$WORK/wit/"
cp "$ROOT/wit/plugin.wit" "$WORK/wit/deps/tresor-plugin.wit"

say "bundling $ENTRY with esbuild"
mkdir -p "$WORK/src"
cp -R "$HERE/src/." "$WORK/src/"
ln -s "$TOOLS/node_modules" "$WORK/node_modules"
(cd "$WORK" && node "$TOOLS/node_modules/esbuild/bin/esbuild" "$ENTRY" \
  --bundle --format=esm --platform=neutral --target=es2022 \
  --main-fields=module,main --conditions=import \
  '--external:tresor:*' '--external:wasi:*' \
  --legal-comments=none --log-level=warning \
  --outfile="$WORK/bundle.js") || die "esbuild could not bundle $ENTRY"

say "componentizing against world $WORLD (ComponentizeJS; this takes a minute)"
START=$(date +%s)
(cd "$WORK" && TMPDIR="$WORK" node "$TOOLS/node_modules/@bytecodealliance/componentize-js/src/cli.js" \
  bundle.js --wit "$WORK/wit" --world-name "$WORLD" \
  --disable http fetch-event \
  -o "$WORK/out.wasm" >&2) || die "componentize-js failed (see above)"

mkdir -p "$(dirname "$OUT")"
cp "$WORK/out.wasm" "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "$STAMP" > "$OUT.inputs"
say "wrote $OUT ($(wc -c < "$OUT") bytes) in $(( $(date +%s) - START )) s"
