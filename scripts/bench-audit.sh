#!/usr/bin/env bash
# Audit and replay benchmark on a log of N events (default 1,000,000):
#   - seeds a scratch database through the real insert trigger (so positions and the hash chain
#     are real): one tenant.created per 10 events, the rest api_key.issued for those tenants;
#   - times `tokenhub projections rebuild` (all projections), `tokenhub audit export` (with
#     peak memory from /usr/bin/time) and `tokenhub audit verify`;
#   - drops the database.
#
#   scripts/bench-audit.sh [events]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
PG=${DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432}
DB=tokenhub_bench_$$
export DATABASE_URL="$PG/$DB" LOG_LEVEL=warn
OUT=$(mktemp -d)
cleanup() { psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; rm -rf "$OUT"; }
trap cleanup EXIT

echo "building (release)…"
cargo build --release --quiet
BIN=./target/release/tokenhub
$BIN migrate 2>/dev/null

echo "seeding $N events…"
start=$(date +%s.%N)
# Small transactions, each in its own session: the insert trigger updates the single head row
# twice per event, and one long transaction (or session) keeps Postgres from pruning the dead
# versions of that row, which makes every further update slower.
CHUNK=2000
for ((from = 1; from <= N; from += CHUNK)); do
  to=$((from + CHUNK - 1)); ((to > N)) && to=$N
  psql "$DATABASE_URL" -q -v ON_ERROR_STOP=1 <<SQL
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, tenant_id, payload, metadata)
SELECT
  CASE WHEN i % 10 = 1 THEN 'tenant' ELSE 'api_key' END,
  CASE WHEN i % 10 = 1 THEN 'ten_' || lpad((i / 10)::text, 20, '0') ELSE lpad(i::text, 16, '0') END,
  1,
  CASE WHEN i % 10 = 1 THEN 'tenant.created' ELSE 'api_key.issued' END,
  '1',
  'ten_' || lpad((i / 10)::text, 20, '0'),
  CASE WHEN i % 10 = 1 THEN jsonb_build_object(
      'type', 'tenant.created', 'tenant_id', 'ten_' || lpad((i / 10)::text, 20, '0'), 'name', 'Tenant ' || i,
      'plan', 'pro', 'region', 'eu-west-1', 'limits', '{}'::jsonb, 'created_at', '2026-01-01T00:00:00Z')
  ELSE jsonb_build_object(
      'type', 'api_key.issued', 'public_id', lpad(i::text, 16, '0'),
      'owner', jsonb_build_object('kind', 'tenant', 'tenant_id', 'ten_' || lpad((i / 10)::text, 20, '0')),
      'role', 'data', 'name', 'key ' || i, 'secret_hash', md5(i::text) || md5((i + 1)::text),
      'settings', jsonb_build_object('tags', jsonb_build_object('customer_id', 'c' || i), 'permissions', '["chat"]'::jsonb),
      'issued_at', '2026-01-01T00:00:00Z')
  END,
  jsonb_build_object('actor_kind', 'system', 'actor_id', 'bench', 'request_id', 'bench-' || i,
                     'source_ip', '127.0.0.1', 'user_agent', 'bench', 'time', '2026-01-01T00:00:00Z')
FROM generate_series($from, $to) AS i;
SQL
  # Keep the head row's version chain short: autovacuum does not keep up with a bulk load.
  ((to % 20000 == 0)) && psql "$DATABASE_URL" -qc "VACUUM event_log_head"
  ((to % 100000 == 0 || to == N)) && echo "  seeded $to/$N"
done
seed=$(echo "$(date +%s.%N) - $start" | bc)
printf '\nseeded %d events in %.1fs (%.0f events/s through the insert trigger)\n' "$N" "$seed" "$(echo "$N / $seed" | bc -l)"

echo; echo "== tokenhub projections rebuild (all) =="
$BIN projections rebuild

echo; echo "== tokenhub audit export =="
/usr/bin/time -f "peak RSS %M KiB, %e s" $BIN audit export --output "$OUT/audit.ndjson" 2>&1 | tr '\r' '\n' | tail -2
echo "export file: $(du -h "$OUT/audit.ndjson" | cut -f1), $(wc -l < "$OUT/audit.ndjson") lines"

echo; echo "== tokenhub audit verify =="
/usr/bin/time -f "%e s" $BIN audit verify 2>&1 | tr '\r' '\n' | tail -2
