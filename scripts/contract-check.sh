#!/usr/bin/env bash
# The contract check (run by .ci/run): schemathesis with every check against a release server
# on a scratch database, twice — as the super admin (naming a tenant in X-Tenant-ID) and as
# that tenant's admin key — then against `tokenhub gateway` with a data key (its own document,
# LiteLLM's proxy upstream), then the TypeScript flow (clients/typescript) against the same
# server. Settings and the few documented overrides: .ci/contract/schemathesis.toml.
# Fails on any schemathesis failure.
#
#   scripts/contract-check.sh [examples-per-operation]        (default 25)
#   TOKENHUB_BIN=target/debug/tokenhub scripts/contract-check.sh   (skip the release build)
#   GATEWAY_ONLY=1 scripts/contract-check.sh                        (only the gateway's pass)
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMPLES=${1:-25}
DB=tokenhub_contract_$$
export DEFAULT_RATE_LIMIT=0 AUTH_FAILURES_PER_MINUTE=0
# The gateway's pass configures a provider on loopback (LiteLLM): the server must accept it.
export GATEWAY_ALLOW_PRIVATE_UPSTREAMS=true

python3 -m venv .ci/.venv
.ci/.venv/bin/pip install --quiet --disable-pip-version-check -r .ci/requirements-contract.txt
if [ -z "${TOKENHUB_BIN:-}" ]; then
  echo "building (release)…"
  cargo build --release --quiet --bin tokenhub
fi
. scripts/scratch-server.sh

tenant=$(admin /admin/tenants '{"name": "Contract", "plan": "enterprise"}')
TENANT=$(echo "$tenant" | json tenant_id)
TENANT_KEY=$(echo "$tenant" | json api_key)

export PYTHONPATH=.ci/contract SCHEMATHESIS_HOOKS=hooks
# One worker: with two threads, hypothesis' source introspection under Python 3.11 can fail
# with "AST constructor recursion depth mismatch" (CPython's ast is not thread-safe there),
# an error of the tool, not a finding.
st() {
  .ci/.venv/bin/schemathesis --config-file .ci/contract/schemathesis.toml run "$BASE/openapi.json" \
    --checks all --max-examples "$EXAMPLES" --workers 1 --seed 1 --no-color "$@"
}
status=0
if [ -z "${GATEWAY_ONLY:-}" ]; then
  echo "== schemathesis as the tenant's admin key"
  CONTRACT_SCHEME=bearer st -H "Authorization: Bearer $TENANT_KEY" || status=1
  echo "== schemathesis as the super admin"
  CONTRACT_SCHEME=master st -H "X-Master-Key: $MASTER" -H "X-Tenant-ID: $TENANT" || status=1
fi

echo "== schemathesis against the gateway (a data key; LiteLLM's proxy with mock models upstream)"
# LiteLLM is installed by .ci/run (tests/litellm/requirements.txt); the gateway follows the
# scratch server's database and NATS. A tenant of its own: the passes above change the first
# tenant's allowlist, limits and configuration at random.
LITELLM_PORT=$(free_port)
GATEWAY_PORT=$(free_port)
LITELLM_KEY=sk-contract-$$-litellm
LITELLM_MASTER_KEY=$LITELLM_KEY LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_TELEMETRY=False \
  tests/litellm/.venv/bin/litellm --config tests/litellm/config.yaml --host 127.0.0.1 \
  --port "$LITELLM_PORT" --num_workers 1 >"$WORK/litellm.log" 2>&1 &
EXTRA_PIDS+=($!)
DATABASE_URL="$PG/$DB" NATS_URL="nats://127.0.0.1:$NATS_PORT" GATEWAY_LISTEN_ADDR="127.0.0.1:$GATEWAY_PORT" \
  GATEWAY_ALLOW_PRIVATE_UPSTREAMS=true LOG_LEVEL=warn "${TOKENHUB_BIN:-./target/release/tokenhub}" gateway \
  2>"$WORK/gateway.log" &
EXTRA_PIDS+=($!)
GATEWAY=http://127.0.0.1:$GATEWAY_PORT
gw_tenant=$(admin /admin/tenants '{"name": "Gateway contract", "plan": "enterprise"}')
GW_TENANT=$(echo "$gw_tenant" | json tenant_id)
GW_ADMIN=$(echo "$gw_tenant" | json api_key)
tenant_post() { curl -sS --fail-with-body -X POST "$BASE$1" -H "Authorization: Bearer $GW_ADMIN" -H 'Content-Type: application/json' -d "$2"; }
tenant_post /tenant/secrets "{\"key\": \"LITELLM_KEY\", \"value\": \"$LITELLM_KEY\"}" >/dev/null
tenant_post /tenant/config "{\"credentials\": {\"litellm\": {\"secret_ref\": \"LITELLM_KEY\"}},
  \"providers\": [{\"name\": \"litellm\", \"kind\": \"openai\", \"base_url\": \"http://127.0.0.1:$LITELLM_PORT/v1\",
  \"credential\": \"litellm\", \"models\": [\"gpt-4o-mini\", \"text-embedding-3-small\"]}]}" >/dev/null
DATA_KEY=$(admin /admin/api-keys "{\"tenant_id\": \"$GW_TENANT\", \"name\": \"contract\", \"tags\": {\"team\": \"contract\"}}" | json api_key)
ready=0
for _ in $(seq 1 600); do
  curl -fs "$GATEWAY/v1/models" -H "Authorization: Bearer $DATA_KEY" >/dev/null 2>&1 \
    && curl -fs "http://127.0.0.1:$LITELLM_PORT/health/liveliness" >/dev/null 2>&1 && { ready=1; break; }
  sleep 0.2
done
[ "$ready" = 1 ] || { echo "the gateway or LiteLLM did not become ready:" >&2; cat "$WORK/gateway.log" "$WORK/litellm.log" >&2; exit 1; }
CONTRACT_SCHEME=gateway .ci/.venv/bin/schemathesis --config-file .ci/contract/gateway.toml run "$GATEWAY/openapi.json" \
  --checks all --max-examples "$EXAMPLES" --workers 1 --seed 1 --no-color \
  -H "Authorization: Bearer $DATA_KEY" || status=1
if grep -E ' ERROR ' "$WORK/gateway.log"; then echo "the gateway logged errors" >&2; status=1; fi

if [ -z "${GATEWAY_ONLY:-}" ] && [ -d clients/typescript/node_modules ]; then
  echo "== the TypeScript flow against the same server"
  (cd clients/typescript && TOKENHUB_URL=$BASE MASTER_API_KEY=$MASTER npm run --silent flow) || status=1
fi
exit $status
