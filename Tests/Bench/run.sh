#!/usr/bin/env bash
# Switchyard benchmark: direct stdio pipe baseline vs. the gateway's Streamable HTTP and legacy HTTP+SSE
# paths, plus idle memory per legacy SSE session.
#
#   SWITCHYARD_BIN=/abs/path/.build/release/switchyard Tests/Bench/run.sh      (or: make bench)
#
# Steps (see Tests/Bench/README.md):
#   1. pipe baseline: Tests/Bench/pipe_rtt.c spawns `$SWITCHYARD_BIN demo-server` and sends tools/call
#      echo requests one at a time over its stdin/stdout.
#   2. starts `$SWITCHYARD_BIN --host 127.0.0.1 --port 0` (bundled demo server), creates sessions with curl.
#   3. wrk + Tests/Bench/tools_call.lua: POST /mcp tools/call echo; one shared session, then one session
#      per connection; 1, 16 and 64 connections.
#   4. CPU per request from /proc/<pid>/stat (utime+stime) of the gateway and, separately, of its
#      descendants (the children), plus wrk's own CPU.
#   5. legacy HTTP+SSE (GET /sse + POST /messages) with Tests/Bench/sse_load.c: 1, 16, 64 sessions, one
#      request in flight per session, answers read from the session streams.
#   6. idle memory: a fresh gateway, 1 000 then 10 000 idle GET /sse sessions (sse_load idle), VmRSS and fd
#      count from /proc before/after, close; a second round of 10 000 to check for leaks.
#  6b. the same over TLS: a fresh gateway with the TLS listener of 7b, 1 000 idle TLS GET /sse sessions
#      (tls_idle.py, Python asyncio + ssl), KB per idle TLS session next to the plain figure; fds back after closing.
#   7. peers, side by side in the same run (Tests/Bench/README.md, "Peers"):
#      - mcp-proxy (PyPI) in its own venv (.venv/bench-mcp-proxy, created here), in front of the same
#        `$SWITCHYARD_BIN demo-server` child: the same wrk and sse_load runs against its /mcp and /sse;
#      - raw_echo.c: a minimal libevent HTTP server answering POST /mcp with the gateway's exact reply bytes,
#        three times: on evhttp; --minimal (raw events + read/write, the gateway's own I/O strategy); and
#        --minimal --children N (the minimal C gateway: each connection's body piped to its own demo-server child)
#        (no MCP work), the physical HTTP limit; plain and TLS;
#      - Switchyard with a TLS listener (ECDSA P-256 certificate made with openssl at run time) vs plain;
#      - Switchyard with a shared pool (config servers.demo.pool {mode: shared, min_idle: 2}) vs dedicated;
#      - 1 000 legacy SSE sessions on 4 shared children (pool {mode: shared, min_idle: 4, max_children: 4,
#        max_sessions_per_child: 250} + admin listener), driven by sse_load; GET /pools read during the run
#        must show exactly 4 children and 1 000 sessions (GET /children: 250 each);
#      - session setup latency (setup_lat.c): initialize -> first tools/call result, 200 sequential sessions;
#      - idle memory per SSE session of mcp-proxy at 1 000 sessions.
#   8. prints Markdown tables, the side-by-side comparison with ratios (compare.py), writes them to
#      results/bench-<timestamp>.md and a chart to results/bench-<timestamp>.png.
#
# Knobs (environment): BENCH_DURATION (wrk -d, default 5s), BENCH_WARMUP (default 1s, 0 = none),
# BENCH_CONNS (default "1 16 64"), BENCH_MODES (default "shared per-conn"), BENCH_PIPE_N (default
# 200000), BENCH_TEXT (echo text), BENCH_GATEWAY_ARGS (extra gateway flags, e.g. "--spares 4"),
# BENCH_SSE_SESSIONS (default "1 16 64", empty = skip), BENCH_IDLE (default 1, 0 = skip the idle memory
# step), BENCH_IDLE_STEPS (default "1000,10000"), BENCH_IDLE_ROUND2 (default 10000), BENCH_IDLE_BATCH
# (default 500), BENCH_IDLE_KB_MAX (default 8), BENCH_MAX_SESSIONS (default 20000),
# BENCH_ALLOW_ERRORS=1 (exit 0 even if requests failed), WRK (default wrk), BENCH_PEERS (default
# "mcp-proxy raw-echo"), BENCH_TLS (default 1), BENCH_TLS_CONNS (default "1 64"), BENCH_SHARED_POOL (default 1),
# BENCH_SETUP_N (default 200), BENCH_MP_DURATION / BENCH_MP_WARMUP (mcp-proxy runs; default: the same as the
# others), BENCH_MP_IDLE (default 1000, 0 = skip), BENCH_MP_SPEC (pip spec, default mcp-proxy),
# BENCH_VENV (default <repo>/.venv/bench-mcp-proxy), BENCH_SHARED_1K (default 1, 0 = skip the 1 000-session
# shared-pool run), BENCH_SHARED_1K_SESSIONS (default 1000), BENCH_SHARED_1K_CHILDREN (default 4),
# BENCH_TLS_IDLE (idle TLS sessions, default 1000, 0 = skip).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

: "${SWITCHYARD_BIN:?set SWITCHYARD_BIN to the switchyard binary (absolute path)}"
DURATION="${BENCH_DURATION:-5s}"
WARMUP="${BENCH_WARMUP:-1s}"
CONNS="${BENCH_CONNS:-1 16 64}"
MODES="${BENCH_MODES:-shared per-conn}"
PIPE_N="${BENCH_PIPE_N:-200000}"
TEXT="${BENCH_TEXT:-hello from switchyard bench}"
PROTO="2025-06-18"
WRK="${WRK:-wrk}"
CC="${CC:-cc}"
read -ra GW_EXTRA <<<"${BENCH_GATEWAY_ARGS:-}"
SSE_SESSIONS="${BENCH_SSE_SESSIONS-1 16 64}"
IDLE="${BENCH_IDLE:-1}"
IDLE_STEPS="${BENCH_IDLE_STEPS:-1000,10000}"
IDLE_ROUND2="${BENCH_IDLE_ROUND2:-10000}"
IDLE_BATCH="${BENCH_IDLE_BATCH:-500}"
IDLE_KB_MAX="${BENCH_IDLE_KB_MAX:-8}"
MAX_SESSIONS="${BENCH_MAX_SESSIONS:-20000}"
GW_ARGS=(--host 127.0.0.1 --port 0 --max-sessions "$MAX_SESSIONS" --max-connections "$((MAX_SESSIONS + 1000))" "${GW_EXTRA[@]}")
PEERS="${BENCH_PEERS-mcp-proxy raw-echo}"
TLS="${BENCH_TLS:-1}"
TLS_CONNS="${BENCH_TLS_CONNS:-1 64}"
SHARED_POOL="${BENCH_SHARED_POOL:-1}"
SETUP_N="${BENCH_SETUP_N:-200}"
SHARED_1K="${BENCH_SHARED_1K:-1}"
SHARED_1K_SESSIONS="${BENCH_SHARED_1K_SESSIONS:-1000}"
SHARED_1K_CHILDREN="${BENCH_SHARED_1K_CHILDREN:-4}"
TLS_IDLE="${BENCH_TLS_IDLE:-1000}"
MP_DURATION="${BENCH_MP_DURATION:-$DURATION}"
MP_WARMUP="${BENCH_MP_WARMUP:-$WARMUP}"
MP_IDLE="${BENCH_MP_IDLE:-1000}"
MP_SPEC="${BENCH_MP_SPEC:-mcp-proxy}"
VENV="${BENCH_VENV:-$root/.venv/bench-mcp-proxy}"
has_peer() { [[ " $PEERS " == *" $1 "* ]]; }

die() { echo "bench: error: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

[[ -x "$SWITCHYARD_BIN" ]] || die "SWITCHYARD_BIN=$SWITCHYARD_BIN is not an executable file"
command -v "$WRK" >/dev/null || die "wrk not found (apt-get install wrk, or make deps)"
command -v curl >/dev/null || die "curl not found"
command -v "$CC" >/dev/null || die "C compiler '$CC' not found"
[[ "$TEXT" =~ ^[][A-Za-z0-9\ .,:/_+=@!?\(\)-]+$ ]] || die "BENCH_TEXT must be plain ASCII without quotes/backslashes"
[[ "$IDLE_STEPS" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "BENCH_IDLE_STEPS must be comma-separated counts, e.g. 1000,10000"
[[ "$SHARED_1K_SESSIONS" =~ ^[1-9][0-9]*$ && "$SHARED_1K_CHILDREN" =~ ^[1-9][0-9]*$ ]] \
    && ((SHARED_1K_SESSIONS % SHARED_1K_CHILDREN == 0)) \
    || die "BENCH_SHARED_1K_SESSIONS must be a positive multiple of BENCH_SHARED_1K_CHILDREN"
[[ "$TLS_IDLE" =~ ^[0-9]+$ ]] || die "BENCH_TLS_IDLE must be a count (0 = skip)"

# The idle-session step holds 10 000+ sockets in the load generator and in the gateway: raise the file limit
# (inherited by both) to the hard limit.
hard_nofile="$(ulimit -Hn)"
[[ "$hard_nofile" == unlimited ]] && hard_nofile=1048576
ulimit -n "$hard_nofile" 2>/dev/null || log "warning: could not raise the file limit to $hard_nofile"
nofile="$(ulimit -n)"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/switchyard-bench.XXXXXX")"
gw_pid=""
gw_kind=switchyard         # switchyard | mcp-proxy | raw-echo: what gw_pid is
gw_n=0                     # gateway instances started (logs: $tmp/gateway.N.log)
declare -A known_desc=()   # every descendant pid of the gateway we have seen

# ---------------------------------------------------------------- process helpers
descendants() { # all descendant pids of $1, depth-first
    local p c
    for p in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        echo "$p"
        descendants "$p"
    done
}

cpu_ticks() { # utime+stime of one pid, in clock ticks; 0 if gone
    local s
    s="$(cat /proc/"$1"/stat 2>/dev/null)" || { echo 0; return; }
    s="${s##*) }"
    local -a f
    read -ra f <<<"$s"
    echo $(( f[11] + f[12] ))
}

reaped_ticks() { # cutime+cstime of one pid (CPU of children it has already waited for)
    local s
    s="$(cat /proc/"$1"/stat 2>/dev/null)" || { echo 0; return; }
    s="${s##*) }"
    local -a f
    read -ra f <<<"$s"
    echo $(( f[13] + f[14] ))
}

declare -A snap_child=()
snapshot() { # sets snap_gw, snap_reaped, snap_child[pid]
    snap_gw=$(cpu_ticks "$gw_pid")
    snap_reaped=$(reaped_ticks "$gw_pid")
    snap_child=()
    local p
    for p in $(descendants "$gw_pid"); do
        snap_child[$p]=$(cpu_ticks "$p")
        known_desc[$p]=1
    done
}

alive() { # running and not a zombie
    local s
    s="$(cat /proc/"$1"/stat 2>/dev/null)" || return 1
    s="${s##*) }"
    [[ "${s:0:1}" != Z ]]
}

stop_gateway() { # SIGTERM the current gateway (contract: it terminates its children), SIGKILL after 7 s
    [[ -n "$gw_pid" ]] || return 0
    local p st=0 killed=0
    if kill -0 "$gw_pid" 2>/dev/null; then
        for p in $(descendants "$gw_pid"); do known_desc[$p]=1; done
        kill -TERM "$gw_pid" 2>/dev/null || true
        # peers get 3 s (mcp-proxy's uvicorn can wait for its session tasks); Switchyard's contract allows 7 s
        local grace=70
        [[ "$gw_kind" == switchyard ]] || grace=30
        for _ in $(seq 1 "$grace"); do kill -0 "$gw_pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$gw_pid" 2>/dev/null; then
            log "$gw_kind did not exit within $((grace / 10))s of SIGTERM; sending SIGKILL"
            kill -KILL "$gw_pid" 2>/dev/null || true
            killed=1
        fi
    fi
    wait "$gw_pid" 2>/dev/null || st=$?
    if [[ "$gw_kind" == switchyard ]]; then
        ((killed || st == 0 || st == 127)) || log "warning: gateway $gw_pid exited with status $st after SIGTERM (contract: 0)"
    fi
    gw_pid=""
    gw_kind=switchyard
}

reap_children() { # children the gateway should have terminated: kill what is left (only pids we saw under it)
    local p left=()
    for p in "${!known_desc[@]}"; do alive "$p" && left+=("$p"); done
    if ((${#left[@]})); then
        sleep 1
        for p in "${left[@]}"; do
            if alive "$p"; then
                log "child $p still running 1s after the gateway exited; killing it"
                kill -KILL "$p" 2>/dev/null || true
            fi
        done
    fi
    known_desc=()
}

cleanup() {
    local rc=$?
    set +e
    [[ -n "${load_pid:-}" ]] && kill -TERM "$load_pid" 2>/dev/null
    stop_gateway
    reap_children
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

kv() { # kv KEY LINE -> value of KEY=value in a line of key=value pairs
    local k="$1" line="$2"
    [[ " $line " =~ \ $k=([^ ]*) ]] && echo "${BASH_REMATCH[1]}" || echo ""
}

fmt() { # fmt PRINTF_FORMAT NUMBER ; prints "–" for empty input
    [[ -n "$2" ]] && LC_ALL=C printf "$1" "$2" || echo "–"
}

now_us() { local t="${EPOCHREALTIME/[.,]/}"; echo $((10#$t)); }

hz=$(getconf CLK_TCK)

# ---------------------------------------------------------------- 1. pipe baseline
log "building pipe_rtt, sse_load and setup_lat"
"$CC" -O2 -Wall -o "$tmp/pipe_rtt" "$here/pipe_rtt.c"
"$CC" -O2 -Wall -o "$tmp/sse_load" "$here/sse_load.c"
"$CC" -O2 -Wall -o "$tmp/setup_lat" "$here/setup_lat.c"

log "pipe baseline: $PIPE_N sequential tools/call echo over stdio to '$SWITCHYARD_BIN demo-server'"
pipe_line="$(timeout 60 "$tmp/pipe_rtt" -n "$PIPE_N" -w 1000 -t 5 -x "$TEXT" -- "$SWITCHYARD_BIN" demo-server)" \
    || die "pipe baseline failed (see pipe_rtt message above)"
log "$pipe_line"
pipe_pinned_line=""
if command -v taskset >/dev/null; then
    # Same run with pipe_rtt and the child on one CPU: a cross-CPU wake-up per message costs tens of µs on
    # some VMs, so the unpinned figure alone can swing by 5x between runs depending on placement.
    log "pipe baseline, both processes on CPU 0 (taskset)"
    pipe_pinned_line="$(timeout 60 taskset -c 0 "$tmp/pipe_rtt" -n "$PIPE_N" -w 1000 -t 5 -x "$TEXT" -- "$SWITCHYARD_BIN" demo-server)" \
        || die "pinned pipe baseline failed (see pipe_rtt message above)"
    log "$pipe_pinned_line"
fi

# ---------------------------------------------------------------- 2. gateway and peers
# A "target" is the server under load: Switchyard (gw_kind=switchyard), mcp-proxy or raw_echo. gw_pid is its
# pid (CPU and RSS are read from /proc/gw_pid; "child" CPU = its descendants), url its /mcp URL, port its port.
scheme=http
CURL_TLS=()
start_gateway() { # start_gateway [SWITCHYARD ARGS...] (default GW_ARGS); sets gw_pid, gw_log, port, url
    local -a args=("$@")
    ((${#args[@]})) || args=("${GW_ARGS[@]}")
    gw_n=$((gw_n + 1))
    gw_log="$tmp/gateway.$gw_n.log"
    gw_kind=switchyard
    log "starting gateway: $SWITCHYARD_BIN ${args[*]} (file limit $nofile)"
    "$SWITCHYARD_BIN" "${args[@]}" >"$tmp/gateway.$gw_n.out" 2>"$gw_log" &
    gw_pid=$!
    port=""
    local line
    for _ in $(seq 1 200); do
        if line="$(grep -m1 'msg=listening' "$gw_log" 2>/dev/null)"; then
            [[ "$line" =~ address=[^[:space:]]*:([0-9]+) ]] && port="${BASH_REMATCH[1]}"
            break
        fi
        kill -0 "$gw_pid" 2>/dev/null || break
        sleep 0.05
    done
    if [[ -z "$port" ]]; then
        sed 's/^/  gateway: /' "$gw_log" >&2 || true
        die "gateway did not log 'msg=listening address=HOST:PORT' within 10s (alive: $(kill -0 "$gw_pid" 2>/dev/null && echo yes || echo no))"
    fi
    url="$scheme://127.0.0.1:$port/mcp"
    log "gateway pid $gw_pid listening on $url"
}

free_port() { # a free TCP port on 127.0.0.1 (bound and released; mcp-proxy needs a number)
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # wait_port PORT PID SECONDS -> 0 once something accepts on 127.0.0.1:PORT
    local n=$(( $3 * 20 ))
    for _ in $(seq 1 "$n"); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

start_mcp_proxy() { # mcp-proxy in front of `$SWITCHYARD_BIN demo-server`; sets gw_pid (the Python process), port, url
    gw_n=$((gw_n + 1))
    gw_log="$tmp/gateway.$gw_n.log"
    port="$(free_port)"
    log "starting mcp-proxy: $VENV/bin/mcp-proxy --log-level WARNING --host 127.0.0.1 --port $port -- $SWITCHYARD_BIN demo-server"
    "$VENV/bin/mcp-proxy" --log-level WARNING --host 127.0.0.1 --port "$port" -- "$SWITCHYARD_BIN" demo-server \
        >"$tmp/mcp-proxy.$gw_n.out" 2>"$gw_log" &
    gw_pid=$!
    gw_kind=mcp-proxy
    if ! wait_port "$port" "$gw_pid" 30; then
        sed 's/^/  mcp-proxy: /' "$gw_log" >&2 || true
        return 1
    fi
    url="http://127.0.0.1:$port/mcp"
    log "mcp-proxy pid $gw_pid listening on $url"
}

start_raw_echo() { # start_raw_echo BODYFILE [tls|minimal|child] ; sets gw_pid, port, url
    local -a a=(-p 0 -b "$1")
    [[ "${2:-}" == tls ]] && a+=(--cert "$tmp/cert.pem" --key "$tmp/key.pem")
    [[ "${2:-}" == minimal ]] && a+=(--minimal)
    if [[ "${2:-}" == child ]]; then
        local maxc=0 c
        for c in $CONNS; do ((c > maxc)) && maxc=$c; done
        a+=(--minimal --children "$((maxc + 4))" -- "$SWITCHYARD_BIN" demo-server)
    fi
    gw_n=$((gw_n + 1))
    gw_log="$tmp/gateway.$gw_n.log"
    "$tmp/raw_echo" "${a[@]}" 2>"$gw_log" &
    gw_pid=$!
    gw_kind=raw-echo
    port=""
    for _ in $(seq 1 100); do
        port="$(grep -o 'port=[0-9]*' "$gw_log" 2>/dev/null | head -1 | cut -d= -f2 || true)"
        [[ -n "$port" ]] && break
        kill -0 "$gw_pid" 2>/dev/null || break
        sleep 0.05
    done
    [[ -n "$port" ]] || { cat "$gw_log" >&2; die "raw_echo did not start"; }
    url="$scheme://127.0.0.1:$port/mcp"
    log "raw_echo pid $gw_pid listening on $url"
}

# POST helper: post BODY [SESSION] -> sets http_code, resp_headers file, resp_body file
post() {
    local body="$1" sid="${2:-}"
    local -a h=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
    [[ -n "$sid" ]] && h+=(-H "Mcp-Session-Id: $sid" -H "MCP-Protocol-Version: $PROTO")
    http_code="$(curl -sS "${CURL_TLS[@]}" --max-time 10 -o "$tmp/resp.body" -D "$tmp/resp.headers" -w '%{http_code}' \
        "${h[@]}" --data-binary "$body" "$url")" || http_code="curl-failed"
}
header() { grep -i "^$1:" "$tmp/resp.headers" | tail -1 | cut -d: -f2- | tr -d ' \r' || true; }
misbehaves() { # misbehaves REQUEST EXPECTED -> report and exit
    {
        echo "bench: DAEMON MISBEHAVES ($gw_kind)"
        echo "  request:  $1"
        echo "  expected: $2"
        echo "  got:      HTTP $http_code"
        sed 's/^/    /' "$tmp/resp.headers" 2>/dev/null | tr -d '\r'
        echo "    body: $(head -c 600 "$tmp/resp.body" 2>/dev/null | tr '\n' ' ')"
    } >&2
    exit 1
}

init_body='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"'"$PROTO"'","capabilities":{},"clientInfo":{"name":"switchyard-bench","version":"1"}}}'
initialized_body='{"jsonrpc":"2.0","method":"notifications/initialized"}'
call_body='{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"'"$TEXT"'"}}}'

new_session() { # prints a session id (raw_echo has no sessions: a made-up id it echoes back)
    if [[ "$gw_kind" == raw-echo ]]; then
        printf 'raw%029d\n' "$((++raw_sid_n))"
        return
    fi
    post "$init_body"
    [[ "$http_code" == 200 ]] || misbehaves "POST /mcp initialize" "200 with Mcp-Session-Id"
    local sid
    sid="$(header Mcp-Session-Id)"
    [[ -n "$sid" ]] || misbehaves "POST /mcp initialize" "Mcp-Session-Id response header"
    grep -q '"result"' "$tmp/resp.body" || misbehaves "POST /mcp initialize" "JSON-RPC result in body"
    if [[ "$gw_kind" == switchyard ]]; then
        [[ "$sid" =~ ^[0-9a-f]{32}$ ]] || log "warning: session id '$sid' is not 32 lowercase hex chars (contract)"
    fi
    post "$initialized_body" "$sid"
    [[ "$http_code" == 202 ]] || misbehaves "POST /mcp notifications/initialized (Mcp-Session-Id: $sid)" "202, empty body"
    echo "$sid"
}
raw_sid_n=0

delete_session() {
    [[ "$gw_kind" == raw-echo ]] && return 0
    local code
    code="$(curl -sS "${CURL_TLS[@]}" --max-time 10 -o /dev/null -w '%{http_code}' -X DELETE -H "Mcp-Session-Id: $1" \
        -H "MCP-Protocol-Version: $PROTO" "$url")" || code="curl-failed"
    [[ "$code" == 200 || "$code" == 204 ]] || log "warning: DELETE session $1 -> HTTP $code (expected 200)"
}

sanity_check() { # the exact request wrk will send, before measuring anything; sets sid0
    sid0="$(new_session)"
    post "$call_body" "$sid0"
    local req_desc="POST /mcp tools/call echo (Mcp-Session-Id: $sid0, MCP-Protocol-Version: $PROTO) to $gw_kind"
    local ctype
    ctype="$(header Content-Type)"
    [[ "$http_code" == 200 ]] || misbehaves "$req_desc" "200"
    [[ "$(header Mcp-Session-Id)" == "$sid0" || "$gw_kind" == mcp-proxy ]] || misbehaves "$req_desc" "Mcp-Session-Id: $sid0 on the answer"
    if [[ "$gw_kind" == mcp-proxy && "$ctype" == application/json* ]]; then
        # the Python SDK may answer as plain JSON (mcp-proxy does); the wrk script accepts both
        grep -q '"result"' "$tmp/resp.body" && grep -qF "$TEXT" "$tmp/resp.body" && grep -Eq '"id": ?7[,}]' "$tmp/resp.body" \
            || misbehaves "$req_desc" "JSON {...\"id\":7,\"result\":{...\"$TEXT\"...}}"
        log "sanity check passed ($gw_kind): tools/call answered as JSON with the echoed text"
        return
    fi
    [[ "$ctype" == text/event-stream* ]] || misbehaves "$req_desc" "Content-Type: text/event-stream (got '$ctype')"
    grep -q '^event: message' "$tmp/resp.body" && grep -q '^data: .*"result"' "$tmp/resp.body" \
        && grep -qF "$TEXT" "$tmp/resp.body" && grep -Eq '"id": ?7[,}]' "$tmp/resp.body" \
        || misbehaves "$req_desc" "SSE 'event: message' + 'data: {...\"id\":7,\"result\":{...\"$TEXT\"...}}'"
    log "sanity check passed ($gw_kind): tools/call answered as SSE with the echoed text"
}

start_gateway
sanity_check
# raw_echo answers with exactly these bytes (the gateway's decoded SSE body for this request)
cp "$tmp/resp.body" "$tmp/reply.body"

# ---------------------------------------------------------------- 3./4. wrk runs
declare -a rows=()
any_errors=0
wrk_version="$("$WRK" -v 2>&1 | head -1 | awk '{print $2}' || true)"
data="$tmp/data.tsv"   # one line per measured run, for compare.py (ratios, chart)
: >"$data"

run_wrk() { # run_wrk OUTFILE TIMESFILE THREADS CONNS DURATION (tools_call.lua reads the BENCH_* env); wrk CPU via `times`
    local out="$1" tf="$2" t="$3" c="$4" d="$5"
    (
        "$WRK" -t"$t" -c"$c" -d"$d" --timeout 5s -s "$here/tools_call.lua" "$url" >"$out" 2>&1 || echo "wrk exit $?" >>"$out"
        times >"$tf"
    )
}

per_req() { # per_req TICKS REQUESTS -> CPU µs per request
    awk -v x="$1" -v n="$2" -v hz="$hz" 'BEGIN{ if (n>0) printf "%.1f", x*1e6/hz/n; else print "–" }'
}

seconds_of() { # "0m1.234s" -> 1.234
    local m="${1%%m*}" s="${1#*m}"; s="${s%s}"
    awk -v m="$m" -v s="$s" 'BEGIN{printf "%.3f", m*60+s}'
}

rss_of() { awk '/^VmRSS:/{print $2}' /proc/"$1"/status 2>/dev/null || echo ""; }

target_label() {
    case "$gw_kind" in
        switchyard) echo "Switchyard${gw_variant:+ ($gw_variant)}" ;;
        mcp-proxy) echo "mcp-proxy" ;;
        raw-echo)
            case "$gw_variant" in
                minimal) echo "raw echo, minimal (libevent events, no evhttp, no MCP)" ;;
                child) echo "minimal C gateway (raw events + a demo-server child per connection, no MCP)" ;;
                *) echo "raw echo (libevent evhttp, no MCP)" ;;
            esac ;;
    esac
}

# http_runs SCENARIO MODE DURATION WARMUP CONNS... : wrk runs against the current target, one row each
http_runs() {
    local scen="$1" mode="$2" dur="$3" warm="$4"; shift 4
    local c t
    for c in "$@"; do
        t=1
        if ((c > 1)); then t=2; fi
        if [[ "$mode" == per-conn ]]; then
            ((c % t == 0)) || die "connections ($c) must be a multiple of threads ($t)"
            log "[$gw_kind $scen c=$c] creating $c sessions"
            sids=()
            for _ in $(seq 1 "$c"); do sids+=("$(new_session)"); done
        else
            sids=("$sid0")
        fi
        export BENCH_SESSIONS="${sids[*]}" BENCH_MODE="$mode" BENCH_THREADS="$t" BENCH_TEXT="$TEXT" BENCH_PROTO="$PROTO"

        if [[ "$warm" != 0 && "$warm" != 0s ]]; then
            log "[$gw_kind $scen c=$c] warm-up $warm"
            run_wrk "$tmp/warm.out" "$tmp/warm.times" "$t" "$c" "$warm"
        fi

        log "[$gw_kind $scen c=$c] wrk -t$t -c$c -d$dur $url"
        snapshot
        declare -A before=(); for p in "${!snap_child[@]}"; do before[$p]=${snap_child[$p]}; done
        gw0=$snap_gw; reaped0=$snap_reaped; t0=$(now_us)
        run_wrk "$tmp/wrk.out" "$tmp/wrk.times" "$t" "$c" "$dur"
        t1=$(now_us)
        kill -0 "$gw_pid" 2>/dev/null || { sed 's/^/  gateway: /' "$gw_log" >&2; die "$gw_kind exited during the wrk run"; }
        rss=$(rss_of "$gw_pid")
        snapshot
        gw1=$snap_gw; reaped1=$snap_reaped
        child_d=$((reaped1 - reaped0))
        active=0
        for p in "${!snap_child[@]}"; do
            d=$((snap_child[$p] - ${before[$p]:-0}))
            child_d=$((child_d + d))
            if ((d > 0)); then active=$((active + 1)); fi
        done
        unset before

        res="$(grep '^BENCH_WRK ' "$tmp/wrk.out" || true)"
        if [[ -z "$res" ]]; then
            sed 's/^/  wrk: /' "$tmp/wrk.out" >&2
            die "wrk produced no BENCH_WRK line"
        fi
        grep '^BENCH_SAMPLE ' "$tmp/wrk.out" | sed 's/^BENCH_SAMPLE /  first bad response: /' >&2 || true
        n=$(kv requests "$res"); dur_us=$(kv duration_us "$res")
        errs=$(( $(kv non200 "$res") + $(kv bad_body "$res") + $(kv err_connect "$res") + $(kv err_read "$res") \
               + $(kv err_write "$res") + $(kv err_timeout "$res") ))
        # err_status counts >399 replies, which response() already counted as non200
        err_note="$errs"
        (( $(kv missing_sid "$res") > 0 )) && err_note="$err_note (no Mcp-Session-Id on $(kv missing_sid "$res") answers)"
        (( $(kv fallback "$res") > 0 )) && err_note="$err_note ($(kv fallback "$res") requests shared a busy session)"
        (( errs > 0 )) && { any_errors=1; log "[$gw_kind $scen c=$c] ERRORS: $res"; }

        read -r wu ws <<<"$(sed -n 2p "$tmp/wrk.times")"
        wrk_cpu=$(awk -v u="$(seconds_of "$wu")" -v s="$(seconds_of "$ws")" -v w="$((t1 - t0))" 'BEGIN{printf "%.0f", (u+s)*1e6/w*100}')
        rps=$(awk -v n="$n" -v d="$dur_us" 'BEGIN{printf "%.0f", n/(d/1e6)}')
        gw_us=$(per_req $((gw1 - gw0)) "$n"); ch_us=$(per_req "$child_d" "$n")
        gw_pct=$(awk -v x=$((gw1 - gw0)) -v hz="$hz" -v w="$((t1 - t0))" 'BEGIN{printf "%.0f", x/hz*1e6/w*100}')
        local label="one shared session"
        [[ "$mode" == per-conn ]] && label="session per connection"
        [[ "$gw_kind" == raw-echo ]] && label="fixed reply, no MCP"
        [[ "$gw_kind" == raw-echo && "$gw_variant" == child ]] && label="the child's reply, no MCP"
        local tl; tl="$(target_label)"
        [[ "$scheme" == https ]] && label="$label, TLS"
        rows+=("| $tl | HTTP tools/call, $label | $c | $(fmt %.0f "$rps") | $(fmt %.0f "$(kv p50_us "$res")") | $(fmt %.0f "$(kv p99_us "$res")") | $gw_us | $ch_us | $gw_pct % | ${rss:-–} | $wrk_cpu % | $err_note |")
        printf 'http\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$gw_kind${gw_variant:+-${gw_variant// /-}}" "$c" "$rps" \
            "$(kv p50_us "$res")" "$(kv p99_us "$res")" "$gw_us" "$ch_us" "$gw_pct" "$wrk_cpu" "${rss:-}" "$errs" "$dur" >>"$data"
        log "[$gw_kind $scen c=$c] $n requests, $rps req/s, p50 $(kv p50_us "$res") µs, p99 $(kv p99_us "$res") µs, gateway $gw_us µs/req ($gw_pct %), RSS ${rss:-?} KB, children $ch_us µs/req ($active of ${#snap_child[@]} used CPU), wrk $wrk_cpu %, errors $errs"

        if [[ "$mode" == per-conn ]]; then
            for s in "${sids[@]}"; do delete_session "$s"; done
        fi
    done
}

gw_variant=""
for mode in $MODES; do
    # shellcheck disable=SC2086
    http_runs "shttp-$mode" "$mode" "$DURATION" "$WARMUP" $CONNS
done

# ---------------------------------------------------------------- 5. legacy HTTP+SSE throughput
to_seconds() { # wrk-style duration (5s, 2m, 1h, 5) -> seconds
    case "$1" in
        *ms) awk -v v="${1%ms}" 'BEGIN{print v/1000}' ;;
        *s) echo "${1%s}" ;;
        *m) awk -v v="${1%m}" 'BEGIN{print v*60}' ;;
        *h) awk -v v="${1%h}" 'BEGIN{print v*3600}' ;;
        *) echo "$1" ;;
    esac
}

run_sse_load() { # run_sse_load OUTFILE MAX_SECONDS ARGS... ; in the background so SIGINT/SIGTERM reach the trap at once
    local out="$1" limit="$2"; shift 2
    timeout -k 2 "$limit" "$tmp/sse_load" "$@" >"$out" 2>"$out.err" &
    load_pid=$!
    local st=0
    wait "$load_pid" || st=$?
    load_pid=""
    sed 's/^/  /' "$out.err" >&2 || true
    ((st != 124)) || log "sse_load did not finish within ${limit}s"
    return "$st"
}

sse_misbehaves() { # sse_misbehaves OUTFILE -> report the first bad request/answer and exit
    {
        echo "bench: DAEMON MISBEHAVES (legacy HTTP+SSE, $gw_kind)"
        grep '^BENCH_SSE_SAMPLE ' "$1" | sed 's/^BENCH_SSE_SAMPLE /  /' || true
        grep '^BENCH_SSE ' "$1" | sed 's/^/  counters: /' || true
    } >&2
    exit 1
}

declare -a sse_rows=()
sse_prefix() { [[ "$gw_kind" == mcp-proxy ]] && echo '/messages/?session_id=' || echo '/messages?sessionId='; }

# sse_runs DURATION WARMUP SESSIONS... : sse_load runs against the current target
sse_runs() {
    local sse_dur sse_warm c pfx
    sse_dur="$(to_seconds "$1")"; sse_warm="$(to_seconds "$2")"; shift 2
    pfx="$(sse_prefix)"
    # sanity check: one session, a fraction of a second; every POST must get 202 and every answer must come
    # on the stream as event: message with the request's id and the echoed text
    log "[$gw_kind legacy-sse] sanity check: GET /sse, POST ${pfx}… initialize, notifications/initialized, tools/call"
    run_sse_load "$tmp/sse.out" 45 load -p "$port" -c 1 -d 0.3 -w 0 -x "$TEXT" -g "$gw_pid" -E "$pfx" \
        || { cat "$tmp/sse.out" >&2; die "sse_load failed"; }
    res="$(grep '^BENCH_SSE ' "$tmp/sse.out" || true)"
    [[ -n "$res" && "$(kv errors "$res")" == 0 && "$(kv requests "$res")" -gt 0 ]] || sse_misbehaves "$tmp/sse.out"
    log "sanity check passed ($gw_kind): legacy SSE answers arrive on the stream with the echoed text"

    for c in "$@"; do
        log "[$gw_kind legacy-sse c=$c] $c sessions (GET /sse + keep-alive POST each), ${sse_warm}s warm-up, ${sse_dur}s"
        sse_limit=$(awk -v d="$sse_dur" -v w="$sse_warm" 'BEGIN{printf "%d", d+w+45}')
        run_sse_load "$tmp/sse.out" "$sse_limit" load -p "$port" -c "$c" -d "$sse_dur" -w "$sse_warm" -x "$TEXT" -g "$gw_pid" -E "$pfx" \
            || { cat "$tmp/sse.out" >&2; die "sse_load failed"; }
        kill -0 "$gw_pid" 2>/dev/null || { sed 's/^/  gateway: /' "$gw_log" >&2; die "$gw_kind exited during the legacy SSE run"; }
        rss=$(rss_of "$gw_pid")
        res="$(grep '^BENCH_SSE ' "$tmp/sse.out" || true)"
        [[ -n "$res" ]] || { cat "$tmp/sse.out" >&2; die "sse_load produced no BENCH_SSE line"; }
        grep '^BENCH_SSE_SAMPLE ' "$tmp/sse.out" | sed 's/^BENCH_SSE_SAMPLE /  first bad request: /' >&2 || true
        n=$(kv requests "$res"); errs=$(kv errors "$res"); wall=$(kv wall_us "$res")
        err_note="$errs"
        if ((errs > 0)); then
            any_errors=1
            err_note="$errs (setup $(kv err_setup "$res"), POST $(kv err_post "$res"), answer $(kv err_answer "$res"), closed $(kv err_closed "$res"), timeout $(kv err_timeout "$res"))"
            log "[$gw_kind legacy-sse c=$c] ERRORS: $res"
        fi
        gw_t=$(kv gw_ticks "$res"); ch_t=$(( $(kv child_ticks "$res") + $(kv gw_reaped_ticks "$res") ))
        gw_us=$(per_req "$gw_t" "$n"); ch_us=$(per_req "$ch_t" "$n")
        gw_pct=$(awk -v x="$gw_t" -v hz="$hz" -v w="$wall" 'BEGIN{printf "%.0f", x/hz*1e6/w*100}')
        lg_pct=$(awk -v x="$(kv self_cpu_us "$res")" -v w="$wall" 'BEGIN{printf "%.0f", x/w*100}')
        sse_rows+=("| $(target_label) | legacy SSE tools/call: GET /sse stream + POST per session (sse_load) | $c session$( ((c == 1)) || echo s) ($((2 * c)) conns) | $(fmt %.0f "$(kv rps "$res")") | $(kv p50_us "$res") | $(kv p99_us "$res") | $gw_us | $ch_us | $gw_pct % | ${rss:-–} | $lg_pct % | $err_note |")
        printf 'sse\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "sse" "$gw_kind" "$c" "$(kv rps "$res")" \
            "$(kv p50_us "$res")" "$(kv p99_us "$res")" "$gw_us" "$ch_us" "$gw_pct" "$lg_pct" "${rss:-}" "$errs" "${sse_dur}s" >>"$data"
        log "[$gw_kind legacy-sse c=$c] $n requests, $(kv rps "$res") req/s, p50 $(kv p50_us "$res") µs, p99 $(kv p99_us "$res") µs, gateway $gw_us µs/req ($gw_pct %), RSS ${rss:-?} KB, children $ch_us µs/req ($(kv child_active "$res") of $(kv child_pids "$res") used CPU), sse_load $lg_pct %, errors $errs, answers before the POST's 202: $(kv answer_before_202 "$res")"
    done
}

if [[ -n "${SSE_SESSIONS// /}" ]]; then
    # shellcheck disable=SC2086
    sse_runs "$DURATION" "$WARMUP" $SSE_SESSIONS
fi

# ---------------------------------------------------------------- 5b. session setup latency
declare -a setup_rows=()
setup_run() { # setup_run LABEL KEY : setup_lat against the current target
    log "[$gw_kind setup] $SETUP_N sequential sessions: initialize → notifications/initialized → first tools/call result"
    local out="$tmp/setup.out" line
    timeout -k 2 150 "$tmp/setup_lat" -p "$port" -n "$SETUP_N" -w 10 -x "$TEXT" >"$out" 2>&1 || { cat "$out" >&2; die "setup_lat failed"; }
    grep '^BENCH_SETUP_SAMPLE ' "$out" | sed 's/^BENCH_SETUP_SAMPLE /  first bad step: /' >&2 || true
    line="$(grep '^BENCH_SETUP ' "$out" || true)"
    [[ -n "$line" ]] || { cat "$out" >&2; die "setup_lat produced no BENCH_SETUP line"; }
    (( $(kv errors "$line") == 0 )) || { any_errors=1; log "[$gw_kind setup] ERRORS: $line"; }
    setup_rows+=("| $1 | $(kv sessions "$line") | $(kv p50_us "$line") | $(kv p90_us "$line") | $(kv p99_us "$line") | $(kv max_us "$line") | $(kv errors "$line") |")
    printf 'setup\t%s\t%s\t1\t\t%s\t%s\t\t\t\t\t\t%s\t\n' "setup" "$2" "$(kv p50_us "$line")" "$(kv p99_us "$line")" "$(kv errors "$line")" >>"$data"
    log "[$gw_kind setup] $line"
}
gw_variant="dedicated pool"
setup_run "Switchyard, dedicated pool (default: 1 warm spare, spawned but not initialized)" switchyard
gw_variant=""

stop_gateway
reap_children

write_config() { # write_config FILE POOL_YAML [TLS]
    {
        echo "listen:"
        echo "  - address: \"127.0.0.1:0\""
        [[ "${3:-}" == tls ]] && echo "    tls: {cert: \"$tmp/cert.pem\", key: \"$tmp/key.pem\"}"
        echo "servers:"
        echo "  demo:"
        echo "    command: \"$SWITCHYARD_BIN\""
        echo "    args: [\"demo-server\"]"
        echo "    pool: $2"
        echo "limits:"
        echo "  max_sessions: $MAX_SESSIONS"
    } >"$1"
}

# ---------------------------------------------------------------- 7a. Switchyard shared pool vs dedicated
if [[ "$SHARED_POOL" != 0 ]]; then
    write_config "$tmp/shared.yaml" "{mode: shared, min_idle: 2}"
    start_gateway --config "$tmp/shared.yaml" "${GW_EXTRA[@]}"
    gw_variant="shared pool"
    sanity_check
    http_runs "shttp-per-conn" per-conn "$DURATION" "$WARMUP" 64
    setup_run "Switchyard, shared pool (\`pool: {mode: shared, min_idle: 2}\`)" switchyard-shared-pool
    gw_variant=""
    stop_gateway
    reap_children
fi

# ---------------------------------------------------------------- 7a2. 1 000 sessions on 4 shared children
# A shared pool capped at SHARED_1K_CHILDREN children × (SESSIONS / CHILDREN) sessions each, with the admin
# listener; sse_load drives SESSIONS legacy SSE sessions at once while GET /pools (and once GET /children) is
# read every 0.5 s, to check that the pool really held that many sessions on exactly that many children.
shared1k_note=""
declare -a shared1k_verdicts=()
admin_port=""
wait_admin_port() { # sets admin_port from the gateway log ('msg=admin_listening address=HOST:PORT')
    local line
    admin_port=""
    for _ in $(seq 1 100); do
        if line="$(grep -m1 'msg=admin_listening' "$gw_log" 2>/dev/null)"; then
            [[ "$line" =~ address=[^[:space:]]*:([0-9]+) ]] && admin_port="${BASH_REMATCH[1]}"
            break
        fi
        sleep 0.05
    done
    [[ -n "$admin_port" ]]
}
admin_get() { curl -sS --max-time 2 "http://127.0.0.1:$admin_port$1" 2>/dev/null || echo "curl-failed"; }
# pools_field JSON -> "children=N active=A sessions=S busy_rejections=B timeouts=T" for pool "demo"
pools_field() {
    python3 -c '
import json, sys
try:
    d = json.loads(sys.argv[1]); p = [x for x in d["pools"] if x["server"] == "demo"][0]; c = p["children"]
    print("children=%d active=%d sessions=%d busy_rejections=%d timeouts=%d queued=%d" % (c["spawning"] + c["idle"] + c["active"] + c["draining"],
          c["active"], p["sessions"], p["totals"]["busy_rejections"], p["totals"]["timeouts"], p["queued_requests"]))
except Exception as e:
    print("unparsable=1")' "$1"
}
if [[ "$SHARED_1K" != 0 ]]; then
    s1k=$SHARED_1K_SESSIONS; c1k=$SHARED_1K_CHILDREN; per1k=$((SHARED_1K_SESSIONS / SHARED_1K_CHILDREN))
    if ((nofile < 2 * s1k + 200)); then
        shared1k_note="$s1k-session shared-pool run skipped: file limit $nofile is below 2 × $s1k + 200"
    elif ((s1k + 10 > MAX_SESSIONS)); then
        shared1k_note="$s1k-session shared-pool run skipped: BENCH_MAX_SESSIONS=$MAX_SESSIONS is below $s1k + 10"
    else
        write_config "$tmp/shared1k.yaml" "{mode: shared, min_idle: $c1k, max_children: $c1k, max_sessions_per_child: $per1k}"
        echo 'admin: {address: "127.0.0.1:0"}' >>"$tmp/shared1k.yaml"
        start_gateway --config "$tmp/shared1k.yaml" "${GW_EXTRA[@]}"
        gw_variant="shared pool, $c1k children × $per1k"
        wait_admin_port || die "gateway with 'admin: {address: \"127.0.0.1:0\"}' did not log 'msg=admin_listening address=HOST:PORT'"
        log "[shared-1k] admin listener on 127.0.0.1:$admin_port"
        # children come up initialized (min_idle = max_children)
        for _ in $(seq 1 100); do
            [[ "$(kv children "$(pools_field "$(admin_get /pools)")")" == "$c1k" ]] && break
            sleep 0.1
        done
        # same sanity check as the other legacy SSE runs (one session, 0.3 s)
        run_sse_load "$tmp/sse.out" 45 load -p "$port" -c 1 -d 0.3 -w 0 -x "$TEXT" -g "$gw_pid" \
            || { cat "$tmp/sse.out" >&2; die "sse_load failed"; }
        res="$(grep '^BENCH_SSE ' "$tmp/sse.out" || true)"
        [[ -n "$res" && "$(kv errors "$res")" == 0 && "$(kv requests "$res")" -gt 0 ]] || sse_misbehaves "$tmp/sse.out"
        # the sanity session's stream is closed: its session must be gone before the pool is filled to the brim
        for _ in $(seq 1 50); do
            [[ "$(kv sessions "$(pools_field "$(admin_get /pools)")")" == 0 ]] && break
            sleep 0.1
        done
        before1k="$(pools_field "$(admin_get /pools)")"
        log "[shared-1k] before: $before1k"
        if [[ "$(kv children "$before1k")" != "$c1k" || "$(kv sessions "$before1k")" != 0 ]]; then
            any_errors=1
            shared1k_verdicts+=("- **MISBEHAVES**: request \`GET /pools\` after the sanity session closed; expected $c1k children, 0 sessions; got \`$before1k\`")
            log "DAEMON MISBEHAVES: GET /pools before the $s1k-session run: expected children=$c1k sessions=0, got $before1k"
        fi
        sse_dur="$(to_seconds "$DURATION")"; sse_warm="$(to_seconds "$WARMUP")"
        log "[shared-1k] $s1k legacy SSE sessions on $c1k shared children (GET /sse + keep-alive POST each, $((2 * s1k)) connections), ${sse_warm}s warm-up, ${sse_dur}s; GET /pools every 0.5 s"
        sse_limit=$(awk -v d="$sse_dur" -v w="$sse_warm" 'BEGIN{printf "%d", d+w+45}')
        : >"$tmp/pools.log"
        timeout -k 2 "$sse_limit" "$tmp/sse_load" load -p "$port" -c "$s1k" -d "$sse_dur" -w "$sse_warm" -x "$TEXT" -g "$gw_pid" \
            >"$tmp/sse1k.out" 2>"$tmp/sse1k.out.err" &
        load_pid=$!
        children1k=""
        while kill -0 "$load_pid" 2>/dev/null; do
            # phase "run" once sse_load has set up all sessions (its stderr says so), "setup" before
            phase=setup
            grep -q 'sessions initialized' "$tmp/sse1k.out.err" 2>/dev/null && phase=run
            pj="$(admin_get /pools)"
            kill -0 "$load_pid" 2>/dev/null || break   # sse_load is closing its sessions: not "during the run"
            printf '%s %s %s\n' "$(now_us)" "$phase" "$(pools_field "$pj")" >>"$tmp/pools.log"
            if [[ "$phase" == run && -z "$children1k" ]]; then
                children1k="$(admin_get /children | python3 -c '
import json, sys
try:
    print(" ".join(str(c["sessions"]) for c in json.load(sys.stdin)["children"] if c["server"] == "demo"))
except Exception:
    print("unparsable")')"
            fi
            sleep 0.5
        done
        st=0; wait "$load_pid" || st=$?; load_pid=""
        sed 's/^/  /' "$tmp/sse1k.out.err" >&2 || true
        ((st == 0)) || { cat "$tmp/sse1k.out" >&2; die "sse_load ($s1k sessions) failed (status $st)"; }
        kill -0 "$gw_pid" 2>/dev/null || { sed 's/^/  gateway: /' "$gw_log" >&2; die "gateway exited during the $s1k-session run"; }
        rss=$(rss_of "$gw_pid")
        after1k="$(pools_field "$(admin_get /pools)")"
        sed 's/^/  pools: /' "$tmp/pools.log" >&2
        log "[shared-1k] after: $after1k; sessions per child (GET /children during the run): ${children1k:-not read}"
        res="$(grep '^BENCH_SSE ' "$tmp/sse1k.out" || true)"
        [[ -n "$res" ]] || { cat "$tmp/sse1k.out" >&2; die "sse_load produced no BENCH_SSE line"; }
        grep '^BENCH_SSE_SAMPLE ' "$tmp/sse1k.out" | sed 's/^BENCH_SSE_SAMPLE /  first bad request: /' >&2 || true
        # /pools verdict over the polls taken while all sessions were set up and driven
        read -r n_run n_full n_over max_ch min_ch max_se <<<"$(awk -v c="$c1k" -v s="$s1k" '
            $2 == "run" { n++; ch = $3; se = $5; sub(/.*=/, "", ch); sub(/.*=/, "", se)
                          if (ch == c && se == s) full++
                          if (ch + 0 > c + 0 || se + 0 > s + 0) over++
                          if (n == 1 || ch + 0 > mx) mx = ch + 0; if (n == 1 || ch + 0 < mn) mn = ch + 0; if (se + 0 > ms) ms = se + 0 }
            END { printf "%d %d %d %d %d %d\n", n, full, over, mx, mn, ms }' "$tmp/pools.log")"
        pools_verdict="GET /pools read $n_run times during the run: $n_full showed exactly $c1k children and $s1k sessions (children min $min_ch max $max_ch, sessions max $max_se); sessions per child from GET /children: ${children1k:-not read}"
        expect_children="$(printf "$per1k %.0s" $(seq 1 "$c1k"))"
        if ((n_full >= 1 && n_over == 0 && min_ch == c1k)) && [[ "$children1k " == "$expect_children" ]]; then
            shared1k_verdicts+=("- pool check: $pools_verdict: ok")
            pools_ok="${c1k}/${s1k}"
        else
            any_errors=1
            pools_ok="FAIL"
            shared1k_verdicts+=("- **MISBEHAVES**: request \`GET /pools\` / \`GET /children\` while $s1k sessions run; expected exactly $c1k children holding $s1k sessions ($per1k each); got: $pools_verdict")
            log "DAEMON MISBEHAVES: $pools_verdict (expected $c1k children, $s1k sessions, $per1k per child)"
        fi
        shared1k_verdicts+=("- after the run: \`$after1k\`")
        n=$(kv requests "$res"); errs=$(kv errors "$res"); wall=$(kv wall_us "$res")
        err_note="$errs"
        if ((errs > 0)); then
            any_errors=1
            err_note="$errs (setup $(kv err_setup "$res"), POST $(kv err_post "$res"), answer $(kv err_answer "$res"), closed $(kv err_closed "$res"), timeout $(kv err_timeout "$res"))"
            log "[shared-1k] ERRORS: $res"
        fi
        gw_t=$(kv gw_ticks "$res"); ch_t=$(( $(kv child_ticks "$res") + $(kv gw_reaped_ticks "$res") ))
        gw_us=$(per_req "$gw_t" "$n"); ch_us=$(per_req "$ch_t" "$n")
        gw_pct=$(awk -v x="$gw_t" -v hz="$hz" -v w="$wall" 'BEGIN{printf "%.0f", x/hz*1e6/w*100}')
        lg_pct=$(awk -v x="$(kv self_cpu_us "$res")" -v w="$wall" 'BEGIN{printf "%.0f", x/w*100}')
        sse_rows+=("| $(target_label) | legacy SSE tools/call, $s1k sessions on $c1k shared children (\`/pools\`: ${pools_ok}) | $s1k sessions ($((2 * s1k)) conns) | $(fmt %.0f "$(kv rps "$res")") | $(kv p50_us "$res") | $(kv p99_us "$res") | $gw_us | $ch_us | $gw_pct % | ${rss:-–} | $lg_pct % | $err_note |")
        printf 'sse\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "sse-shared-1k" "switchyard-shared-pool" "$s1k" "$(kv rps "$res")" \
            "$(kv p50_us "$res")" "$(kv p99_us "$res")" "$gw_us" "$ch_us" "$gw_pct" "$lg_pct" "${rss:-}" "$errs" "${sse_dur}s" \
            "children=$c1k per_child=$per1k pools_polls=$n_run pools_full=$n_full pools_ok=$pools_ok" >>"$data"
        log "[shared-1k] $n requests, $(kv rps "$res") req/s, p50 $(kv p50_us "$res") µs, p99 $(kv p99_us "$res") µs, gateway $gw_us µs/req ($gw_pct %), RSS ${rss:-?} KB, children $ch_us µs/req ($(kv child_active "$res") of $(kv child_pids "$res") used CPU), sse_load $lg_pct %, errors $errs"
        for v in "${shared1k_verdicts[@]}"; do log "[shared-1k] ${v#- }"; done
        gw_variant=""
        stop_gateway
        reap_children
    fi
    [[ -n "$shared1k_note" ]] && log "warning: $shared1k_note"
fi

# ---------------------------------------------------------------- 7b. TLS
tls_note=""
"$CC" -O2 -Wall -o "$tmp/raw_echo" "$here/raw_echo.c" -levent_core -levent_extra 2>"$tmp/cc.err" \
    || { cat "$tmp/cc.err" >&2; die "cannot build raw_echo.c (needs libevent-dev)"; }
if [[ "$TLS" != 0 && -n "${TLS_CONNS// /}" ]]; then
    if ! command -v openssl >/dev/null; then
        tls_note="TLS rows skipped: openssl not found"
    elif ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$tmp/key.pem" \
            -out "$tmp/cert.pem" -days 2 -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" 2>"$tmp/openssl.err"; then
        tls_note="TLS rows skipped: openssl could not make a certificate: $(tail -1 "$tmp/openssl.err")"
    else
        scheme=https
        CURL_TLS=(-k)
        write_config "$tmp/tls.yaml" "{mode: dedicated}" tls
        start_gateway --config "$tmp/tls.yaml" "${GW_EXTRA[@]}"
        sanity_check
        # shellcheck disable=SC2086
        http_runs "shttp-tls-per-conn" per-conn "$DURATION" "$WARMUP" $TLS_CONNS
        stop_gateway
        reap_children
        if has_peer raw-echo; then
            if "$CC" -O2 -Wall -DRAW_ECHO_TLS -o "$tmp/raw_echo_tls" "$here/raw_echo.c" -levent_core -levent_extra \
                    -levent_openssl -lssl -lcrypto 2>"$tmp/cc.err"; then
                mv "$tmp/raw_echo" "$tmp/raw_echo_plain"; cp "$tmp/raw_echo_tls" "$tmp/raw_echo"
                start_raw_echo "$tmp/reply.body" tls
                sanity_check
                # shellcheck disable=SC2086
                http_runs "shttp-tls" shared "$DURATION" "$WARMUP" $TLS_CONNS
                stop_gateway
                mv "$tmp/raw_echo_plain" "$tmp/raw_echo"
            else
                tls_note="raw echo over TLS skipped: cannot build with libevent_openssl: $(head -1 "$tmp/cc.err")"
            fi
        fi
        scheme=http
        CURL_TLS=()
    fi
    [[ -n "$tls_note" ]] && log "warning: $tls_note"
fi

# ---------------------------------------------------------------- 7c. raw echo (physical HTTP limit)
# Two floors: the evhttp echo (what a plain libevent HTTP server costs) and the minimal echo (raw events,
# read/write, no evhttp: the same I/O strategy as the gateway's own HTTP layer, so the honest limit).
if has_peer raw-echo; then
    start_raw_echo "$tmp/reply.body"
    sanity_check
    # shellcheck disable=SC2086
    http_runs "shttp" shared "$DURATION" "$WARMUP" $CONNS
    stop_gateway
    gw_variant="minimal"
    start_raw_echo "$tmp/reply.body" minimal
    sanity_check
    # shellcheck disable=SC2086
    http_runs "shttp" shared "$DURATION" "$WARMUP" $CONNS
    stop_gateway
    # The floor with the child hop: the same minimal server, each connection's body piped to its own
    # demo-server child and the child's line sent back (what a gateway with no MCP work at all would cost).
    gw_variant="child"
    start_raw_echo "$tmp/reply.body" child
    sanity_check
    # shellcheck disable=SC2086
    http_runs "shttp" shared "$DURATION" "$WARMUP" $CONNS
    stop_gateway
    reap_children
    gw_variant=""
fi

# ---------------------------------------------------------------- 7d. mcp-proxy
mp_note=""
mp_version=""
declare -a mp_idle_rows=()
ensure_mcp_proxy() { # creates $VENV with mcp-proxy + matplotlib once; sets mp_note on failure
    if [[ -x "$VENV/bin/mcp-proxy" && -f "$VENV/.bench-ok" ]]; then return 0; fi
    log "creating $VENV (pip install $MP_SPEC matplotlib)"
    if ! python3 -m venv "$VENV" >"$tmp/venv.log" 2>&1; then
        mp_note="mcp-proxy not run: python3 -m venv $VENV failed: $(tail -1 "$tmp/venv.log")"
        return 1
    fi
    if ! timeout 300 "$VENV/bin/pip" install -q "$MP_SPEC" matplotlib >"$tmp/pip.log" 2>&1; then
        mp_note="mcp-proxy not run: pip install $MP_SPEC failed: $(grep -m1 -i error "$tmp/pip.log" || tail -1 "$tmp/pip.log")"
        return 1
    fi
    touch "$VENV/.bench-ok"
}
if has_peer mcp-proxy; then
    if ensure_mcp_proxy; then
        mp_version="$("$VENV/bin/pip" show mcp-proxy 2>/dev/null | awk '/^Version:/{print $2}'), mcp $("$VENV/bin/pip" show mcp 2>/dev/null | awk '/^Version:/{print $2}')"
        if start_mcp_proxy; then
            sanity_check
            for mode in $MODES; do
                # shellcheck disable=SC2086
                http_runs "shttp-$mode" "$mode" "$MP_DURATION" "$MP_WARMUP" $CONNS
            done
            if [[ -n "${SSE_SESSIONS// /}" ]]; then
                # shellcheck disable=SC2086
                sse_runs "$MP_DURATION" "$MP_WARMUP" $SSE_SESSIONS
            fi
            setup_run "mcp-proxy $mp_version (one shared child, started with the proxy)" mcp-proxy
            stop_gateway
            reap_children
            if [[ "$MP_IDLE" != 0 ]] && ((nofile >= MP_IDLE + 200)); then
                start_mcp_proxy || die "mcp-proxy did not start again"
                sleep 0.5
                log "[mcp-proxy idle] opening $MP_IDLE idle GET /sse sessions"
                if run_sse_load "$tmp/mpidle.out" 55 idle -p "$port" -g "$gw_pid" -n "$MP_IDLE" -r 0 -b 100 -T 40 -W 10 \
                        -E '/messages/?session_id='; then
                    sed 's/^/  /' "$tmp/mpidle.out" >&2
                    b_rss=$(kv rss_kb "$(grep 'step=base ' "$tmp/mpidle.out")")
                    o_line="$(grep "step=open$MP_IDLE " "$tmp/mpidle.out" || true)"
                    o_rss=$(kv rss_kb "$o_line"); o_open=$(kv open "$o_line")
                    if [[ -n "$b_rss" && -n "$o_rss" && "${o_open:-0}" -gt 0 ]]; then
                        mp_kb=$(awk -v d=$((o_rss - b_rss)) -v n="$o_open" 'BEGIN{printf "%.2f", d/n}')
                        mp_idle_rows+=("| mcp-proxy $mp_version | $o_open | $b_rss | $o_rss | $((o_rss - b_rss)) | $mp_kb | $(kv ms "$o_line") | $(kv errors "$(grep BENCH_IDLE_DONE "$tmp/mpidle.out")") |")
                        printf 'idle\tidle\tmcp-proxy\t%s\t\t\t\t\t\t\t\t%s\t%s\t%s\n' "$o_open" "$o_rss" "$(kv errors "$(grep BENCH_IDLE_DONE "$tmp/mpidle.out")")" "$mp_kb" >>"$data"
                    fi
                else
                    log "warning: mcp-proxy idle step failed"; cat "$tmp/mpidle.out" >&2
                fi
                stop_gateway
                reap_children
            fi
        else
            mp_note="mcp-proxy not run: it did not accept connections on port $port within 30 s (log above)"
            stop_gateway
            reap_children
        fi
    fi
    [[ -n "$mp_note" ]] && log "warning: $mp_note"
fi

# ---------------------------------------------------------------- 6. idle memory per legacy SSE session
declare -a idle_rows=() idle_verdicts=()
declare -A irss=() ifds=() iopen=()
idle_fail=0
idle_note=""
if [[ "$IDLE" != 0 ]]; then
    idle_need="$IDLE_ROUND2"
    IFS=, read -ra idle_targets <<<"$IDLE_STEPS"
    for x in "${idle_targets[@]}"; do ((x > idle_need)) && idle_need=$x; done
    if ((nofile < idle_need + 200)); then
        idle_note="skipped: file limit $nofile (hard limit) is below $idle_need sessions + 200"
        log "warning: idle memory step $idle_note"
    elif ((idle_need + 100 > MAX_SESSIONS)); then
        idle_note="skipped: BENCH_MAX_SESSIONS=$MAX_SESSIONS is below $idle_need sessions + 100"
        log "warning: idle memory step $idle_note"
    else
        # a fresh gateway, so earlier runs' freed heap does not absorb the sessions' allocations
        idle_t0=$(now_us)
        log "[idle] restarting the gateway for the idle-session memory step"
        stop_gateway
        reap_children
        start_gateway
        sleep 0.5
        log "[idle] opening $IDLE_STEPS idle GET /sse sessions (at most $IDLE_BATCH connecting at a time), closing, then $IDLE_ROUND2 again"
        run_sse_load "$tmp/idle.out" 55 idle -p "$port" -g "$gw_pid" -n "$IDLE_STEPS" -r "$IDLE_ROUND2" \
            -b "$IDLE_BATCH" -T 30 -W 10 || { cat "$tmp/idle.out" >&2; die "sse_load idle failed"; }
        idle_secs=$(awk -v t=$(( $(now_us) - idle_t0 )) 'BEGIN{printf "%.1f", t/1e6}')
        kill -0 "$gw_pid" 2>/dev/null || { sed 's/^/  gateway: /' "$gw_log" >&2; die "gateway exited during the idle-session step"; }
        sed 's/^/  /' "$tmp/idle.out" >&2
        done_line="$(grep '^BENCH_IDLE_DONE ' "$tmp/idle.out" || true)"
        [[ -n "$done_line" ]] || die "sse_load idle produced no BENCH_IDLE_DONE line"
        grep '^BENCH_SSE_SAMPLE ' "$tmp/idle.out" | sed 's/^BENCH_SSE_SAMPLE /  first bad request: /' >&2 || true
        declare -A irss=() ifds=() iopen=()
        base_rss=""; max_step=""; round2_step=""
        while read -r line; do
            st=$(kv step "$line")
            irss[$st]=$(kv rss_kb "$line"); ifds[$st]=$(kv fds "$line"); iopen[$st]=$(kv open "$line")
            [[ "$st" == base ]] && base_rss=${irss[$st]}
            case "$st" in
                pre) what="before warm-up (fresh gateway)" ;;
                warmup) what="after opening and closing 10 sessions (one-time costs)" ;;
                base) what="baseline" ;;
                open*) what="$(kv open "$line") idle sessions open"; max_step=$st ;;
                closed1) what="all closed" ;;
                round2_open*) what="round 2: $(kv open "$line") idle sessions open"; round2_step=$st ;;
                closed2) what="round 2: all closed" ;;
                settled) what="3 s after the last close (freed memory handed back)" ;;
                *) what="$st" ;;
            esac
            if [[ -n "$base_rss" && "$st" != pre && "$st" != warmup ]]; then
                delta=$(( irss[$st] - base_rss ))
                per="–"
                ((iopen[$st] > 0)) && per=$(awk -v d="$delta" -v n="${iopen[$st]}" 'BEGIN{printf "%.2f", d/n}')
                idle_rows+=("| $what | ${iopen[$st]} | ${irss[$st]} | $delta | $per | ${ifds[$st]} | $(kv ms "$line") |")
                if [[ "$st" == open* ]]; then
                    printf 'idle\tidle\tswitchyard\t%s\t\t\t\t\t\t\t\t%s\t\t%s\n' "${iopen[$st]}" "${irss[$st]}" "$per" >>"$data"
                fi
            else
                idle_rows+=("| $what | ${iopen[$st]} | ${irss[$st]} | – | – | ${ifds[$st]} | $(kv ms "$line") |")
            fi
        done < <(grep '^BENCH_IDLE ' "$tmp/idle.out")
        ierr=$(kv errors "$done_line"); iclosed=$(kv server_closed "$done_line")
        if ((ierr > 0 || iclosed > 0)); then
            idle_fail=1
            idle_verdicts+=("- **FAIL**: $ierr sessions could not be opened (connect error, non-200, missing or malformed endpoint event, or 30 s deadline), $iclosed idle streams were closed by the gateway")
        fi
        if [[ -n "$max_step" ]]; then
            kb=$(awk -v d=$(( irss[$max_step] - base_rss )) -v n="${iopen[$max_step]}" 'BEGIN{ if (n>0) printf "%.2f", d/n; else print 0 }')
            if awk -v k="$kb" -v m="$IDLE_KB_MAX" 'BEGIN{exit !(k <= m)}'; then
                idle_verdicts+=("- memory per idle session at ${iopen[$max_step]} sessions: **$kb KB** (target ≤ $IDLE_KB_MAX KB): ok")
            else
                idle_fail=1
                idle_verdicts+=("- memory per idle session at ${iopen[$max_step]} sessions: **$kb KB** (target ≤ $IDLE_KB_MAX KB): **OVER TARGET**")
            fi
            fd_open_delta=$(( ifds[$max_step] - ifds[base] ))
            ((fd_open_delta == iopen[$max_step])) || idle_verdicts+=("- note: $fd_open_delta gateway fds for ${iopen[$max_step]} sessions (expected one each)")
        fi
        # leak check: fds back to the baseline after each round; round 2 must not raise RSS above round 1's peak
        # (glibc keeps freed heap, so RSS does not fall after closing, but a second round reuses it) by more than
        # max(2 MB, 10 % of round 1's growth)
        fd_ok=1
        for st in closed1 closed2; do
            [[ -n "${ifds[$st]:-}" ]] || continue
            (( ifds[$st] <= ifds[base] + 2 )) || fd_ok=0
        done
        if [[ -n "$round2_step" && -n "${irss[closed2]:-}" ]]; then
            growth1=$(( irss[$max_step] - base_rss ))
            thr=$(( growth1 / 10 )); ((thr < 2048)) && thr=2048
            peak1=${irss[$max_step]}; ((irss[closed1] > peak1)) && peak1=${irss[closed1]}
            d_open=$(( irss[$round2_step] - peak1 ))
            d_closed=$(( irss[closed2] - peak1 ))
            rss_ok=1
            ((d_open <= thr && d_closed <= thr)) || rss_ok=0
            verdict="fds $(( ifds[base] )) → ${ifds[closed1]} (round 1 closed) → ${ifds[closed2]} (round 2 closed); RSS vs round 1's peak ($peak1 KB): round 2 open ${d_open} KB, round 2 closed ${d_closed} KB (allowed ≤ $thr KB)"
            if ((fd_ok && rss_ok)); then
                idle_verdicts+=("- leak check: $verdict: ok")
            else
                idle_fail=1
                idle_verdicts+=("- leak check: $verdict: **GROWING (possible leak)**")
            fi
        elif ((!fd_ok)); then
            idle_fail=1
            idle_verdicts+=("- leak check: gateway fds did not return to ${ifds[base]} after closing: **LEAK**")
        fi
        idle_verdicts+=("- whole step: $idle_secs s (gateway restart, warm-up, opening and closing all rounds)")
        for v in "${idle_verdicts[@]}"; do log "[idle] ${v#- }"; done
    fi
fi

# ---------------------------------------------------------------- 6b. idle memory per legacy SSE session over TLS
# A fresh gateway from the TLS config of step 7b (ECDSA P-256 certificate made for this run); tls_idle.py
# (Python asyncio + ssl, verification off) opens TLS_IDLE `GET /sse` streams, reads each up to its endpoint
# event, reads VmRSS / fds, closes them and waits for the fds to return to the baseline.
declare -a tls_idle_rows=() tls_idle_verdicts=()
tls_idle_note=""
tls_idle_fail=0
if [[ "$TLS_IDLE" != 0 && "$TLS" != 0 ]]; then
    if [[ ! -s "$tmp/tls.yaml" || ! -s "$tmp/cert.pem" ]]; then
        tls_idle_note="skipped: no TLS gateway config (${tls_note:-TLS rows not run})"
    elif ! python3 -c 'import ssl, asyncio' 2>/dev/null; then
        tls_idle_note="skipped: python3 with the ssl module not found"
    elif ((nofile < TLS_IDLE + 200)); then
        tls_idle_note="skipped: file limit $nofile is below $TLS_IDLE sessions + 200"
    elif ((TLS_IDLE + 100 > MAX_SESSIONS)); then
        tls_idle_note="skipped: BENCH_MAX_SESSIONS=$MAX_SESSIONS is below $TLS_IDLE sessions + 100"
    else
        tls_idle_t0=$(now_us)
        log "[tls-idle] restarting the gateway with the TLS listener for the idle TLS session memory step"
        stop_gateway
        reap_children
        scheme=https
        start_gateway --config "$tmp/tls.yaml" "${GW_EXTRA[@]}"
        scheme=http
        sleep 0.5
        log "[tls-idle] opening $TLS_IDLE idle TLS GET /sse sessions (at most 100 in the handshake phase at a time), then closing them"
        timeout -k 2 60 python3 "$here/tls_idle.py" -p "$port" -g "$gw_pid" -n "$TLS_IDLE" -b 100 -W 10 -T 30 \
            >"$tmp/tlsidle.out" 2>"$tmp/tlsidle.err" &
        load_pid=$!
        st=0; wait "$load_pid" || st=$?; load_pid=""
        sed 's/^/  /' "$tmp/tlsidle.err" >&2 || true
        sed 's/^/  /' "$tmp/tlsidle.out" >&2 || true
        ((st == 0)) || die "tls_idle.py failed (status $st)"
        kill -0 "$gw_pid" 2>/dev/null || { sed 's/^/  gateway: /' "$gw_log" >&2; die "gateway exited during the idle TLS session step"; }
        tls_done="$(grep '^BENCH_IDLE_DONE ' "$tmp/tlsidle.out" || true)"
        [[ -n "$tls_done" ]] || die "tls_idle.py produced no BENCH_IDLE_DONE line"
        grep '^BENCH_SSE_SAMPLE ' "$tmp/tlsidle.out" | sed 's/^BENCH_SSE_SAMPLE /  first bad request: /' >&2 || true
        t_base="$(grep '^BENCH_IDLE step=base ' "$tmp/tlsidle.out" || true)"
        t_open="$(grep "^BENCH_IDLE step=open$TLS_IDLE " "$tmp/tlsidle.out" || true)"
        t_closed="$(grep '^BENCH_IDLE step=closed1 ' "$tmp/tlsidle.out" || true)"
        [[ -n "$t_base" && -n "$t_open" && -n "$t_closed" ]] || die "tls_idle.py output incomplete"
        tb_rss=$(kv rss_kb "$t_base"); to_rss=$(kv rss_kb "$t_open"); tc_rss=$(kv rss_kb "$t_closed")
        tb_fds=$(kv fds "$t_base"); to_fds=$(kv fds "$t_open"); tc_fds=$(kv fds "$t_closed"); to_n=$(kv open "$t_open")
        tls_kb=$(awk -v d=$((to_rss - tb_rss)) -v n="$to_n" 'BEGIN{ if (n>0) printf "%.2f", d/n; else print "–" }')
        # the plain figure at the same count, from step 6 (fresh plain gateway, same warm-up)
        plain_kb="–"
        if [[ -n "${irss[open$TLS_IDLE]:-}" && -n "${base_rss:-}" && "${iopen[open$TLS_IDLE]:-0}" -gt 0 ]]; then
            plain_kb=$(awk -v d=$(( irss[open$TLS_IDLE] - base_rss )) -v n="${iopen[open$TLS_IDLE]}" 'BEGIN{printf "%.2f", d/n}')
        fi
        tls_idle_rows+=("| baseline (after opening and closing 10 TLS sessions) | 0 | $tb_rss | – | – | $tb_fds | – |")
        tls_idle_rows+=("| $to_n idle TLS sessions open | $to_n | $to_rss | $((to_rss - tb_rss)) | $tls_kb | $to_fds | $(kv ms "$t_open") |")
        tls_idle_rows+=("| all closed | 0 | $tc_rss | $((tc_rss - tb_rss)) | – | $tc_fds | $(kv ms "$t_closed") |")
        printf 'idle\tidle-tls\tswitchyard\t%s\t\t\t\t\t\t\t\t%s\t%s\t%s\t%s\n' "$to_n" "$to_rss" "$(kv errors "$tls_done")" "$tls_kb" "plain_kb=$plain_kb" >>"$data"
        tls_idle_verdicts+=("- memory per idle TLS session at $to_n sessions: **$tls_kb KB**; plain (step above, $TLS_IDLE sessions): **$plain_kb KB**; libevent notes §3.3: ≈ 20 KB per idle TLS SSE stream (no target)")
        terr=$(kv errors "$tls_done"); tclosed=$(kv server_closed "$tls_done")
        if ((terr > 0 || tclosed > 0)); then
            tls_idle_fail=1
            tls_idle_verdicts+=("- **FAIL**: $terr TLS sessions could not be opened (handshake, non-200, missing or malformed endpoint event, or 30 s deadline), $tclosed idle TLS streams were closed by the gateway")
        fi
        if ((tc_fds <= tb_fds + 2)); then
            tls_idle_verdicts+=("- fds: $tb_fds (baseline) → $to_fds ($to_n open) → $tc_fds (all closed): ok")
        else
            tls_idle_fail=1
            tls_idle_verdicts+=("- fds: $tb_fds (baseline) → $to_fds ($to_n open) → $tc_fds after closing (10 s wait): **LEAK** (expected ≤ $((tb_fds + 2)))")
        fi
        ((to_fds - tb_fds == to_n)) || tls_idle_verdicts+=("- note: $((to_fds - tb_fds)) gateway fds for $to_n TLS sessions (expected one each)")
        tls_idle_verdicts+=("- whole step: $(awk -v t=$(( $(now_us) - tls_idle_t0 )) 'BEGIN{printf "%.1f", t/1e6}') s (gateway restart, warm-up, opening and closing)")
        for v in "${tls_idle_verdicts[@]}"; do log "[tls-idle] ${v#- }"; done
    fi
    [[ -n "$tls_idle_note" ]] && log "warning: idle TLS step $tls_idle_note"
fi

for f in "$tmp"/gateway.*.out; do
    if [[ -s "$f" ]]; then
        log "warning: the gateway wrote to stdout (contract: nothing on stdout): $(head -c 300 "$f" | tr '\n' ' ')"
    fi
done
warn_lines="$(cat "$tmp"/gateway.*.log | grep -c 'level=\(warn\|error\)' || true)"
if ((warn_lines > 0)); then
    log "gateway logged $warn_lines warn/error lines; first ones:"
    cat "$tmp"/gateway.*.log | grep 'level=\(warn\|error\)' | head -5 | sed 's/^/  gateway: /' >&2
fi

# ---------------------------------------------------------------- 5. report
pipe_row() { # pipe_row LABEL PIPE_RTT_LINE
    echo "| – | $1 | 1 | $(fmt %.0f "$(kv rps "$2")") | $(fmt %.0f "$(kv p50_us "$2")") | $(fmt %.0f "$(kv p99_us "$2")") | – | $(kv child_cpu_us_per_req "$2") | – | – | $(fmt %.0f "$(kv self_cpu_pct "$2")") % | 0 |"
}

commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty="$(git -C "$root" status --porcelain 2>/dev/null | grep -q . && echo ' (dirty)' || true)"
cpu_model="$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || echo unknown)"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"

report="$tmp/report.md"
{
    echo "# Switchyard benchmark $stamp"
    echo
    echo "- commit \`$commit\`$dirty, binary \`$SWITCHYARD_BIN\` (gateway flags: \`${GW_ARGS[*]}\`, file limit $nofile)"
    echo "- host: $(nproc) CPUs ($cpu_model), Linux $(uname -r); gateway, children and load generator share the CPUs (not pinned)"
    echo "- load: wrk $wrk_version, \`-d$DURATION\` after a \`$WARMUP\` warm-up, \`-t1\` for 1 connection and \`-t2\` otherwise, keep-alive;"
    echo "  POST /mcp \`tools/call\` echo (\`\"$TEXT\"\`), \`MCP-Protocol-Version: $PROTO\`; answers are SSE"
    echo "- p50/p99: round-trip latency in µs (wrk's histogram; pipe_rtt: write request line → read response line)"
    echo "- CPU µs/req: utime+stime delta from /proc/PID/stat (${hz} Hz ticks) over the run ÷ completed requests;"
    echo "  \"child\" = all descendants of the gateway (the demo-server children); gateway and wrk CPU % are of one core"
    echo "- pipe baseline: up to $PIPE_N (at most 5 s) sequential requests to one \`$SWITCHYARD_BIN demo-server\`; its load-generator column is pipe_rtt's own CPU"
    if ((${#sse_rows[@]})); then
        echo "- legacy SSE (2024-11-05): sse_load, per session one \`GET /sse\` stream + one keep-alive \`POST /messages?sessionId=…\` connection,"
        echo "  \`initialize\` + \`notifications/initialized\`, then \`tools/call\` echo with one request in flight per session (next POST after"
        echo "  the answer arrived on the stream and the POST's 202); $(to_seconds "$DURATION")s after a $(to_seconds "$WARMUP")s warm-up; p50/p99 = POST written → \`event: message\`"
        echo "  with that id read from the stream; CPU from /proc over the measured window; load gen column = sse_load's own CPU"
    fi
    echo
    echo "- peers in the same run: mcp-proxy ${mp_version:-–} (\`--log-level WARNING\`, \`-- $SWITCHYARD_BIN demo-server\`; its HTTP and SSE runs"
    echo "  use \`-d$MP_DURATION\` after \`$MP_WARMUP\`), raw echo = Tests/Bench/raw_echo.c (libevent evhttp, backlog 4096, TCP_NODELAY)"
    echo "  answering every POST /mcp with the gateway's exact reply bytes (chunked \`event: message\` SSE, no MCP work)"
    echo "- TLS rows: ECDSA P-256 self-signed certificate made with openssl for this run; wrk over https (TLS 1.3), keep-alive"
    echo "  (the handshake is paid once per connection)"
    [[ -n "${mp_note:-}" ]] && echo "- **$mp_note**"
    [[ -n "${tls_note:-}" ]] && echo "- $tls_note"
    echo "- gateway = the process under load (Switchyard, mcp-proxy's Python process, or raw_echo); child = its descendants;"
    echo "  gateway RSS = its VmRSS right after the run"
    echo
    echo "| server | scenario | connections | req/s | p50 µs | p99 µs | gateway CPU µs/req | child CPU µs/req | gateway CPU % | gateway RSS KB | load gen CPU % | errors |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    pipe_row "pipe baseline: direct stdio to \`demo-server\` (pipe_rtt)" "$pipe_line"
    if [[ -n "$pipe_pinned_line" ]]; then
        pipe_row "pipe baseline, pipe_rtt + child pinned to CPU 0" "$pipe_pinned_line"
    fi
    printf '%s\n' "${rows[@]}"
    ((${#sse_rows[@]})) && printf '%s\n' "${sse_rows[@]}"
    if ((${#shared1k_verdicts[@]})) || [[ -n "${shared1k_note:-}" ]]; then
        echo
        echo "## $SHARED_1K_SESSIONS sessions on $SHARED_1K_CHILDREN shared children"
        echo
        if [[ -n "${shared1k_note:-}" ]]; then
            echo "- $shared1k_note"
        else
            echo "- gateway from a config with \`servers.demo.pool: {mode: shared, min_idle: $SHARED_1K_CHILDREN, max_children: $SHARED_1K_CHILDREN,"
            echo "  max_sessions_per_child: $((SHARED_1K_SESSIONS / SHARED_1K_CHILDREN))}\` and \`admin: {address: \"127.0.0.1:0\"}\`; sse_load opens $SHARED_1K_SESSIONS legacy SSE"
            echo "  sessions at once (\`GET /sse\` + keep-alive POST connection each) and drives them as in the legacy SSE rows"
            echo "  ($(to_seconds "$DURATION")s after $(to_seconds "$WARMUP")s, one request in flight per session); its row is in the table above"
            echo "- \`GET /pools\` every 0.5 s while sse_load runs (after all sessions were initialized), \`GET /children\` once"
            printf '%s\n' "${shared1k_verdicts[@]}"
        fi
    fi
    if ((${#setup_rows[@]})); then
        echo
        echo "## Session setup latency"
        echo
        echo "- setup_lat: $SETUP_N sequential sessions (after 10 warm-up sessions) on one keep-alive connection; per session"
        echo "  \`initialize\` → \`notifications/initialized\` (202) → \`tools/call\` echo answer, timed from the first byte"
        echo "  sent to the tool result read; then \`DELETE\` (not timed)"
        echo
        echo "| server | sessions | p50 µs | p90 µs | p99 µs | max µs | errors |"
        echo "|---|---|---|---|---|---|---|"
        printf '%s\n' "${setup_rows[@]}"
    fi
    if [[ "$IDLE" != 0 ]]; then
        echo
        echo "## Idle legacy SSE sessions: gateway memory"
        echo
        if [[ -n "$idle_note" ]]; then
            echo "- $idle_note"
        else
            echo "- fresh gateway (\`${GW_ARGS[*]}\`); sse_load opens \`GET /sse\` connections (at most $IDLE_BATCH connecting at a time), reads"
            echo "  each up to its \`event: endpoint\` and leaves it idle (no \`initialize\`, so no child); steps $IDLE_STEPS (cumulative),"
            echo "  close all, then round 2: $IDLE_ROUND2 opened and closed. VmRSS from /proc/PID/status and fd count from /proc/PID/fd,"
            echo "  read 0.3 s after each step (after closing: once the fd count is back to the baseline, at most 10 s)."
            echo "  Δ and KB/session are against the baseline taken after a warm-up of 10 sessions (first-connection costs excluded)."
            echo
            echo "| step | sessions open | gateway VmRSS KB | Δ RSS KB | KB/session | gateway fds | step ms |"
            echo "|---|---|---|---|---|---|---|"
            printf '%s\n' "${idle_rows[@]}"
            echo
            printf '%s\n' "${idle_verdicts[@]}"
        fi
    fi
    if ((${#tls_idle_rows[@]})) || [[ -n "$tls_idle_note" ]]; then
        echo
        echo "## Idle legacy SSE sessions over TLS: gateway memory"
        echo
        if [[ -n "$tls_idle_note" ]]; then
            echo "- $tls_idle_note"
        else
            echo "- fresh gateway from the TLS config (\`listen: [{address: \"127.0.0.1:0\", tls: {cert, key}}]\`, ECDSA P-256, the gateway sets"
            echo "  \`SSL_MODE_RELEASE_BUFFERS\`); tls_idle.py (Python asyncio + ssl, no verification) opens $TLS_IDLE TLS connections (at most 100"
            echo "  in the handshake phase at a time), each \`GET /sse\` read up to its \`event: endpoint\`, then idle; VmRSS and fds 0.3 s"
            echo "  after opening; then all closed (read again once fds are back to the baseline, at most 10 s). Baseline after"
            echo "  opening and closing 10 TLS sessions (first handshake and lazy OpenSSL initialisation excluded)."
            echo
            echo "| step | sessions open | gateway VmRSS KB | Δ RSS KB | KB/session | gateway fds | step ms |"
            echo "|---|---|---|---|---|---|---|"
            printf '%s\n' "${tls_idle_rows[@]}"
            echo
            printf '%s\n' "${tls_idle_verdicts[@]}"
        fi
    fi
    if ((${#mp_idle_rows[@]})); then
        echo
        echo "mcp-proxy, fresh process, same method (10 warm-up sessions, at most 100 connecting at a time, no round 2):"
        echo
        echo "| server | idle sessions | base VmRSS KB | VmRSS KB | Δ RSS KB | KB/session | open ms | errors |"
        echo "|---|---|---|---|---|---|---|---|"
        printf '%s\n' "${mp_idle_rows[@]}"
    fi
} >"$report"

mkdir -p "$root/results"
cp "$data" "$root/results/bench-$stamp.tsv"
# side-by-side comparison with ratios and targets, and the chart (matplotlib from the bench venv)
py=python3
[[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null && py="$VENV/bin/python"
if "$py" "$here/compare.py" "$data" "$root/results/bench-$stamp.png" >"$tmp/compare.md" 2>"$tmp/compare.err"; then
    { echo; cat "$tmp/compare.md"; } >>"$report"
else
    log "warning: compare.py failed: $(tail -3 "$tmp/compare.err")"
fi
sed 's/^/  /' "$tmp/compare.err" >&2 || true

echo
cat "$report"
cp "$report" "$root/results/bench-$stamp.md"
echo
log "written to results/bench-$stamp.md (raw data: results/bench-$stamp.tsv)"
[[ -f "$root/results/bench-$stamp.png" ]] && log "chart: results/bench-$stamp.png"

if ((any_errors)) && [[ "${BENCH_ALLOW_ERRORS:-0}" != 1 ]]; then
    die "some requests failed (see the errors column and the messages above)"
fi
if ((tls_idle_fail)) && [[ "${BENCH_ALLOW_ERRORS:-0}" != 1 ]]; then
    die "idle TLS session step failed: sessions not opened, streams closed by the gateway, or fds not back (see the TLS idle table)"
fi
if ((idle_fail)) && [[ "${BENCH_ALLOW_ERRORS:-0}" != 1 ]]; then
    die "idle-session step failed: errors, memory over target or a leak (see the idle table above)"
fi
