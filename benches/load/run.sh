#!/usr/bin/env bash
# HTTP load harness: the same axum hello handler bare, behind tower-ratelimit and behind
# tower_governor, each server on one tokio worker thread pinned to core $SERVER_CORE,
# wrk (one thread) pinned to core $LOAD_CORE. Servers are interleaved within each round
# (forward order on odd rounds, reverse on even ones) so drift cancels in the ratios.
#
#   benches/load/run.sh                 # everything, about 4.5 minutes
#   SCENARIOS="allow deny" benches/load/run.sh
#
# Writes target/load/results.csv (one line per run) and target/load/summary.json
# (medians of per-round ratios to bare; benches/load/summarize.py prints the tables).
# Every run is bounded by wrk's -d; the whole harness by the durations below.
#
# Environment: ROUNDS (3), DURATION (2 s per run, whole seconds), CHURN_ROUNDS (2),
# CHURN_DURATION (15 s), CONNS (32), SERVER_CORE (0), LOAD_CORE (1),
# SCENARIOS ("allow deny churn_short churn_long redis_allow redis_deny"), OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-2}
CHURN_ROUNDS=${CHURN_ROUNDS:-2}
CHURN_DURATION=${CHURN_DURATION:-15}
CONNS=${CONNS:-32}
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
SCENARIOS=${SCENARIOS:-"allow deny churn_short churn_long redis_allow redis_deny"}
OUT_DIR=${OUT_DIR:-target/load}

if ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk
fi
case " $SCENARIOS " in
*" redis_"*)
    if ! command -v redis-server >/dev/null; then
        apt-get update -qq && apt-get install -y -qq redis-server
    fi
    ;;
esac

cargo build --release --features axum,redis --example load_server --example redis
SERVER_BIN=target/release/examples/load_server
REDIS_EXAMPLE=target/release/examples/redis

mkdir -p "$OUT_DIR"
CSV="$OUT_DIR/results.csv"
TMP=$(mktemp -d)
SERVER_PID=
REDIS_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

echo "scenario,round,server,requests,duration_s,rps,p50_us,p99_us,non2xx,errors,hwm_kb,rss_start_kb,script_calls" >"$CSV"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

status_kb() { # pid field
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# start_server <server> <scenario>: sets SERVER_PID and PORT.
start_server() {
    local log="$TMP/server.log"
    : >"$log"
    if [ "$1" = redis_example ]; then
        PORT=0 REDIS_URL="redis://127.0.0.1:$REDIS_PORT" taskset -c "$SERVER_CORE" "$REDIS_EXAMPLE" >"$log" 2>&1 &
    else
        PORT=0 REDIS_URL="redis://127.0.0.1:${REDIS_PORT:-6379}" taskset -c "$SERVER_CORE" "$SERVER_BIN" "$1" "$2" >"$log" 2>&1 &
    fi
    SERVER_PID=$!
    for _ in $(seq 100); do
        PORT=$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\)$|\1|p' "$log")
        [ -n "$PORT" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "server $1 $2 did not start:" >&2
    cat "$log" >&2
    exit 1
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

start_redis() {
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no --loglevel warning >"$TMP/redis.log" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 100); do
        redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0
        sleep 0.05
    done
    echo "redis-server did not start" >&2
    exit 1
}

# Script calls (EVALSHA + EVAL + FCALL) since the last CONFIG RESETSTAT.
script_calls() {
    redis-cli -p "$REDIS_PORT" INFO commandstats |
        awk -F'[:=,]' '/^cmdstat_(evalsha|eval|fcall)(_ro)?:/ { n += $3 } END { print n + 0 }'
}

# run_one <scenario> <round> <server>
run_one() {
    local scenario=$1 round=$2 server=$3 kind churn=0 dur=$DURATION calls=
    case $scenario in
    churn_*) churn=1 dur=$CHURN_DURATION kind=$scenario ;;
    redis_allow) kind=allow ;;
    redis_deny) kind=deny ;;
    *) kind=$scenario ;;
    esac
    start_server "$server" "$kind"
    local rss0
    rss0=$(status_kb "$SERVER_PID" VmRSS) || {
        echo "server $server ($scenario) exited:" >&2
        cat "$TMP/server.log" >&2
        exit 1
    }
    if [ -n "${REDIS_PORT:-}" ] && [[ $scenario == redis_* ]]; then
        redis-cli -p "$REDIS_PORT" FLUSHDB >/dev/null
        redis-cli -p "$REDIS_PORT" CONFIG RESETSTAT >/dev/null
    fi
    local out
    out=$(WRK_CHURN=$churn taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d"${dur}s" \
        -s benches/load/wrk.lua "http://127.0.0.1:$PORT/" 2>&1) || {
        echo "wrk failed against $server ($scenario): $out" >&2
        cat "$TMP/server.log" >&2
        exit 1
    }
    local hwm
    hwm=$(status_kb "$SERVER_PID" VmHWM)
    if [ -n "${REDIS_PORT:-}" ] && [[ $scenario == redis_* ]]; then
        calls=$(script_calls)
    fi
    stop_server
    local line
    line=$(grep '^RESULT' <<<"$out") || {
        echo "wrk gave no result for $scenario/$server:" >&2
        echo "$out" >&2
        exit 1
    }
    eval "${line#RESULT }"
    # shellcheck disable=SC2154 # set by eval
    python3 - "$scenario" "$round" "$server" "$requests" "$duration_us" "$p50_us" "$p99_us" \
        "$non2xx" "$errors" "$hwm" "$rss0" "$calls" >>"$CSV" <<'EOF'
import sys
sc, rnd, srv, req, dur_us, p50, p99, non2xx, err, hwm, rss0, calls = sys.argv[1:]
dur = int(dur_us) / 1e6
print(f"{sc},{rnd},{srv},{req},{dur:.3f},{int(req) / dur:.0f},{p50},{p99},{non2xx},{err},{hwm},{rss0},{calls}")
EOF
    tail -n1 "$CSV"
}

servers_of() {
    case $1 in
    allow) echo "bare ours ours_noheaders governor" ;;
    deny | churn_short | churn_long) echo "bare ours governor" ;;
    redis_allow) echo "bare ours redis" ;;
    redis_deny) echo "bare ours redis_example" ;;
    esac
}

for scenario in $SCENARIOS; do
    rounds=$ROUNDS
    [[ $scenario == churn_* ]] && rounds=$CHURN_ROUNDS
    if [[ $scenario == redis_* ]] && [ -z "$REDIS_PID" ]; then
        start_redis
    fi
    read -r -a servers <<<"$(servers_of "$scenario")"
    for round in $(seq "$rounds"); do
        order=("${servers[@]}")
        if ((round % 2 == 0)); then
            order=()
            for ((i = ${#servers[@]} - 1; i >= 0; i--)); do order+=("${servers[i]}"); done
        fi
        for server in "${order[@]}"; do
            run_one "$scenario" "$round" "$server"
        done
    done
done

python3 benches/load/summarize.py "$CSV" "$OUT_DIR/summary.json"
