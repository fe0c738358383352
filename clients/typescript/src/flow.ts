// The operator's first flow, written against the client generated from openapi/openapi.json:
// create a tenant, issue a key, verify it from a gateway, report usage, read the summary.
// CI type-checks it (`npm run check`: no casts, no untyped values) and runs it against a live server
// (`npm run flow`, from scripts/contract-check.sh).
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type ErrorBody = components["schemas"]["ErrorBody"];

/** What the flow saw. */
export interface FlowResult {
  tenantId: string;
  keyId: string;
  verifyCode: components["schemas"]["VerifyResponse"]["code"];
  llmTokens: number;
}

function fail(step: string, status: number, error: ErrorBody | undefined): never {
  throw new Error(`${step}: ${status} ${error ? `${error.error.code}: ${error.error.message}` : "(no body)"}`);
}

/** Runs the flow against `baseUrl` with the master key. */
export async function flow(baseUrl: string, masterKey: string): Promise<FlowResult> {
  const admin = createClient<paths>({ baseUrl, headers: { "X-Master-Key": masterKey } });

  const created = await admin.POST("/admin/tenants", {
    params: { header: { "Idempotency-Key": crypto.randomUUID() } },
    body: { name: "TypeScript flow", plan: "pro" },
  });
  if (!created.data) return fail("create tenant", created.response.status, created.error);
  const tenant = created.data;

  const tenantAdmin = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${tenant.api_key}` } });
  const issued = await tenantAdmin.POST("/tenant/api-keys", {
    body: { name: "chat app", permissions: ["chat"], quota_limit: 1_000_000, quota_period: "month" },
  });
  if (!issued.data) return fail("issue key", issued.response.status, issued.error);
  const key = issued.data;

  const platform = await admin.POST("/admin/platform-keys", { body: { name: "edge gateway", role: "gateway" } });
  if (!platform.data) return fail("issue gateway key", platform.response.status, platform.error);
  const gateway = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${platform.data.api_key}` } });

  const verified = await gateway.POST("/v1/keys/verify", { body: { key: key.api_key, model: "gpt-4o" } });
  if (!verified.data) return fail("verify", verified.response.status, verified.error);
  if (!verified.data.valid) throw new Error(`verify: ${verified.data.code}`);

  const reported = await gateway.POST("/v1/usage", {
    body: {
      records: [
        {
          id: crypto.randomUUID(),
          key: key.public_id,
          timestamp: new Date().toISOString(),
          model: "gpt-4o",
          prompt_tokens: 1200,
          completion_tokens: 300,
        },
      ],
    },
  });
  if (!reported.data) return fail("report usage", reported.response.status, reported.error);

  // Usage is rolled up asynchronously: read until the record is counted.
  for (let attempt = 0; attempt < 100; attempt++) {
    const summary = await tenantAdmin.GET("/usage/summary", { params: { query: { key: key.public_id } } });
    if (!summary.data) return fail("usage summary", summary.response.status, summary.error);
    if (summary.data.llm_tokens >= 1500) {
      return {
        tenantId: tenant.tenant_id,
        keyId: key.public_id,
        verifyCode: verified.data.code,
        llmTokens: summary.data.llm_tokens,
      };
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("usage summary: the record was not counted within 10 s");
}
