#!/usr/bin/env bash
# Benchmark of `tokenhub gateway` against a minimal fast upstream on the same machine
# (examples/fast_upstream.rs), through the gateway and direct, in one run:
#
#   scripts/bench-gateway.sh [duration_seconds] [streams]
#
# 1. Added latency at one connection (wrk -c1): p50 and p99 through the gateway minus direct.
# 2. Throughput at 32 connections, every request metered: requests/s through the gateway and
#    direct, their ratio, and the gateway's CPU time per proxied request (from /proc).
# 3. Many slow streams (examples/stream_load.rs): `streams` (default 2000) concurrent streaming
#    requests, a chunk every 100 ms for 10 s: how many completed, time to first byte, and the
#    gateway's memory per open stream.
#
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
[ -n "${TOKENHUB_BIN:-}" ] || cargo build --release --quiet --bin tokenhub --example fast_upstream --example stream_load
export GATEWAY_ALLOW_PRIVATE_UPSTREAMS=true
. scripts/scratch-server.sh

UP_PORT=$(free_port)
./target/release/examples/fast_upstream "127.0.0.1:$UP_PORT" 2>/dev/null &
UP_PID=$!
GW_PORT=$(free_port)
DATABASE_URL="$PG/$DB" NATS_URL="nats://127.0.0.1:$NATS_PORT" MASTER_API_KEY="$MASTER" LOG_LEVEL=warn \
  GATEWAY_LISTEN_ADDR="127.0.0.1:$GW_PORT" "${TOKENHUB_BIN:-./target/release/tokenhub}" gateway 2>"$WORK/gateway.log" &
GW_PID=$!
trap 'kill $UP_PID $GW_PID 2>/dev/null || true; cleanup' EXIT

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
TICK=$(getconf CLK_TCK)
pct() { awk -v p="$2" '$1 == p {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; print v}' "$1"; }

echo "1. one connection, ${DURATION}s each (wrk -t1 -c1)"
wrk -t1 -c1 -d"${DURATION}s" --latency -s "$WORK/chat.lua" "http://127.0.0.1:$UP_PORT/v1/chat/completions" >"$WORK/direct1.txt"
wrk -t1 -c1 -d"${DURATION}s" --latency -s "$WORK/chat.lua" "$GW/v1/chat/completions" >"$WORK/gw1.txt"
for p in 50% 99%; do
  d=$(pct "$WORK/direct1.txt" $p); g=$(pct "$WORK/gw1.txt" $p)
  awk -v p=$p -v d="$d" -v g="$g" 'BEGIN { printf "   p%s: direct %.3f ms, through the gateway %.3f ms, added %.3f ms\n", substr(p,1,2), d, g, g - d }'
done

echo "2. 32 connections, ${DURATION}s each (wrk -t1 -c32), every request metered"
wrk -t1 -c32 -d"${DURATION}s" --latency -s "$WORK/chat.lua" "http://127.0.0.1:$UP_PORT/v1/chat/completions" >"$WORK/direct32.txt"
before=$(cpu)
wrk -t1 -c32 -d"${DURATION}s" --latency -s "$WORK/chat.lua" "$GW/v1/chat/completions" >"$WORK/gw32.txt"
after=$(cpu)
d=$(awk '/Requests\/sec/ {print $2}' "$WORK/direct32.txt"); g=$(awk '/Requests\/sec/ {print $2}' "$WORK/gw32.txt")
n=$(awk '/requests in/ {print $1}' "$WORK/gw32.txt")
grep -E "Non-2xx" "$WORK/gw32.txt" || true
awk -v d="$d" -v g="$g" -v a="$after" -v b="$before" -v t="$TICK" -v n="$n" \
  'BEGIN { printf "   direct %.0f req/s, through the gateway %.0f req/s (%.2f x direct); gateway CPU %.0f us per proxied request\n", d, g, g / d, (a - b) * 1e6 / t / n }'

echo "3. $STREAMS concurrent slow streams (a chunk every 100 ms for 10 s)"
./target/release/examples/stream_load --url "$GW/v1/chat/completions" --key "$KEY" --streams "$STREAMS" --pid "$GW_PID" | sed 's/^/   /'
