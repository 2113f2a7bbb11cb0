#!/usr/bin/env bash
# Cargo's runner for x86_64-pc-windows-gnu executables (tests/wine/run.sh
# sets it): puts the ProcessPrng shim (processprng.c) next to the executable
# (and next to the binaries a test in `deps/` may start), then runs the
# executable under Wine.
set -euo pipefail
exe="$1"
shift
here="$(cd "$(dirname "$0")" && pwd)"
dir="$(cd "$(dirname "$exe")" && pwd)"
dirs=("$dir")
[ "$(basename "$dir")" = deps ] && dirs+=("$(dirname "$dir")")
for d in "${dirs[@]}"; do
    dll="$d/bcryptprimitives.dll"
    if [ ! -f "$dll" ] || [ "$here/processprng.c" -nt "$dll" ]; then
        x86_64-w64-mingw32-gcc -shared -O2 -s -Wall -Werror -o "$dll.tmp" "$here/processprng.c" -ladvapi32
        mv "$dll.tmp" "$dll"
    fi
done
exec wine "$exe" "$@"
