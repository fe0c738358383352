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
DB=tokenhub_load_$$
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }

echo "building (release)…"
[ -n "${TOKENHUB_BIN:-}" ] || cargo build --release --quiet
. scripts/scratch-server.sh
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
EMPTY=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$BASE/healthz" | tee "$WORK/empty.txt" | rps)
VERIFY=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/verify.lua" "$BASE/v1/keys/verify" | tee "$WORK/verify.txt" | rps)
grep -E "Latency  |Non-2xx| 99%" "$WORK/empty.txt" | sed 's/^/  empty  /'
grep -E "Latency  |Non-2xx| 99%" "$WORK/verify.txt" | sed 's/^/  verify /'
python3 - "$EMPTY" "$VERIFY" <<'PY'
import sys
empty, verify = float(sys.argv[1]), float(sys.argv[2])
print(f"empty handler (GET /healthz):        {empty:10.0f} req/s")
print(f"verify (POST /v1/keys/verify):       {verify:10.0f} req/s")
print(f"ratio verify / empty:                {verify / empty:10.2f}  (target >= 0.85)")
PY
