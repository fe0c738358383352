"""Schemathesis hooks for scripts/contract-check.sh.

A client sends a fresh Idempotency-Key per logical request; generated data would otherwise
reuse the same few keys with different bodies, which the server rightly answers 422
`idempotency_key_mismatch` (tests/integration/idempotency.rs covers reuse on purpose).
"""

import uuid

import schemathesis


@schemathesis.hook
def map_headers(context, headers):
    if headers and "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = str(uuid.uuid4())
    return headers
