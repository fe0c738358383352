#!/usr/bin/env bash
# Usage ingest benchmark: posts usage batches to one release server and reports records per
# second acknowledged by JetStream and end to end (visible in the rollups), then checks that
# the rollup totals equal what was sent, with the duplicates sent on purpose counted once.
#
#   scripts/load-usage.sh [records] [batch] [concurrency]      (defaults 200000 500 8)
#
# Uses a scratch database (dropped afterwards) and a private nats-server on a free port, so it
# leaves nothing behind. Needs curl, python3, nats-server and the local PostgreSQL
# (DATABASE_ADMIN_URL, default postgres://postgres@127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/.."

RECORDS=${1:-200000}
BATCH=${2:-500}
CONCURRENCY=${3:-8}
PG=${DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432}
DB=tokenhub_usage_load_$$
MASTER=load-test-master-key-$$
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
cargo build --release --quiet --bin tokenhub --example load_usage

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
admin() { curl -fs -X POST "$BASE$1" -H "X-Master-Key: $MASTER" -H 'Content-Type: application/json' -d "$2"; }
TENANT=$(admin /admin/tenants '{"name": "Usage load", "plan": "enterprise"}' | json tenant_id)
GATEWAY=$(admin /admin/platform-keys '{"name": "load gateway", "role": "gateway"}' | json api_key)
KEYS=""
for i in $(seq 1 10); do
  id=$(admin /admin/api-keys "{\"tenant_id\": \"$TENANT\", \"name\": \"load $i\", \"tags\": {\"customer_id\": \"c$i\"}}" | json public_id)
  KEYS="${KEYS:+$KEYS,}$id"
done

echo "$(nproc) cores; server, PostgreSQL, nats-server and the load generator share them"
./target/release/examples/load_usage --base "$BASE" --master-key "$MASTER" --gateway-key "$GATEWAY" \
  --tenant "$TENANT" --keys "$KEYS" --records "$RECORDS" --batch "$BATCH" --concurrency "$CONCURRENCY"
