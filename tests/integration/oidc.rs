//! OIDC sign-in against a real OpenID provider (`oidc-provider` from npm, started here with
//! `node tests/oidc/provider.mjs`) and the real binary: the authorization code flow with PKCE,
//! driven like a browser through the provider's login and consent forms; an identity signs in
//! only to the account it is linked to (through the invite, or by its person while signed in),
//! never by a matching e-mail (a locked password account included); an invited account
//! activated through its invite with the invited e-mail only; a forged, replayed or unbound `state`; a wrong nonce; an
//! expired ID token (the provider's clock two hours behind) and a wrongly-signed one; an
//! unverified e-mail; no account; TOTP still asked for; and GitHub (OAuth2 and its e-mail
//! API) through a local stand-in that checks PKCE itself.

use std::io::BufRead;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use base64::Engine;
use serde_json::{json, Value};
use sha2::Digest;

use crate::common::*;
use crate::person::*;

const CLIENT_ID: &str = "tokenhub-test";
const CLIENT_SECRET: &str = "tokenhub-test-secret-0123456789";

static NPM: Mutex<()> = Mutex::new(());

/// The provider's directory, with its packages installed (`npm ci` on first use).
fn provider_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
    let _guard = NPM.lock().unwrap_or_else(|e| e.into_inner());
    if !dir.join("node_modules/oidc-provider").exists() {
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .status()
            .expect("npm (Node.js) runs the test OpenID provider");
        assert!(status.success(), "npm ci --prefix tests/oidc");
    }
    dir
}

/// The OpenID provider, killed on drop.
struct OpenIdProvider {
    child: std::process::Child,
    issuer: String,
}

impl OpenIdProvider {
    fn start(port: u16, redirect_uri: &str) -> Self {
        let dir = provider_dir();
        let mut child = std::process::Command::new("node")
            .arg(dir.join("provider.mjs"))
            .env("PORT", port.to_string())
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env("REDIRECT_URI", redirect_uri)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("node starts the OpenID provider");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("listening") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(std::time::Duration::from_secs(20)).expect("the OpenID provider listens");
        Self { child, issuer: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for OpenIdProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser: a cookie jar, no automatic redirects.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn location(res: &reqwest::Response) -> String {
    res.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

/// Starts a sign-in at TokenHub and goes through the provider as `login`, up to the redirect
/// back to TokenHub: answers the callback URL (not yet followed).
async fn through_provider(browser: &reqwest::Client, server: &str, provider: &str, login: &str) -> String {
    let res = browser.get(format!("{server}/auth/oidc/{provider}/start")).send().await.unwrap();
    through_provider_from(browser, server, res, login).await
}

/// [`through_provider`] from a start's answer (a 302 to the provider).
async fn through_provider_from(
    browser: &reqwest::Client,
    server: &str,
    res: reqwest::Response,
    login: &str,
) -> String {
    assert_eq!(res.status(), 302, "start");
    let mut url = location(&res);
    for _ in 0..12 {
        if url.starts_with(server) {
            return url;
        }
        let res = browser.get(&url).send().await.unwrap();
        let status = res.status().as_u16();
        if (300..400).contains(&status) {
            let next = location(&res);
            url = if next.starts_with('/') {
                let origin: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
                format!("{origin}{next}")
            } else {
                next
            };
            continue;
        }
        // An interaction page of the provider: the login form, then the consent form.
        let page = res.text().await.unwrap();
        assert_eq!(status, 200, "{url}: {page}");
        let form: &[(&str, &str)] = if page.contains("name=\"login\"") {
            &[("prompt", "login"), ("login", login), ("password", "any")]
        } else {
            &[("prompt", "consent")]
        };
        let res = browser.post(&url).form(form).send().await.unwrap();
        assert!(res.status().is_redirection(), "{url}: {}", res.status());
        let next = location(&res);
        let origin: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        url = if next.starts_with('/') { format!("{origin}{next}") } else { next };
    }
    panic!("the provider never sent the browser back: {url}");
}

/// A redirect to `url`, as a start answers (for a start that answered the URL in JSON).
fn go_to(url: &str) -> reqwest::Response {
    reqwest::Response::from(
        axum::http::Response::builder().status(302).header("location", url).body(String::new()).unwrap(),
    )
}

async fn callback(browser: &reqwest::Client, url: &str) -> Result<Signed, (u16, Value)> {
    session_of_with(browser.get(url).send().await.unwrap(), false).await
}

fn error_code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

async fn invite_on(http: &reqwest::Client, server: &str, body: Value) -> Value {
    let (s, invite) =
        send(http.post(format!("{server}/admin/users")).header("X-Master-Key", MASTER).json(&body)).await;
    assert_eq!(s, 201, "{invite}");
    invite
}

/// What the GitHub stand-in knows.
#[derive(Default)]
struct GitHubState {
    email: String,
    verified: bool,
    challenges: Vec<(String, String)>,
}

/// A stand-in for GitHub's OAuth2 endpoints and `/user/emails`, checking PKCE (S256) and the
/// client's credentials like GitHub does.
async fn github_stand_in(shared: Arc<Mutex<GitHubState>>) -> String {
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    type Shared = Arc<Mutex<GitHubState>>;
    async fn authorize(
        State(s): State<Shared>,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> axum::response::Response {
        assert_eq!(q.get("code_challenge_method").map(String::as_str), Some("S256"));
        assert_eq!(q.get("client_id").map(String::as_str), Some("gh-client"));
        let code = format!("ghcode{}", s.lock().unwrap().challenges.len());
        s.lock().unwrap().challenges.push((code.clone(), q["code_challenge"].clone()));
        let to = format!("{}?code={code}&state={}", q["redirect_uri"], q["state"]);
        axum::response::Redirect::to(&to).into_response()
    }
    async fn token(
        State(s): State<Shared>,
        headers: axum::http::HeaderMap,
        Form(f): Form<std::collections::HashMap<String, String>>,
    ) -> axum::response::Response {
        let basic = base64::engine::general_purpose::STANDARD.encode("gh-client:gh-secret");
        let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
            == Some(&format!("Basic {basic}"))
            || (f.get("client_id").map(String::as_str) == Some("gh-client")
                && f.get("client_secret").map(String::as_str) == Some("gh-secret"));
        let challenge = s
            .lock()
            .unwrap()
            .challenges
            .iter()
            .find(|(c, _)| Some(c) == f.get("code"))
            .map(|(_, ch)| ch.clone());
        let verifier = f.get("code_verifier").cloned().unwrap_or_default();
        let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        if !authorized || challenge != Some(computed) {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "bad_verification_code"})),
            )
                .into_response();
        }
        axum::Json(
            json!({"access_token": "gho_standin", "token_type": "bearer", "scope": "read:user,user:email"}),
        )
        .into_response()
    }
    async fn emails(State(s): State<Shared>, headers: axum::http::HeaderMap) -> axum::response::Response {
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer gho_standin") {
            return axum::http::StatusCode::UNAUTHORIZED.into_response();
        }
        let s = s.lock().unwrap();
        axum::Json(json!([
            {"email": "secondary@elsewhere.test", "primary": false, "verified": true},
            {"email": s.email, "primary": true, "verified": s.verified},
        ]))
        .into_response()
    }
    async fn user(headers: axum::http::HeaderMap) -> axum::response::Response {
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer gho_standin") {
            return axum::http::StatusCode::UNAUTHORIZED.into_response();
        }
        axum::Json(json!({"id": 583231, "login": "gus"})).into_response()
    }
    let app = axum::Router::new()
        .route("/login/oauth/authorize", get(authorize))
        .route("/login/oauth/access_token", post(token))
        .route("/user/emails", get(emails))
        .route("/user", get(user))
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn oidc_sign_in_against_a_real_provider_and_a_github_stand_in() {
    let deadline = std::time::Duration::from_secs(240);
    tokio::time::timeout(deadline, run()).await.expect("the OIDC test finishes within 4 minutes");
}

async fn run() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (db, stream) = (TestDb::new(), TestStream::new());
    let gh = Arc::new(Mutex::new(GitHubState::default()));
    let gh_base = github_stand_in(gh.clone()).await;
    // The provider needs the server's redirect URI and the server the provider's issuer: pick
    // the provider's port first.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let issuer = format!("http://127.0.0.1:{port}");
    let _ = &issuer;
    let mut server = ServerProcess::start_with(
        &db,
        &stream,
        &[
            ("MASTER_API_KEY", MASTER),
            ("COOKIE_SECURE", "false"),
            ("OIDC_PROVIDERS", "local,github"),
            ("OIDC_LOCAL_ISSUER", &issuer),
            ("OIDC_LOCAL_CLIENT_ID", CLIENT_ID),
            ("OIDC_LOCAL_CLIENT_SECRET", CLIENT_SECRET),
            ("OIDC_GITHUB_CLIENT_ID", "gh-client"),
            ("OIDC_GITHUB_CLIENT_SECRET", "gh-secret"),
            ("OIDC_GITHUB_AUTH_URL", &format!("{gh_base}/login/oauth/authorize")),
            ("OIDC_GITHUB_TOKEN_URL", &format!("{gh_base}/login/oauth/access_token")),
            ("OIDC_GITHUB_API_URL", &gh_base),
        ],
    );
    let base = server.base.clone();
    let provider = OpenIdProvider::start(port, &format!("{base}/auth/oidc/local/callback"));
    let http = reqwest::Client::new();
    server.wait_ready(&http).await;
    let (s, list) = send(http.get(format!("{base}/auth/oidc"))).await;
    assert_eq!((s, list["providers"].clone()), (200, json!(["github", "local"])));
    let (s, body) = send(http.get(format!("{base}/auth/oidc/nope/start"))).await;
    assert_eq!((s, error_code(&body)), (404, Some("oidc_provider_unknown")));

    let (s, tenant) = send(
        http.post(format!("{base}/admin/tenants"))
            .header("X-Master-Key", MASTER)
            .json(&json!({"name": "OIDC"})),
    )
    .await;
    assert_eq!(s, 201, "{tenant}");
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_string();
    let email = "ida@oidc.test";
    let invited =
        invite_on(&http, &base, json!({"email": email, "role": "tenant_admin", "tenant_id": tenant_id}))
            .await;
    let user_id = invited["user_id"].as_str().unwrap().to_string();
    let invite_token = invited["invite_url"].as_str().unwrap().rsplit('/').next().unwrap().to_string();

    // An invited account is not reached by its e-mail alone: the provider's sign-in finds no
    // account linked to the identity.
    let b = browser();
    let back = through_provider(&b, &base, "local", email).await;
    let (s, body) = callback(&b, &back).await.err().unwrap();
    assert_eq!((s, error_code(&body)), (401, Some("oidc_no_account")), "no link, no sign-in: {body}");
    let (s, body) = send(http.get(format!("{base}/auth/oidc/local/start?invite=notaninvite"))).await;
    assert_eq!((s, error_code(&body)), (422, Some("invite_invalid")), "{body}");
    // Accepting another person's invite with one's own identity: the e-mails differ.
    let other_invite = invite_on(
        &http,
        &base,
        json!({"email": "olga@oidc.test", "role": "tenant_admin", "tenant_id": tenant_id}),
    )
    .await;
    let other_token = other_invite["invite_url"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    let b = browser();
    let start = b.get(format!("{base}/auth/oidc/local/start?invite={other_token}")).send().await.unwrap();
    let back = through_provider_from(&b, &base, start, email).await;
    let (s, body) = callback(&b, &back).await.err().unwrap();
    assert_eq!((s, error_code(&body)), (401, Some("oidc_email_mismatch")), "{body}");

    // The happy path: the invite accepted with the provider, whose verified e-mail is the
    // invited one; the identity is linked.
    let b = browser();
    let start = b.get(format!("{base}/auth/oidc/local/start?invite={invite_token}")).send().await.unwrap();
    let back = through_provider_from(&b, &base, start, email).await;
    assert!(back.contains("code=") && back.contains("state="), "{back}");
    // A forged state, and the right state from a browser without the binding cookie.
    let forged = back.replace("state=", "state=forged");
    let (s, body) = callback(&b, &forged).await.err().unwrap();
    assert_eq!((s, error_code(&body)), (401, Some("oidc_state_invalid")), "{body}");
    let (s, body) = callback(&browser(), &back).await.err().unwrap();
    assert_eq!((s, error_code(&body)), (401, Some("oidc_state_invalid")), "unbound: {body}");
    let signed = callback(&b, &back).await.unwrap();
    let (s, me) = send(http.get(format!("{base}/auth/me")).header("Cookie", &signed.cookie)).await;
    assert_eq!((s, me["user_id"].as_str()), (200, Some(user_id.as_str())), "{me}");
    let (s, _) = send(http.get(format!("{base}/tenant/info")).header("Cookie", &signed.cookie)).await;
    assert_eq!(s, 200);
    // The answer works once.
    let (s, body) = callback(&b, &back).await.err().unwrap();
    assert_eq!((s, error_code(&body)), (401, Some("oidc_state_invalid")), "replayed: {body}");
    // From now on the linked identity signs in.
    let b = browser();
    let back = through_provider(&b, &base, "local", email).await;
    let again = callback(&b, &back).await.unwrap();
    let (s, me) = send(http.get(format!("{base}/auth/me")).header("Cookie", &again.cookie)).await;
    assert_eq!((s, me["user_id"].as_str()), (200, Some(user_id.as_str())), "{me}");

    // A password account with the provider's e-mail (even a locked one) is not reached until
    // its person links the identity while signed in.
    let pat = "pat@oidc.test";
    let pat_invite =
        invite_on(&http, &base, json!({"email": pat, "role": "tenant_admin", "tenant_id": tenant_id})).await;
    let pat_token = pat_invite["invite_url"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    let (s, _) = send(
        http.post(format!("{base}/auth/invites/{pat_token}/accept")).json(&json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(s, 200);
    for _ in 0..5 {
        let _ = send(
            http.post(format!("{base}/auth/login"))
                .json(&json!({"email": pat, "password": "wrong wrong wrong wrong"})),
        )
        .await;
    }
    let b = browser();
    let back = through_provider(&b, &base, "local", pat).await;
    let (s, body) = callback(&b, &back).await.err().unwrap();
    assert_eq!((s, error_code(&body)), (401, Some("oidc_no_account")), "a locked password account: {body}");
    sqlx::query("DELETE FROM sign_in_locks").execute(&db.pool().await).await.unwrap();
    let pat_signed = session_of_with(
        http.post(format!("{base}/auth/login"))
            .json(&json!({"email": pat, "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        false,
    )
    .await
    .unwrap();
    let b = browser();
    let (s, started) = send(
        b.post(format!("{base}/auth/oidc/local/link"))
            .header("Cookie", &pat_signed.cookie)
            .header("X-CSRF-Token", &pat_signed.csrf),
    )
    .await;
    assert_eq!(s, 200, "{started}");
    // The browser follows `url` (the binding cookie came with the answer), as from a start.
    let back = through_provider_from(&b, &base, go_to(started["url"].as_str().unwrap()), pat).await;
    let (s, linked) = send(b.get(&back)).await;
    assert_eq!((s, linked["linked"].as_str()), (200, Some("local")), "{linked}");
    let b = browser();
    let back = through_provider(&b, &base, "local", pat).await;
    let pat_oidc = callback(&b, &back).await.unwrap();
    let (s, me) = send(http.get(format!("{base}/auth/me")).header("Cookie", &pat_oidc.cookie)).await;
    assert_eq!((s, me["email"].as_str()), (200, Some(pat)), "{me}");
    // The same identity cannot be linked to a second account.
    let (s, started) = send(
        b.post(format!("{base}/auth/oidc/local/link"))
            .header("Cookie", &signed.cookie)
            .header("X-CSRF-Token", &signed.csrf),
    )
    .await;
    assert_eq!(s, 200, "{started}");
    let back = through_provider_from(&b, &base, go_to(started["url"].as_str().unwrap()), pat).await;
    let (s, body) = send(b.get(&back)).await;
    assert_eq!((s, error_code(&body)), (409, Some("oidc_identity_in_use")), "{body}");

    // A wrong nonce (the stored one changed while the browser was at the provider).
    let pool = db.pool().await;
    let b = browser();
    let back = through_provider(&b, &base, "local", email).await;
    sqlx::query("UPDATE oidc_logins SET nonce = 'not-the-nonce-sent'").execute(&pool).await.unwrap();
    let (s, body) = callback(&b, &back).await.err().unwrap();
    assert_eq!((s, error_code(&body)), (401, Some("oidc_id_token_invalid")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().to_lowercase().contains("nonce"), "{body}");

    // An expired ID token: the provider's clock is two hours behind (its tokens live one hour).
    let (s, _) = send(http.get(format!("{}/__test/clock?offset=-7200", provider.issuer))).await;
    assert_eq!(s, 200);
    let b = browser();
    let back = through_provider(&b, &base, "local", email).await;
    let (s, body) = callback(&b, &back).await.err().unwrap();
    assert_eq!((s, error_code(&body)), (401, Some("oidc_id_token_invalid")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().to_lowercase().contains("expire"), "{body}");
    send(http.get(format!("{}/__test/clock?offset=0", provider.issuer))).await;

    // A wrongly-signed ID token.
    send(http.get(format!("{}/__test/tamper?on=1", provider.issuer))).await;
    let b = browser();
    let back = through_provider(&b, &base, "local", email).await;
    let (s, body) = callback(&b, &back).await.err().unwrap();
    assert_eq!((s, error_code(&body)), (401, Some("oidc_id_token_invalid")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().to_lowercase().contains("signature"), "{body}");
    send(http.get(format!("{}/__test/tamper?on=0", provider.issuer))).await;

    // An e-mail the provider has not verified, and an address without an account: no account
    // is ever created by signing in.
    let users_before: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&pool).await.unwrap();
    let b = browser();
    let back = through_provider(&b, &base, "local", &format!("unverified:{email}")).await;
    let (s, body) = callback(&b, &back).await.err().unwrap();
    assert_eq!((s, error_code(&body)), (401, Some("oidc_email_unverified")), "{body}");
    let b = browser();
    let back = through_provider(&b, &base, "local", "stranger@oidc.test").await;
    let (s, body) = callback(&b, &back).await.err().unwrap();
    assert_eq!((s, error_code(&body)), (401, Some("oidc_no_account")), "{body}");
    let users_after: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&pool).await.unwrap();
    assert_eq!(users_before, users_after);

    // With TOTP on, the provider is only the first factor.
    let (s, enrolment) = send(
        http.post(format!("{base}/auth/totp/enroll"))
            .header("Cookie", &signed.cookie)
            .header("X-CSRF-Token", &signed.csrf),
    )
    .await;
    assert_eq!(s, 200, "{enrolment}");
    let secret = enrolment["secret"].as_str().unwrap().to_string();
    let at = unix_now();
    let (s, recovery) = send(
        http.post(format!("{base}/auth/totp/confirm"))
            .header("Cookie", &signed.cookie)
            .header("X-CSRF-Token", &signed.csrf)
            .json(&json!({"code": oathtool(&secret, at)})),
    )
    .await;
    assert_eq!(s, 200);
    let recovery: Vec<String> = recovery["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let b = browser();
    let back = through_provider(&b, &base, "local", email).await;
    let (s, challenge) = callback(&b, &back).await.err().unwrap();
    assert_eq!((s, challenge["mfa_required"].as_bool()), (200, Some(true)), "{challenge}");
    let res = http
        .post(format!("{base}/auth/login/mfa"))
        .json(&json!({"mfa_token": challenge["mfa_token"], "code": oathtool(&secret, at + 30)}))
        .send()
        .await
        .unwrap();
    session_of_with(res, false).await.unwrap();

    // GitHub: its verified primary e-mail, PKCE checked by the stand-in; the invite accepted
    // with it links the account's numeric id.
    let gh_email = "gus@oidc.test";
    let gh_invite =
        invite_on(&http, &base, json!({"email": gh_email, "role": "tenant_viewer", "tenant_id": tenant_id}))
            .await;
    let gh_token = gh_invite["invite_url"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    *gh.lock().unwrap() = GitHubState { email: gh_email.into(), verified: false, challenges: vec![] };
    let b = browser();
    let start = b.get(format!("{base}/auth/oidc/github/start?invite={gh_token}")).send().await.unwrap();
    let back = through_provider_from(&b, &base, start, gh_email).await;
    let (s, body) = callback(&b, &back).await.err().unwrap();
    assert_eq!((s, error_code(&body)), (401, Some("oidc_email_unverified")), "{body}");
    gh.lock().unwrap().verified = true;
    let b = browser();
    let start = b.get(format!("{base}/auth/oidc/github/start?invite={gh_token}")).send().await.unwrap();
    let back = through_provider_from(&b, &base, start, gh_email).await;
    let gh_signed = callback(&b, &back).await.unwrap();
    let linked: (String, String) =
        sqlx::query_as("SELECT issuer, subject FROM user_identities WHERE provider = 'github'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(linked, ("https://github.com".to_string(), "583231".to_string()));
    let (s, me) = send(http.get(format!("{base}/auth/me")).header("Cookie", &gh_signed.cookie)).await;
    assert_eq!((s, me["email"].as_str()), (200, Some(gh_email)));

    // The audit trail names the provider and the method.
    let activated: Vec<Value> = sqlx::query_scalar(
        "SELECT payload FROM events WHERE event_type = 'user.activated' ORDER BY position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let providers: Vec<&str> = activated.iter().filter_map(|p| p["provider"].as_str()).collect();
    assert_eq!(providers, ["local", "github"]);
    let oidc_sign_ins: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'user.signed_in' AND payload->>'method' = 'oidc'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(oidc_sign_ins, 5, "local four times (invite, linked, TOTP, pat), GitHub once");

    // No state, code, token, session, TOTP secret, recovery code or invite in the server's
    // log (at debug level).
    let logs = server.logs();
    assert!(logs.contains("signed in"), "the log is the server's");
    let state = back.split("state=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let code = back.split("code=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let mfa_token = challenge["mfa_token"].as_str().unwrap().to_string();
    let canaries = [
        &state,
        &code,
        &mfa_token,
        &secret,
        &invite_token,
        &gh_signed.session,
        &signed.session,
        &signed.csrf,
    ]
    .into_iter()
    .cloned()
    .chain(recovery)
    .chain(["gho_standin".to_string()]);
    for canary in canaries {
        assert!(!logs.contains(&canary), "{canary} in the log");
    }

    // Sessions survive a kill -9 and a new instance.
    let again =
        ServerProcess::start_with(&db, &stream, &[("MASTER_API_KEY", MASTER), ("COOKIE_SECURE", "false")]);
    again.wait_ready(&http).await;
    let (s, me) = send(http.get(format!("{}/auth/me", again.base)).header("Cookie", &gh_signed.cookie)).await;
    assert_eq!((s, me["email"].as_str()), (200, Some(gh_email)), "{me}");
    drop(provider);
}
