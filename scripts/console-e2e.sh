#!/usr/bin/env bash
# End-to-end test of the console (run by .ci/run): a server on a scratch database, two invited
# people (a super admin and an auditor), then tests/console/e2e.mjs in Debian's Chromium via
# playwright-core: sign-in with TOTP, tenants, keys, live revocation on a second page, audit,
# CSRF, a phone-width screen, axe-core on every page; screenshots in target/console-screenshots/.
#
#   scripts/console-e2e.sh                                      (release build)
#   TOKENHUB_BIN=target/debug/tokenhub scripts/console-e2e.sh   (skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."

DB=tokenhub_console_$$
export COOKIE_SECURE=false DEFAULT_RATE_LIMIT=0 AUTH_FAILURES_PER_MINUTE=0
# Webhooks to the test's own receiver on 127.0.0.1, retried and given up within seconds.
export WEBHOOK_ALLOW_PRIVATE_TARGETS=true WEBHOOK_RETRY_BASE_MS=200 WEBHOOK_RETRY_FOR_SECONDS=3 WEBHOOK_DISABLE_AFTER_SECONDS=2
CHROMIUM=${CHROMIUM:-$(command -v chromium || echo /usr/bin/chromium)}
[ -x "$CHROMIUM" ] || { echo "Chromium is needed: apt-get install -y chromium" >&2; exit 1; }
[ -d tests/console/node_modules/playwright-core ] || npm ci --prefix tests/console --no-audit --no-fund --loglevel=error
if [ -z "${TOKENHUB_BIN:-}" ]; then
  echo "building (release)…"
  cargo build --release --quiet --bin tokenhub
fi
. scripts/scratch-server.sh

ADMIN_INVITE=$(admin /admin/users '{"email": "ada@console.test", "role": "super_admin"}' | json invite_url)
AUDITOR_INVITE=$(admin /admin/users '{"email": "audrey@console.test", "role": "auditor"}' | json invite_url)
FINANCE_INVITE=$(admin /admin/users '{"email": "fay@console.test", "role": "finance_admin"}' | json invite_url)
# The invite links name PUBLIC_URL; the server here listens on BASE.
ADMIN_INVITE="$BASE/auth/invites/${ADMIN_INVITE##*/}"
AUDITOR_INVITE="$BASE/auth/invites/${AUDITOR_INVITE##*/}"
FINANCE_INVITE="$BASE/auth/invites/${FINANCE_INVITE##*/}"

BASE=$BASE MASTER=$MASTER ADMIN_INVITE=$ADMIN_INVITE AUDITOR_INVITE=$AUDITOR_INVITE FINANCE_INVITE=$FINANCE_INVITE \
  CHROMIUM=$CHROMIUM SCREENSHOTS=${SCREENSHOTS:-target/console-screenshots} timeout 600 node tests/console/e2e.mjs
