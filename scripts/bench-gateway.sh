#!/usr/bin/env bash
# Benchmark of `tokenhub gateway` against a minimal fast upstream on the same machine
# (examples/fast_upstream.rs), through the gateway and direct, in one run:
#
#   scripts/bench-gateway.sh [duration_seconds] [streams]
#
# 1. Added latency at one connection (wrk -c1): p50 and p99 through the gateway minus direct.
# 2. Throughput at 32 connections, every request metered: requests/s through the gateway and
#    direct, their ratio, and the gateway's CPU time per proxied request (from /proc). Beside
#    them the floor of any proxy here: examples/bare_proxy.rs, the same server (axum) and
#    client (hyper's pooled client) forwarding with none of the gateway's work (no key, no
#    policy, no metering).
# 3. A fixed rate (examples/paced_load.rs, open loop: a request's time counts from when it was
#    due): RATE (default 1000) requests/s for the duration, direct and through the gateway, every
#    request metered: p50 / p99 / p99.9 and what the gateway adds. At one connection in a closed
#    loop (1.) every component runs flat out on the shared cores; this is the figure without
#    that queueing.
# 4. Many slow streams (examples/stream_load.rs): `streams` (default 2000) concurrent streaming
#    requests, a chunk every 100 ms for 10 s: how many completed, time to first byte, and the
#    gateway's memory per open stream.
#
# PROFILE=dir keeps the wrk outputs, the gateway's log and `perf record` profiles of the gateway
# during 1. and 2. (PERF_ARGS, default -g); NICE_METERING=n runs the server and NATS (every
# thread) at nice n; PIN_METERING=1 runs the server, NATS and PostgreSQL on the last core and
# the gateway, the upstream and the load on the others (as when the metering runs on hosts of
# its own).
# Uses a scratch database and a private nats-server (scripts/scratch-server.sh) and leaves
# nothing behind. Needs wrk, curl, python3, nats-server and the local PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-10}
STREAMS=${2:-2000}
DB=tokenhub_gwbench_$$
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || true

echo "building (release)…"
# TOKENHUB_BIN set: the binaries of an earlier release build are used as they are.
# The binary alone first: built together with the examples it would take the dev-dependencies'
# features too (reqwest's cookie store on every webhook delivery), which a release does not have.
[ -n "${TOKENHUB_BIN:-}" ] || { cargo build --release --quiet --bin tokenhub \
  && cargo build --release --quiet --example fast_upstream --example stream_load --example paced_load --example bare_proxy; }
# The examples built beside the binary used.
EXAMPLES=$(dirname "${TOKENHUB_BIN:-./target/release/tokenhub}")/examples
export GATEWAY_ALLOW_PRIVATE_UPSTREAMS=true
. scripts/scratch-server.sh

UP_PORT=$(free_port)
"$EXAMPLES"/fast_upstream "127.0.0.1:$UP_PORT" 2>/dev/null &
UP_PID=$!
GW_PORT=$(free_port)
DATABASE_URL="$PG/$DB" NATS_URL="nats://127.0.0.1:$NATS_PORT" MASTER_API_KEY="$MASTER" LOG_LEVEL=warn \
  GATEWAY_LISTEN_ADDR="127.0.0.1:$GW_PORT" "${TOKENHUB_BIN:-./target/release/tokenhub}" gateway 2>"$WORK/gateway.log" &
GW_PID=$!
BARE_PORT=$(free_port)
"$EXAMPLES"/bare_proxy "127.0.0.1:$BARE_PORT" "http://127.0.0.1:$UP_PORT" 2>/dev/null &
BARE_PID=$!
trap 'kill $UP_PID $GW_PID $BARE_PID 2>/dev/null || true; cleanup' EXIT

TENANT=$(admin /admin/tenants '{"name": "Bench", "plan": "enterprise"}' | json tenant_id)
curl -fs -X POST "$BASE/tenant/config" -H "X-Master-Key: $MASTER" -H "X-Tenant-ID: $TENANT" -H 'Content-Type: application/json' \
  -d "{\"providers\": [{\"name\": \"fast\", \"kind\": \"openai\", \"base_url\": \"http://127.0.0.1:$UP_PORT/v1\", \"models\": [\"*\"]}]}" >/dev/null
KEY=$(admin /admin/api-keys "{\"tenant_id\": \"$TENANT\", \"name\": \"bench\", \"tags\": {\"customer_id\": \"acme\"}}" | json api_key)
GW="http://127.0.0.1:$GW_PORT"
for _ in $(seq 1 300); do
  curl -fs "$GW/v1/models" -H "Authorization: Bearer $KEY" >/dev/null 2>&1 && break
  sleep 0.1
done
BODY='{"model": "bench", "max_tokens": 16, "messages": [{"role": "user", "content": "Say hello"}]}'
check=$(curl -fs "$GW/v1/chat/completions" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d "$BODY")
echo "$check" | grep -q '"Hello"' || { echo "the gateway did not forward: $check" >&2; cat "$WORK/gateway.log" >&2; exit 1; }

cat >"$WORK/chat.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
wrk.body = '$BODY'
LUA
cpu() { awk '{print $14 + $15}' "/proc/$GW_PID/stat"; }
# CPU ticks of the other processes a proxied request costs: the server (which ingests the
# usage records), NATS, PostgreSQL (every backend), the upstream.
ticks() { for pid in "$@"; do awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null; done | awk '{s += $1} END {print s + 0}'; }
others() { echo "$(ticks "$SERVER_PID") $(ticks "$NATS_PID") $(ticks $(pgrep -u postgres postgres)) $(ticks "$UP_PID")"; }
TICK=$(getconf CLK_TCK)
# PROFILE=dir: the gateway is sampled with `perf record -g` during each run through it, and
# the wrk outputs and profiles are kept in dir (read with `perf report -i dir/gw32.perf`).
PERF_PID=
profile() { [ -z "${PROFILE:-}" ] || { perf record -q -F 999 ${PERF_ARGS:--g} -p "$GW_PID" -o "$1" -- sleep "$DURATION" >/dev/null 2>&1 & PERF_PID=$!; }; }
wait_profile() { [ -z "$PERF_PID" ] || wait "$PERF_PID" || true; PERF_PID=; }
pct() { awk -v p="$2" '$1 == p {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; print v}' "$1"; }

# PIN_METERING=1: the processes that take the usage records (the server, NATS and PostgreSQL,
# whose affinity is given back at the end) run on the last core, the gateway, the upstream and
# the load on the others: the metering as if on hosts of its own, as in a deployment.
LOAD=()
if [ -n "${PIN_METERING:-}" ]; then
  command -v taskset >/dev/null || { echo "PIN_METERING needs taskset (util-linux)" >&2; exit 1; }
  LAST=$(( $(nproc) - 1 ))
  [ "$LAST" -ge 1 ] || { echo "PIN_METERING needs two cores" >&2; exit 1; }
  pin() { for pid in "$@"; do taskset -a -p -c "$CORES" "$pid" >/dev/null 2>&1 || true; done; }
  CORES=$LAST pin "$SERVER_PID" "$NATS_PID" $(pgrep -u postgres postgres)
  CORES=0-$((LAST - 1)) pin "$GW_PID" "$UP_PID" "$BARE_PID"
  LOAD=(taskset -c "0-$((LAST - 1))")
  trap 'kill $UP_PID $GW_PID $BARE_PID 2>/dev/null || true; CORES=0-$LAST pin $(pgrep -u postgres postgres); cleanup' EXIT
fi

# NICE_METERING=n: the processes that take the usage records (the server and NATS) run at nice
# n, as if on other hosts: what the gateway adds when it does not share cores with them.
# (Every thread: on Linux a nice value is per thread.)
[ -z "${NICE_METERING:-}" ] || renice -n "$NICE_METERING" -p $(ls /proc/"$SERVER_PID"/task; ls /proc/"$NATS_PID"/task) >/dev/null

echo "1. one connection, ${DURATION}s each (wrk -t1 -c1)"
"${LOAD[@]}" wrk -t1 -c1 -d"${DURATION}s" --latency -s "$WORK/chat.lua" "http://127.0.0.1:$UP_PORT/v1/chat/completions" >"$WORK/direct1.txt"
profile "$WORK/gw1.perf"
"${LOAD[@]}" wrk -t1 -c1 -d"${DURATION}s" --latency -s "$WORK/chat.lua" "$GW/v1/chat/completions" >"$WORK/gw1.txt"
wait_profile
for p in 50% 99%; do
  d=$(pct "$WORK/direct1.txt" $p); g=$(pct "$WORK/gw1.txt" $p)
  awk -v p=$p -v d="$d" -v g="$g" 'BEGIN { printf "   p%s: direct %.3f ms, through the gateway %.3f ms, added %.3f ms\n", substr(p,1,2), d, g, g - d }'
done

echo "2. 32 connections, ${DURATION}s each (wrk -t1 -c32), every request metered"
"${LOAD[@]}" wrk -t1 -c32 -d"${DURATION}s" --latency -s "$WORK/chat.lua" "http://127.0.0.1:$UP_PORT/v1/chat/completions" >"$WORK/direct32.txt"
before=$(cpu); others_before=$(others)
profile "$WORK/gw32.perf"
"${LOAD[@]}" wrk -t1 -c32 -d"${DURATION}s" --latency -s "$WORK/chat.lua" "$GW/v1/chat/completions" >"$WORK/gw32.txt"
wait_profile
after=$(cpu); others_after=$(others)
d=$(awk '/Requests\/sec/ {print $2}' "$WORK/direct32.txt"); g=$(awk '/Requests\/sec/ {print $2}' "$WORK/gw32.txt")
n=$(awk '/requests in/ {print $1}' "$WORK/gw32.txt")
grep -E "Non-2xx" "$WORK/gw32.txt" || true
awk -v d="$d" -v g="$g" -v a="$after" -v b="$before" -v t="$TICK" -v n="$n" \
  'BEGIN { printf "   direct %.0f req/s, through the gateway %.0f req/s (%.2f x direct); gateway CPU %.0f us per proxied request\n", d, g, g / d, (a - b) * 1e6 / t / n }'
awk -v b="$others_before" -v a="$others_after" -v t="$TICK" -v n="$n" 'BEGIN {
  split(b, x, " "); split(a, y, " ");
  printf "   CPU per proxied request elsewhere: server %.0f us, NATS %.0f us, PostgreSQL %.0f us, upstream %.0f us\n",
    (y[1]-x[1])*1e6/t/n, (y[2]-x[2])*1e6/t/n, (y[3]-x[3])*1e6/t/n, (y[4]-x[4])*1e6/t/n }'

bare_before=$(ticks "$BARE_PID")
"${LOAD[@]}" wrk -t1 -c32 -d"${DURATION}s" --latency -s "$WORK/chat.lua" "http://127.0.0.1:$BARE_PORT/v1/chat/completions" >"$WORK/bare32.txt"
bare_after=$(ticks "$BARE_PID")
b=$(awk '/Requests\/sec/ {print $2}' "$WORK/bare32.txt"); bn=$(awk '/requests in/ {print $1}' "$WORK/bare32.txt")
awk -v d="$d" -v b="$b" -v g="$g" -v a="$bare_after" -v s="$bare_before" -v t="$TICK" -v n="$bn" \
  'BEGIN { printf "   the floor, a bare proxy on the same libraries (examples/bare_proxy.rs): %.0f req/s (%.2f x direct; the gateway %.2f x it), %.0f us of CPU per request\n", b, b / d, g / b, (a - s) * 1e6 / t / n }'

[ -z "${PROFILE:-}" ] || { mkdir -p "$PROFILE"; cp "$WORK"/*.txt "$WORK"/*.perf "$WORK"/gateway.log "$PROFILE"/; }

RATE=${RATE:-1000}
echo "3. a fixed rate: $RATE requests/s for ${DURATION}s (open loop), every request metered"
paced() { "${LOAD[@]}" "$EXAMPLES"/paced_load --url "$1" --body "$BODY" --key "$KEY" --rate "$RATE" --seconds "$DURATION"; }
paced "http://127.0.0.1:$UP_PORT/v1/chat/completions" >"$WORK/paced-direct.txt"
paced "$GW/v1/chat/completions" >"$WORK/paced-gw.txt"
sed 's/^/   direct: /' "$WORK/paced-direct.txt"
sed 's/^/   gateway: /' "$WORK/paced-gw.txt"
field() { sed -E "s/.* $1 ([0-9.]+) ms.*/\1/" "$2"; }
for q in p50 p99 p99.9; do
  awk -v q=$q -v d="$(field $q "$WORK/paced-direct.txt")" -v g="$(field $q "$WORK/paced-gw.txt")" \
    'BEGIN { printf "   %s added: %.3f ms\n", q, g - d }'
done

echo "4. $STREAMS concurrent slow streams (a chunk every 100 ms for 10 s)"
"${LOAD[@]}" "$EXAMPLES"/stream_load --url "$GW/v1/chat/completions" --key "$KEY" --streams "$STREAMS" --pid "$GW_PID" | sed 's/^/   /'
