"""Schemathesis hooks for scripts/contract-check.sh.

- One credential scheme per pass (CONTRACT_SCHEME: `bearer` for the tenant's admin key,
  `master` for the super admin): any other credential a generated request carries (an
  `X-API-Key`, `X-Master-Key`, `Authorization` or session cookie of another scheme) is
  removed, so operations are exercised instead of answered 401 `ambiguous_credentials`.
- A client sends a fresh Idempotency-Key per logical request; generated data would otherwise
  reuse the same few keys with different bodies, which the server rightly answers 422
  `idempotency_key_mismatch` (tests/integration/idempotency.rs covers reuse on purpose).
"""

import os
import uuid

import schemathesis

SCHEME = os.environ.get("CONTRACT_SCHEME", "")
OTHERS = {
    "bearer": ["X-API-Key", "X-Master-Key", "Cookie"],
    "master": ["X-API-Key", "Authorization", "Cookie"],
}


@schemathesis.hook
def map_headers(context, headers):
    if headers is None:
        return headers
    for name in OTHERS.get(SCHEME, []):
        for key in [k for k in headers if k.lower() == name.lower()]:
            del headers[key]
    if "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = str(uuid.uuid4())
    return headers


@schemathesis.hook
def map_cookies(context, cookies):
    # The session cookie is a credential of its own: never beside this pass's scheme.
    if cookies and SCHEME in OTHERS:
        cookies.pop("tokenhub_session", None)
    return cookies
