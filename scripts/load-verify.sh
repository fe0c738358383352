#!/usr/bin/env bash
# Load test of the verify hot path: POST /v1/keys/verify against GET /healthz (an empty
# handler of the same server, same middleware), same wrk settings, and prints the ratio.
#
#   scripts/load-verify.sh [duration_seconds] [connections]
#
# Uses a scratch database (dropped afterwards) and a private nats-server on a free port, so it
# leaves nothing behind. Needs wrk (apt-get install wrk), curl, python3, nats-server, and the
# local PostgreSQL (DATABASE_ADMIN_URL, default postgres://postgres@127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-10}
CONNECTIONS=${2:-32}
PG=${DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432}
DB=tokenhub_load_$$
MASTER=load-test-master-key-$$
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
NATS_BIN=$(command -v nats-server || echo /usr/sbin/nats-server)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
NATS_PORT=$(free_port)
WORK=$(mktemp -d)

cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  [ -n "${NATS_PID:-}" ] && kill "$NATS_PID" 2>/dev/null || true
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "building (release)…"
cargo build --release --quiet

"$NATS_BIN" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$WORK/nats" >/dev/null 2>&1 &
NATS_PID=$!

DATABASE_URL="$PG/$DB" NATS_URL="nats://127.0.0.1:$NATS_PORT" MASTER_API_KEY="$MASTER" \
  LISTEN_ADDR="127.0.0.1:$PORT" LOG_LEVEL=warn ./target/release/tokenhub serve 2>"$WORK/server.log" &
SERVER_PID=$!
BASE="http://127.0.0.1:$PORT"
ready=0
for _ in $(seq 1 300); do curl -fs "$BASE/readyz" >/dev/null 2>&1 && { ready=1; break; }; sleep 0.1; done
[ "$ready" = 1 ] || { echo "server did not become ready:" >&2; cat "$WORK/server.log" >&2; exit 1; }

json() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
TENANT=$(curl -fs -X POST "$BASE/admin/tenants" -H "X-Master-Key: $MASTER" -H 'Content-Type: application/json' \
  -d '{"name": "Load", "plan": "enterprise"}' | json tenant_id)
GATEWAY=$(curl -fs -X POST "$BASE/admin/platform-keys" -H "X-Master-Key: $MASTER" -H 'Content-Type: application/json' \
  -d '{"name": "load gateway", "role": "gateway"}' | json api_key)
KEY=$(curl -fs -X POST "$BASE/admin/api-keys" -H "X-Master-Key: $MASTER" -H 'Content-Type: application/json' \
  -d "{\"tenant_id\": \"$TENANT\", \"name\": \"load\", \"tags\": {\"customer_id\": \"acme\"}, \"allowed_models\": [\"gpt-4o\"]}" | json api_key)

cat >"$WORK/verify.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $GATEWAY"
wrk.body = '{"key": "$KEY", "ip": "203.0.113.7", "model": "gpt-4o"}'
LUA
check=$(curl -fs -X POST "$BASE/v1/keys/verify" -H "Authorization: Bearer $GATEWAY" -H 'Content-Type: application/json' \
  -d "{\"key\": \"$KEY\", \"model\": \"gpt-4o\"}" | json code)
[ "$check" = VALID ] || { echo "verify did not answer VALID: $check" >&2; exit 1; }

rps() { awk '/Requests\/sec/ {print $2}'; }
echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s on $(nproc) cores (wrk shares them with the server)"
EMPTY=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "$BASE/healthz" | tee "$WORK/empty.txt" | rps)
VERIFY=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$WORK/verify.lua" "$BASE/v1/keys/verify" | tee "$WORK/verify.txt" | rps)
grep -E "Latency|Non-2xx" "$WORK/empty.txt" | sed 's/^/  empty  /'
grep -E "Latency|Non-2xx" "$WORK/verify.txt" | sed 's/^/  verify /'
python3 - "$EMPTY" "$VERIFY" <<'PY'
import sys
empty, verify = float(sys.argv[1]), float(sys.argv[2])
print(f"empty handler (GET /healthz):        {empty:10.0f} req/s")
print(f"verify (POST /v1/keys/verify):       {verify:10.0f} req/s")
print(f"ratio verify / empty:                {verify / empty:10.2f}  (target >= 0.7)")
PY
