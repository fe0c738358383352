#!/usr/bin/env bash
# The contract check (run by .ci/run): schemathesis with every check against a release server
# on a scratch database, twice — as the super admin (naming a tenant in X-Tenant-ID) and as
# that tenant's admin key — then the TypeScript flow (clients/typescript) against the same
# server. Settings and the few documented overrides: .ci/contract/schemathesis.toml.
# Fails on any schemathesis failure.
#
#   scripts/contract-check.sh [examples-per-operation]        (default 25)
#   TOKENHUB_BIN=target/debug/tokenhub scripts/contract-check.sh   (skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMPLES=${1:-25}
DB=tokenhub_contract_$$
export DEFAULT_RATE_LIMIT=0 AUTH_FAILURES_PER_MINUTE=0

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
echo "== schemathesis as the tenant's admin key"
CONTRACT_SCHEME=bearer st -H "Authorization: Bearer $TENANT_KEY" || status=1
echo "== schemathesis as the super admin"
CONTRACT_SCHEME=master st -H "X-Master-Key: $MASTER" -H "X-Tenant-ID: $TENANT" || status=1

if [ -d clients/typescript/node_modules ]; then
  echo "== the TypeScript flow against the same server"
  (cd clients/typescript && TOKENHUB_URL=$BASE MASTER_API_KEY=$MASTER npm run --silent flow) || status=1
fi
exit $status
