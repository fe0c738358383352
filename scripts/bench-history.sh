#!/usr/bin/env bash
# Does a command's cost grow with its aggregate's history? Measures, on one release server,
# the latency of saving a tenant configuration, revealing a secret and rotating a key when
# the aggregate has 1 earlier event and when it has 1,000, plus the server's peak RSS.
#
#   scripts/bench-history.sh [prior-events] [samples]        (defaults 1000 30)
#
# Uses a scratch database (dropped afterwards) and a private nats-server on a free port, so it
# leaves nothing behind. Needs curl, python3, nats-server and the local PostgreSQL
# (DATABASE_ADMIN_URL, default postgres://postgres@127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/.."

PRIOR=${1:-1000}
SAMPLES=${2:-30}
DB=tokenhub_history_bench_$$
# The per-tenant caps and rate limit would stop the history from being written.
export TENANT_MAX_CONFIG_VERSIONS_PER_DAY=1000000 DEFAULT_RATE_LIMIT=0

echo "building (release)…"
cargo build --release --quiet --bin tokenhub
. scripts/scratch-server.sh
BODY=$(admin /admin/tenants '{"name": "History bench", "plan": "enterprise"}')
TENANT=$(echo "$BODY" | json tenant_id)
ADMIN_KEY=$(echo "$BODY" | json api_key)
KEY_ID=$(admin /admin/api-keys "{\"tenant_id\": \"$TENANT\", \"name\": \"rotated\"}" | json public_id)

python3 - "$BASE" "$ADMIN_KEY" "$KEY_ID" "$PRIOR" "$SAMPLES" "$SERVER_PID" <<'PY'
import json, statistics, sys, time, urllib.request

base, admin, key_id, prior, samples, pid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
config = {"routes": [{"path": f"/v1/r{i}", "method": "POST", "description": "x" * 200} for i in range(40)]}

def call(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method="POST",
                                 headers={"Authorization": "Bearer " + admin, "Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(req) as res:
        res.read()
    return (time.perf_counter() - started) * 1000

def rss_mib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0

ops = {
    "save config (%d B)" % len(json.dumps(config)): lambda: call("/tenant/config", config),
    "reveal secret": lambda: call("/tenant/secrets/BENCH/reveal"),
    "rotate key": lambda: call(f"/tenant/api-keys/{key_id}/rotate"),
}
call("/tenant/secrets", {"key": "BENCH", "value": "s3cret"})
print(f"{'command':<26} {'after 1 event':>15} {'after %d events' % prior:>18}   (median of {samples}, ms)")
for name, op in ops.items():
    first = statistics.median(op() for _ in range(samples))
    for _ in range(prior):
        op()
    later = statistics.median(op() for _ in range(samples))
    print(f"{name:<26} {first:>15.2f} {later:>18.2f}")
print(f"server peak RSS: {rss_mib():.0f} MiB")
PY
