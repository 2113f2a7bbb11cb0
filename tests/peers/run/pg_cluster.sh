#!/usr/bin/env bash
# Starts a throw-away PostgreSQL cluster for one test: pg_cluster.sh DIR PORT PASSWORD
# - data in DIR (created; must not exist or be empty), listening on 127.0.0.1:PORT
#   and a socket in DIR;
# - superuser `postgres` with PASSWORD, SCRAM-SHA-256 required on 127.0.0.1;
# - runs as the `postgres` OS user when started as root (initdb refuses root).
# Prints nothing on success; stop it with `pg_ctl -D DIR/data stop -m immediate`
# (as the same user). Exits non-zero with the server log on failure.
set -euo pipefail
dir=$1 port=$2 password=$3
mkdir -p "$dir"
as=()
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$dir"
    as=(runuser -u postgres --)
fi
printf '%s\n' "$password" > "$dir/pwfile"
[ "$(id -u)" -eq 0 ] && chown postgres "$dir/pwfile"
"${as[@]}" initdb -D "$dir/data" -U postgres --pwfile="$dir/pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
rm -f "$dir/pwfile"
cat >> "$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
password_encryption = 'scram-sha-256'
fsync = off
max_connections = 200
CONF
printf 'local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n' > "$dir/data/pg_hba.conf"
"${as[@]}" pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 30 start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
