#!/usr/bin/env bash
# Benchmark of the write path: POST /admin/api-keys (one command, one event) at 8 and 32
# concurrent writers with wrk, against pgbench's single-row INSERT commits at the same
# concurrency on the same PostgreSQL, and prints commands/s, p50/p99, the ratio, and the CPU
# time the servers and PostgreSQL spent per command (what a fleet must not multiply). Then the
# bulk route (POST /admin/api-keys:batch, 1,000 keys a request) in keys/s.
#
#   scripts/bench-commands.sh [seconds]          (default 10 per run)
#   CONCURRENCY="32 96" scripts/bench-commands.sh  (other numbers of writers, default 8 32;
#                                                 pgbench at most 32: the database has 100)
#   INSTANCES=3 scripts/bench-commands.sh        (three servers on one database, the writers
#                                                 spread over them; also counts deadlocks)
#
# pgbench connects as the server does to a PostgreSQL on this host: without TLS (PGSSLMODE
# overrides both).
#
# A scratch database and a private nats-server on a free port, removed afterwards. Needs wrk
# (apt-get install -y wrk), pgbench (postgresql-contrib / the PostgreSQL client), curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-10}
DB=tokenhub_bench_$$
PGBENCH_DB=tokenhub_pgbench_$$
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
command -v pgbench >/dev/null || { echo "pgbench is missing (PostgreSQL client tools)" >&2; exit 1; }

if [ -z "${TOKENHUB_BIN:-}" ]; then
  echo "building (release)…"
  cargo build --release --quiet --bin tokenhub
fi
. scripts/scratch-server.sh
trap 'cleanup; psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $PGBENCH_DB WITH (FORCE)" >/dev/null 2>&1 || true' EXIT

TENANT=$(admin /admin/tenants '{"name": "Bench", "plan": "enterprise"}' | json tenant_id)
cat >"$WORK/issue.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Master-Key"] = "$MASTER"
wrk.body = '{"tenant_id": "$TENANT", "name": "bench", "tags": {"team": "load"}}'
LUA
curl -fs -X POST "$BASE/admin/api-keys" -H "X-Master-Key: $MASTER" -H 'Content-Type: application/json' \
  -d "{\"tenant_id\": \"$TENANT\", \"name\": \"check\"}" >/dev/null

psql "$PG/postgres" -qc "CREATE DATABASE $PGBENCH_DB" >/dev/null
psql "$PG/$PGBENCH_DB" -qc "CREATE TABLE t (id bigserial PRIMARY KEY, payload jsonb NOT NULL, at timestamptz NOT NULL DEFAULT now())" >/dev/null
echo "INSERT INTO t (payload) VALUES ('{\"a\": 1}');" >"$WORK/insert.sql"

# CPU time in clock ticks: of the servers, and of every PostgreSQL process (all databases;
# nothing else uses it during the run on a bench machine).
ticks_of() { awk '{ s += $14 + $15 } END { print s + 0 }' "$@" 2>/dev/null || echo 0; }
server_ticks() { ticks_of $(for pid in "${SERVER_PIDS[@]}"; do echo "/proc/$pid/stat"; done); }
postgres_ticks() { ticks_of $(for pid in $(pgrep -x postgres); do echo "/proc/$pid/stat"; done); }
HZ=$(getconf CLK_TCK)
# Transactions and rows read in the bench database (pg_stat_database, flushed about once a
# second: read after a pause).
db_stats() { psql "$PG/postgres" -Atc "SELECT xact_commit + xact_rollback, tup_returned + tup_fetched FROM pg_stat_database WHERE datname = '$DB'"; }

# wrk's latency distribution: p50 and p99 in milliseconds.
percentile() { awk -v p="$1" '$1 == p"%" { v=$2; if (v ~ /us$/) { sub(/us$/,"",v); v=v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v) } else if (v ~ /s$/) { sub(/s$/,"",v); v=v*1000 } print v }' "$2"; }

echo "on $(nproc) cores; wrk, pgbench, the server and PostgreSQL share them"
printf '%-12s %14s %10s %10s %16s %7s %14s %14s %10s %10s\n' concurrency "commands/s" "p50 ms" "p99 ms" "pgbench commits/s" ratio \
  "server µs/cmd" "postgres µs/cmd" "xacts/cmd" "rows/cmd"
DEADLOCKS_BEFORE=$(psql "$PG/postgres" -Atc "SELECT deadlocks FROM pg_stat_database WHERE datname = '$DB'")
for C in ${CONCURRENCY:-8 32}; do
  # The writers spread evenly over the instances (one wrk each, run together).
  PER=$(( C / INSTANCES )); [ "$PER" -ge 1 ] || PER=1
  WRK_PIDS=()
  sleep 1.2; DB_BEFORE=$(db_stats)
  SERVER_BEFORE=$(server_ticks); POSTGRES_BEFORE=$(postgres_ticks)
  for i in "${!BASES[@]}"; do
    wrk -t1 -c"$PER" -d"${DURATION}s" --latency -s "$WORK/issue.lua" "${BASES[$i]}/admin/api-keys" >"$WORK/wrk-$C-$i.txt" &
    WRK_PIDS+=($!)
  done
  wait "${WRK_PIDS[@]}"
  SERVER_TICKS=$(( $(server_ticks) - SERVER_BEFORE )); POSTGRES_TICKS=$(( $(postgres_ticks) - POSTGRES_BEFORE ))
  sleep 1.2; DB_AFTER=$(db_stats)
  for f in "$WORK"/wrk-"$C"-*.txt; do
    if grep -q "Non-2xx" "$f"; then grep "Non-2xx" "$f" >&2; fi
  done
  RPS=$(cat "$WORK"/wrk-"$C"-*.txt | awk '/Requests\/sec/ {s += $2} END {print s}')
  P50=$(for f in "$WORK"/wrk-"$C"-*.txt; do percentile 50 "$f"; done | sort -g | tail -1)
  P99=$(for f in "$WORK"/wrk-"$C"-*.txt; do percentile 99 "$f"; done | sort -g | tail -1)
  TPS=$(PGSSLMODE=${PGSSLMODE:-disable} pgbench -n -c"$(( C < 32 ? C : 32 ))" -j2 -T"$DURATION" -f "$WORK/insert.sql" "$PG/$PGBENCH_DB" 2>/dev/null | awk '/^tps/ {print $3}')
  python3 - "$C" "$RPS" "$P50" "$P99" "$TPS" "$SERVER_TICKS" "$POSTGRES_TICKS" "$HZ" "$DURATION" "$DB_BEFORE" "$DB_AFTER" <<'PY'
import sys
c, rps, p50, p99, tps, server, postgres, hz, seconds = sys.argv[1], *map(float, sys.argv[2:10])
(xacts_before, rows_before), (xacts_after, rows_after) = (map(int, s.split("|")) for s in sys.argv[10:12])
commands = rps * seconds
per = lambda ticks: ticks / hz / commands * 1e6
print(f"{c:<12} {rps:14.0f} {p50:10.1f} {p99:10.1f} {tps:16.0f} {rps / tps:7.2f} {per(server):14.0f} {per(postgres):14.0f}"
      f" {(xacts_after - xacts_before) / commands:10.2f} {(rows_after - rows_before) / commands:10.1f}")
PY
done
DEADLOCKS_AFTER=$(psql "$PG/postgres" -Atc "SELECT deadlocks FROM pg_stat_database WHERE datname = '$DB'")
echo "instances: $INSTANCES; deadlocks during the runs: $((DEADLOCKS_AFTER - DEADLOCKS_BEFORE)) (p50/p99: the slowest instance's;"
echo "µs/cmd: CPU time of all the servers, and of PostgreSQL, per command)"

# Bulk: 1,000 keys a request, all-or-nothing.
python3 - "$TENANT" >"$WORK/batch.json" <<'PY'
import json, sys
print(json.dumps({"keys": [{"tenant_id": sys.argv[1], "name": f"bulk-{i}"} for i in range(1000)]}))
PY
START=$(date +%s.%N)
for _ in 1 2 3 4 5; do
  curl -fs -X POST "$BASE/admin/api-keys:batch" -H "X-Master-Key: $MASTER" -H 'Content-Type: application/json' \
    --data-binary @"$WORK/batch.json" >/dev/null
done
END=$(date +%s.%N)
python3 -c "import sys; print(f'bulk: 5 x 1,000 keys (POST /admin/api-keys:batch) in {float(sys.argv[2])-float(sys.argv[1]):.2f} s = {5000/(float(sys.argv[2])-float(sys.argv[1])):.0f} keys/s')" "$START" "$END"
