//! The authorization matrix: every route of the OpenAPI document, called by every kind of
//! principal, must answer as the matrix says. A route missing from the matrix fails the test.
//!
//! Expected per cell: no credentials → 401; a malformed key → 401; a principal the matrix
//! allows → neither 401 nor 403 (nor 5xx); the admin of another tenant on a route naming one
//! of this tenant's resources → 404 that leaks nothing; anyone else → 403. People (session
//! cookies) of every role are principals too, answered as the key principal of their role.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;
use crate::person::{person, Signed};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum P {
    Master,
    Gateway,
    FinanceAdmin,
    Auditor,
    TenantAdmin,
    TenantFinance,
    DataKey,
    SubAccountManager,
    UserSuperAdmin,
    UserFinanceAdmin,
    UserAuditor,
    UserTenantAdmin,
    UserTenantFinance,
    UserTenantViewer,
}

use P::*;

impl P {
    /// The key principal whose column a person of this role shares: one decision table.
    fn as_key(self) -> P {
        match self {
            UserSuperAdmin => Master,
            UserFinanceAdmin => FinanceAdmin,
            UserAuditor => Auditor,
            UserTenantAdmin => TenantAdmin,
            UserTenantFinance | UserTenantViewer => TenantFinance,
            other => other,
        }
    }
}

const PUBLIC: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// Routes of people's sign-in and sessions: the invite token, the password or the session
/// cookie is the credential (`people.rs` covers them).
/// A person's own routes take only their session; the OpenID routes no credential
/// (`two_factor.rs` and `oidc.rs` cover them).
const SIGN_IN: &[&str] = &[
    "/auth/invites/{token}/accept",
    "/auth/login",
    "/auth/login/mfa",
    "/auth/me",
    "/auth/logout",
    "/auth/sessions",
    "/auth/sessions/{id}",
    "/auth/password",
    "/auth/totp/enroll",
    "/auth/totp/confirm",
    "/auth/totp",
    "/auth/recovery-codes",
    "/auth/oidc",
    "/auth/oidc/{provider}/start",
    "/auth/oidc/{provider}/callback",
    "/auth/oidc/{provider}/link",
];

/// (method, path, principals allowed). `OtherTenant` is derived: it is allowed wherever
/// `TenantAdmin` is, but gets 404 on routes naming this tenant's resources.
const MATRIX: &[(&str, &str, &[P])] = &[
    ("post", "/admin/tenants", &[Master]),
    ("post", "/admin/users", &[Master]),
    ("get", "/admin/users", &[Master]),
    ("get", "/admin/users/{user_id}", &[Master]),
    ("patch", "/admin/users/{user_id}", &[Master]),
    ("delete", "/admin/users/{user_id}", &[Master]),
    ("post", "/admin/users/{user_id}/erase", &[Master]),
    ("post", "/tenant/users", &[Master, TenantAdmin]),
    ("get", "/tenant/users", &[Master, TenantAdmin]),
    ("get", "/tenant/users/{user_id}", &[Master, TenantAdmin]),
    ("patch", "/tenant/users/{user_id}", &[Master, TenantAdmin]),
    ("delete", "/tenant/users/{user_id}", &[Master, TenantAdmin]),
    ("get", "/tenant/security/two-factor", &[Master, TenantAdmin]),
    ("put", "/tenant/security/two-factor", &[Master, TenantAdmin]),
    ("get", "/admin/tenants", &[Master]),
    ("get", "/admin/tenants/{id}", &[Master]),
    ("patch", "/admin/tenants/{id}", &[Master]),
    ("delete", "/admin/tenants/{id}", &[Master]),
    ("post", "/admin/tenants/{id}/suspend", &[Master]),
    ("post", "/admin/tenants/{id}/reactivate", &[Master]),
    ("get", "/tenant/info", &[Master, TenantAdmin, TenantFinance]),
    ("post", "/admin/api-keys", &[Master]),
    ("get", "/admin/api-keys", &[Master]),
    ("post", "/admin/api-keys:batch", &[Master]),
    ("get", "/admin/api-keys/{public_id}", &[Master]),
    ("patch", "/admin/api-keys/{public_id}", &[Master]),
    ("delete", "/admin/api-keys/{public_id}", &[Master]),
    ("post", "/tenant/api-keys", &[Master, TenantAdmin, SubAccountManager]),
    ("get", "/tenant/api-keys", &[Master, TenantAdmin, SubAccountManager]),
    ("get", "/tenant/api-keys/{public_id}", &[Master, TenantAdmin, SubAccountManager]),
    ("patch", "/tenant/api-keys/{public_id}", &[Master, TenantAdmin, SubAccountManager]),
    ("delete", "/tenant/api-keys/{public_id}", &[Master, TenantAdmin, SubAccountManager]),
    ("post", "/tenant/api-keys/{public_id}/disable", &[Master, TenantAdmin, SubAccountManager]),
    ("post", "/tenant/api-keys/{public_id}/enable", &[Master, TenantAdmin, SubAccountManager]),
    ("post", "/tenant/api-keys/{public_id}/rotate", &[Master, TenantAdmin, SubAccountManager]),
    ("post", "/admin/platform-keys", &[Master]),
    ("get", "/admin/platform-keys", &[Master]),
    ("delete", "/admin/platform-keys/{public_id}", &[Master]),
    ("post", "/v1/keys/verify", &[Master, Gateway]),
    ("post", "/tenant/sub-accounts", &[Master, TenantAdmin]),
    ("get", "/tenant/sub-accounts", &[Master, TenantAdmin]),
    ("get", "/tenant/sub-accounts/{id}", &[Master, TenantAdmin]),
    ("patch", "/tenant/sub-accounts/{id}", &[Master, TenantAdmin]),
    ("delete", "/tenant/sub-accounts/{id}", &[Master, TenantAdmin]),
    ("post", "/tenant/sub-accounts/{id}/disable", &[Master, TenantAdmin]),
    ("post", "/tenant/sub-accounts/{id}/enable", &[Master, TenantAdmin]),
    ("get", "/tenant/rbac", &[Master, TenantAdmin]),
    ("put", "/tenant/rbac", &[Master, TenantAdmin]),
    ("post", "/tenant/rbac/roles", &[Master, TenantAdmin]),
    ("put", "/tenant/rbac/roles/{name}", &[Master, TenantAdmin]),
    ("delete", "/tenant/rbac/roles/{name}", &[Master, TenantAdmin]),
    ("post", "/tenant/rbac/check", &[Master, TenantAdmin, Gateway]),
    ("get", "/admin/api-keys/{public_id}/history", &[Master]),
    ("get", "/audit/events", &[Master, Auditor]),
    ("get", "/audit/events/export", &[Master, Auditor]),
    ("get", "/audit/verify", &[Master, Auditor]),
    ("get", "/audit/state", &[Master, Auditor]),
    ("get", "/audit/events/stream", &[Master, Auditor]),
    ("get", "/tenant/audit/events/stream", &[Master, TenantAdmin]),
    ("get", "/tenant/audit/events", &[Master, TenantAdmin]),
    ("get", "/tenant/audit/state", &[Master, TenantAdmin]),
    ("get", "/tenant/security/ip-allowlist", &[Master, TenantAdmin]),
    ("put", "/tenant/security/ip-allowlist", &[Master, TenantAdmin]),
    ("get", "/tenant/secrets", &[Master, TenantAdmin]),
    ("post", "/tenant/secrets", &[Master, TenantAdmin]),
    ("delete", "/tenant/secrets/{key}", &[Master, TenantAdmin]),
    ("post", "/tenant/secrets/{key}/reveal", &[Master, TenantAdmin, Gateway]),
    ("get", "/tenant/config", &[Master, TenantAdmin]),
    ("post", "/tenant/config", &[Master, TenantAdmin]),
    ("get", "/tenant/config/history", &[Master, TenantAdmin]),
    ("get", "/tenant/webhooks/deliveries", &[Master, TenantAdmin]),
    ("get", "/tenant/webhooks/deliveries/{id}", &[Master, TenantAdmin]),
    ("post", "/tenant/webhooks/deliveries/{id}/retry", &[Master, TenantAdmin]),
    ("get", "/tenant/webhooks/endpoints", &[Master, TenantAdmin]),
    ("post", "/tenant/webhooks/endpoints/{id}/enable", &[Master, TenantAdmin]),
    ("post", "/tenant/webhooks/test", &[Master, TenantAdmin]),
    ("post", "/tenant/config/rollback", &[Master, TenantAdmin]),
    ("post", "/v1/usage", &[Master, Gateway]),
    ("get", "/usage/summary", &[Master, FinanceAdmin, TenantAdmin, TenantFinance]),
    ("get", "/usage/history", &[Master, FinanceAdmin, TenantAdmin, TenantFinance]),
    ("get", "/usage/breakdown", &[Master, FinanceAdmin, TenantAdmin, TenantFinance]),
    ("get", "/admin/usage", &[Master, FinanceAdmin]),
    ("get", "/tenant/limits/resources", &[Master, TenantAdmin, TenantFinance]),
    ("put", "/tenant/limits/resources", &[Master, TenantAdmin]),
    ("get", "/tenant/limits/resources/usage", &[Master, TenantAdmin, TenantFinance]),
    ("post", "/tenant/limits/resources/check", &[Master, TenantAdmin, Gateway]),
    ("post", "/tenant/limits/resources/track", &[Master, TenantAdmin, Gateway]),
];

struct Fixture {
    tenant: String,
    keys: Vec<(P, String)>,
    people: Vec<(P, Signed)>,
    target_user: String,
    other_tenant_admin: String,
    target_tenant: String,
    target_key: String,
    target_platform_key: String,
    target_sub_account: String,
}

async fn fixture(app: &TestApp) -> Fixture {
    let (tenant, tenant_admin) = app.create_tenant("Matrix").await;
    let (_, other_tenant_admin) = app.create_tenant("Other").await;
    let (target_tenant, _) = app.create_tenant("Target").await;
    let (_, finance) = app.issue_key(&tenant, json!({"role": "tenant_finance"})).await;
    let (_, data) = app.issue_key(&tenant, json!({})).await;
    let (target_key, _) = app.issue_key(&tenant, json!({"name": "target"})).await;
    let target_platform = app.platform_key("auditor").await;
    let (status, sub) = send(
        app.admin(Method::POST, "/tenant/sub-accounts")
            .header("X-Tenant-ID", &tenant)
            .json(&json!({"name": "target"})),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    let (status, role) = send(
        app.admin(Method::POST, "/tenant/rbac/roles")
            .header("X-Tenant-ID", &tenant)
            .json(&json!({"name": "target", "permissions": ["read"]})),
    )
    .await;
    assert_eq!(status, 201, "{role}");
    let (status, manager_sub) = send(
        app.admin(Method::POST, "/tenant/sub-accounts")
            .header("X-Tenant-ID", &tenant)
            .json(&json!({"name": "managers", "permissions": ["keys:manage", "chat"]})),
    )
    .await;
    assert_eq!(status, 201, "{manager_sub}");
    let (_, manager) = app
        .issue_key(
            &tenant,
            json!({"sub_account_id": manager_sub["sub_account_id"], "permissions": ["keys:manage"]}),
        )
        .await;
    let mut people = Vec::new();
    for (p, role, scoped) in [
        (UserSuperAdmin, "super_admin", false),
        (UserFinanceAdmin, "finance_admin", false),
        (UserAuditor, "auditor", false),
        (UserTenantAdmin, "tenant_admin", true),
        (UserTenantFinance, "tenant_finance", true),
        (UserTenantViewer, "tenant_viewer", true),
    ] {
        let email = format!("{role}@matrix.test");
        people.push((p, person(app, &email, role, scoped.then_some(tenant.as_str())).await));
    }
    let (status, target_user) = send(
        app.admin(Method::POST, "/admin/users")
            .json(&json!({"email": "target@matrix.test", "role": "tenant_viewer", "tenant_id": tenant})),
    )
    .await;
    assert_eq!(status, 201, "{target_user}");
    let keys = vec![
        (Gateway, app.platform_key("gateway").await),
        (FinanceAdmin, app.platform_key("finance_admin").await),
        (Auditor, app.platform_key("auditor").await),
        (TenantAdmin, tenant_admin),
        (TenantFinance, finance),
        (DataKey, data),
        (SubAccountManager, manager),
    ];
    Fixture {
        tenant,
        keys,
        people,
        target_user: target_user["user_id"].as_str().unwrap().to_string(),
        other_tenant_admin,
        target_tenant,
        target_key,
        target_platform_key: target_platform[4..20].to_string(),
        target_sub_account: sub["sub_account_id"].as_str().unwrap().to_string(),
    }
}

fn concrete(path: &str, f: &Fixture) -> String {
    let public_id =
        if path.starts_with("/admin/platform-keys") { &f.target_platform_key } else { &f.target_key };
    let id = if path.starts_with("/tenant/sub-accounts") { &f.target_sub_account } else { &f.target_tenant };
    path.replace("{id}", id)
        .replace("{public_id}", public_id)
        .replace("{name}", "target")
        .replace("{key}", "TARGET")
        .replace("{user_id}", &f.target_user)
}

fn request(app: &TestApp, method: &str, path: &str) -> reqwest::RequestBuilder {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let body_allowed = method == Method::POST || method == Method::PATCH || method == Method::PUT;
    let req = app.http.request(method, app.url(path));
    // An empty object: authorized callers get a validation error instead of changing anything
    // (the routes whose body is optional act on the fixture's target resources only).
    if body_allowed {
        req.json(&json!({}))
    } else {
        req
    }
}

async fn status_and_body(req: reqwest::RequestBuilder) -> (u16, String) {
    let res = req.send().await.unwrap();
    // A live stream never ends: its status is the answer.
    if res.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream")) {
        return (res.status().as_u16(), String::new());
    }
    (res.status().as_u16(), res.text().await.unwrap_or_default())
}

/// How a cell authenticates.
enum Credential<'a> {
    Key(&'a String),
    Master,
    Session(&'a Signed),
}

#[tokio::test]
async fn every_route_answers_every_principal_as_the_matrix_says() {
    let (db, stream) = (TestDb::new(), TestStream::new());
    let app = TestApp::start(&db, &stream).await;
    let f = fixture(&app).await;

    let spec: Value = serde_json::from_str(&tokenhub::http::openapi::document_json()).unwrap();
    let mut routes = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        if PUBLIC.contains(&path.as_str()) || SIGN_IN.contains(&path.as_str()) {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            routes.insert((method.clone(), path.clone()));
        }
    }
    let declared: BTreeSet<(String, String)> =
        MATRIX.iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
    assert_eq!(routes, declared, "every documented route needs a matrix entry (and every entry a route)");

    let mut failures = Vec::new();
    for (method, template, allowed) in MATRIX {
        let path = concrete(template, &f);
        let tenant_route = template.starts_with("/tenant/");
        // Platform principals name the tenant they act for.
        let names_tenant = tenant_route || template.starts_with("/usage/");
        // Ids name another tenant's resources; role names are per-tenant names, not ids.
        let names_resource =
            template.contains("{id}") || template.contains("{public_id}") || template.contains("{user_id}");

        let (status, _) = status_and_body(request(&app, method, &path)).await;
        if status != 401 {
            failures.push(format!("{method} {template} without credentials: {status}"));
        }
        let (status, _) = status_and_body(request(&app, method, &path).bearer_auth("thk_malformed")).await;
        if status != 401 {
            failures.push(format!("{method} {template} with a malformed key: {status}"));
        }
        // Denied principals first, so that allowed ones run last on the target resources.
        let mut cells: Vec<(P, Credential)> = f.keys.iter().map(|(p, k)| (*p, Credential::Key(k))).collect();
        cells.push((Master, Credential::Master));
        cells.extend(f.people.iter().map(|(p, s)| (*p, Credential::Session(s))));
        cells.sort_by_key(|(p, _)| allowed.contains(&p.as_key()));
        if tenant_route && names_resource {
            let (status, body) =
                status_and_body(request(&app, method, &path).bearer_auth(&f.other_tenant_admin)).await;
            if status != 404 || body.contains(&f.tenant) || body.contains("target") {
                failures.push(format!("{method} {template} by another tenant's admin: {status} {body}"));
            }
        }
        for (principal, key) in cells {
            let mut req = request(&app, method, &path);
            req = match key {
                Credential::Key(key) => req.bearer_auth(key),
                Credential::Master => req.header("X-Master-Key", MASTER),
                Credential::Session(s) => req.header("Cookie", &s.cookie).header("X-CSRF-Token", &s.csrf),
            };
            if names_tenant && matches!(principal.as_key(), Master | Gateway | FinanceAdmin) {
                req = req.header("X-Tenant-ID", &f.tenant);
            }
            let (status, body) = status_and_body(req).await;
            let ok = if allowed.contains(&principal.as_key()) {
                status != 401 && status != 403 && status < 500
            } else {
                status == 403
            };
            if !ok {
                failures.push(format!("{method} {template} as {principal:?}: {status} {body}"));
            }
        }
    }
    assert!(failures.is_empty(), "authorization matrix violations:\n{}", failures.join("\n"));
    app.stop().await;
}
