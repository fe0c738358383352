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
DB=tokenhub_usage_load_$$

echo "building (release)…"
# The binary alone first (with the example it would take the dev-dependencies' features too).
cargo build --release --quiet --bin tokenhub && cargo build --release --quiet --example load_usage
. scripts/scratch-server.sh
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
