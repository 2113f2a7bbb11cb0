#!/usr/bin/env bash
# Installs the PostgreSQL peer (shared/PEERS.md): Debian's `postgresql`
# server, for the postgres generator's tests. Idempotent: does nothing when
# `initdb` and `pg_ctl` are already on PATH. tests/peers/run/pg_cluster.sh starts a
# throw-away cluster.
set -euo pipefail
log() { echo "[peers/postgres] $*" >&2; }
if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    exit 0
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { log "error: need root (or sudo) to install postgresql"; exit 1; }
    sudo=(sudo)
fi
if ! apt-cache show postgresql >/dev/null 2>&1; then
    "${sudo[@]}" apt-get update -qq
fi
log "installing postgresql"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
for tool in initdb pg_ctl postgres pg_isready; do
    command -v "$tool" >/dev/null 2>&1 || "${sudo[@]}" ln -sf "$bin/$tool" "/usr/local/bin/$tool"
done
command -v initdb >/dev/null 2>&1 || { log "error: initdb is not on PATH after installing postgresql"; exit 1; }
