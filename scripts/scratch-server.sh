# Sourced by the load scripts after their release build: starts ./target/release/tokenhub on a
# scratch database (DB, dropped on exit) and a private nats-server on a free port, waits until
# it is ready, and removes everything on exit. Sets BASE, MASTER and WORK; defines json (read a
# field of a JSON answer) and admin (POST a JSON body with the master key). With INSTANCES=N
# (default 1) it starts N servers on the same database and NATS; BASES lists their addresses
# (BASE is the first).
PG=${DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432}
MASTER=load-test-master-key-$$-0123456789abcdefghij
NATS_BIN=$(command -v nats-server || echo /usr/sbin/nats-server)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
NATS_PORT=$(free_port)
WORK=$(mktemp -d)

INSTANCES=${INSTANCES:-1}
# Every instance (and a gateway started beside them) opens secrets with the same KEK, kept
# with the scratch files, not in the checkout's data/.
export TOKENHUB_KEK_FILE="$WORK/kek"
SERVER_PIDS=()
EXTRA_PIDS=()
cleanup() {
  for pid in "${SERVER_PIDS[@]}" "${EXTRA_PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  [ -n "${NATS_PID:-}" ] && kill "$NATS_PID" 2>/dev/null || true
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$NATS_BIN" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$WORK/nats" >/dev/null 2>&1 &
NATS_PID=$!

BASES=()
for i in $(seq 1 "$INSTANCES"); do
  [ "$i" = 1 ] || PORT=$(free_port)
  DATABASE_URL="$PG/$DB" NATS_URL="nats://127.0.0.1:$NATS_PORT" MASTER_API_KEY="$MASTER" \
    LISTEN_ADDR="127.0.0.1:$PORT" PUBLIC_URL="http://127.0.0.1:$PORT" LOG_LEVEL=warn "${TOKENHUB_BIN:-./target/release/tokenhub}" serve 2>"$WORK/server-$i.log" &
  SERVER_PIDS+=($!)
  BASES+=("http://127.0.0.1:$PORT")
  ready=0
  for _ in $(seq 1 300); do curl -fs "${BASES[-1]}/readyz" >/dev/null 2>&1 && { ready=1; break; }; sleep 0.1; done
  [ "$ready" = 1 ] || { echo "server $i did not become ready:" >&2; cat "$WORK/server-$i.log" >&2; exit 1; }
done
SERVER_PID=${SERVER_PIDS[0]}
BASE=${BASES[0]}

json() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
admin() { curl -fs -X POST "$BASE$1" -H "X-Master-Key: $MASTER" -H 'Content-Type: application/json' -d "$2"; }
