#!/usr/bin/env bash
# Load test of the verify hot path: POST /v1/keys/verify against GET /healthz (an empty
# handler of the same server, same middleware), same wrk settings, and prints the ratio; also
# a key with a per-minute limit counted for the fleet (a limit it never reaches: every request
# takes from a lease, leases come from PostgreSQL), against the plain key.
#
#   scripts/load-verify.sh [duration_seconds] [connections] [rounds]
#
# The two loads alternate for `rounds` rounds (default 3) and the median ratio is the result:
# on a shared 2-core machine one pair of runs varies by ±10 %. Each run also prints the server's
# CPU time per request (from /proc), which does not depend on how wrk was scheduled.
#
# Uses a scratch database (dropped afterwards) and a private nats-server on a free port, so it
# leaves nothing behind. Needs wrk (apt-get install wrk), curl, python3, nats-server, and the
# local PostgreSQL (DATABASE_ADMIN_URL, default postgres://postgres@127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-10}
CONNECTIONS=${2:-32}
ROUNDS=${3:-3}
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

LIMITED=$(curl -fs -X POST "$BASE/admin/api-keys" -H "X-Master-Key: $MASTER" -H 'Content-Type: application/json' \
  -d "{\"tenant_id\": \"$TENANT\", \"name\": \"limited\", \"allowed_models\": [\"gpt-4o\"], \"rate_limit\": {\"requests_per_minute\": 1000000000}}" | json api_key)
cat >"$WORK/limited.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $GATEWAY"
wrk.body = '{"key": "$LIMITED", "ip": "203.0.113.7", "model": "gpt-4o"}'
LUA
cat >"$WORK/verify.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $GATEWAY"
wrk.body = '{"key": "$KEY", "ip": "203.0.113.7", "model": "gpt-4o"}'
LUA
check=$(curl -fs -X POST "$BASE/v1/keys/verify" -H "Authorization: Bearer $GATEWAY" -H 'Content-Type: application/json' \
  -d "{\"key\": \"$KEY\", \"model\": \"gpt-4o\"}" | json code)
[ "$check" = VALID ] || { echo "verify did not answer VALID: $check" >&2; exit 1; }

rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
cpu() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }  # user + system, clock ticks
TICK=$(getconf CLK_TCK)
echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds, on $(nproc) cores (wrk shares them with the server)"
for round in $(seq 1 "$ROUNDS"); do
  for what in empty verify limited; do
    case "$what" in
      empty) target=("$BASE/healthz") ;;
      *) target=(-s "$WORK/$what.lua" "$BASE/v1/keys/verify") ;;
    esac
    before=$(cpu)
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${target[@]}" >"$WORK/$what.$round.txt"
    after=$(cpu)
    requests=$(awk '/requests in/ {print $1}' "$WORK/$what.$round.txt")
    echo "$round $what $(rps "$WORK/$what.$round.txt") $(awk '/ 99%/ {print $2}' "$WORK/$what.$round.txt") $(awk -v a="$after" -v b="$before" -v t="$TICK" -v r="$requests" 'BEGIN { printf "%.1f", (a - b) * 1e6 / t / r }')" >>"$WORK/runs"
    grep -E "Non-2xx" "$WORK/$what.$round.txt" | sed "s/^/  $what /" || true
  done
done
python3 - "$WORK/runs" <<'PY'
import statistics, sys
runs = [line.split() for line in open(sys.argv[1])]
by = {}
for rnd, what, rps, p99, cpu_us in runs:
    by.setdefault(rnd, {})[what] = (float(rps), p99, float(cpu_us))
ratios, limited = [], []
for rnd, r in sorted(by.items()):
    (e, ep99, ecpu), (v, vp99, vcpu), (l, lp99, lcpu) = r["empty"], r["verify"], r["limited"]
    ratios.append(v / e)
    limited.append(l / v)
    print(f"round {rnd}: empty {e:8.0f} req/s (p99 {ep99}, server {ecpu} us/req)  "
          f"verify {v:8.0f} req/s (p99 {vp99}, server {vcpu} us/req)  ratio {v / e:.2f}  "
          f"fleet-limited key {l:8.0f} req/s (p99 {lp99}, server {lcpu} us/req)")
print(f"median ratio verify / empty:  {statistics.median(ratios):.2f}  (target >= 0.85)")
print(f"median ratio fleet-limited key / plain key:  {statistics.median(limited):.2f}  (target >= 0.9)")
PY
