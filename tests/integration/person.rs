//! Helpers for people's tests: invite, accept, sign in (password, then a TOTP code computed by
//! an independent implementation, Debian's `oathtool`), and the session's cookie and CSRF
//! token.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

/// A password that passes the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// A signed-in session.
pub struct Signed {
    /// The `Cookie` header value (session and CSRF cookies).
    pub cookie: String,
    /// The CSRF token.
    pub csrf: String,
    /// The session cookie's value.
    pub session: String,
}

impl Signed {
    /// A request carrying the session (and the CSRF token).
    pub fn request(&self, app: &TestApp, method: Method, path: &str) -> reqwest::RequestBuilder {
        app.http
            .request(method, app.url(path))
            .header("Cookie", &self.cookie)
            .header("X-CSRF-Token", &self.csrf)
    }
}

/// The TOTP code of base32 `secret` at unix time `at` (RFC 6238: HMAC-SHA-1, 6 digits, 30 s),
/// computed here with the `hmac` and `sha1` crates — an implementation independent of the
/// server's (`totp-rs`); `oathtool_agrees` checks it against Debian's `oathtool` too.
pub fn oathtool(secret: &str, at: i64) -> String {
    use hmac::{Hmac, Mac};
    let key = base32_decode(secret);
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&key).unwrap();
    mac.update(&((at.max(0) as u64) / 30).to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let value = u32::from_be_bytes(digest[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", value % 1_000_000)
}

/// RFC 4648 base32 without padding.
pub fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut value, mut out) = (0u32, 0u64, Vec::new());
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).unwrap() as u64;
        value = (value << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((value >> bits) as u8);
        }
    }
    out
}

/// The helper against RFC 6238's vectors, and against `oathtool` where it is installed
/// (`.ci/run` installs it; a machine without it still checks the vectors).
#[test]
fn oathtool_agrees() {
    // "12345678901234567890" in base32.
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    for (at, code) in
        [(59, "287082"), (1_111_111_109, "081804"), (1_234_567_890, "005924"), (2_000_000_000, "279037")]
    {
        assert_eq!(oathtool(secret, at), code, "at {at}");
        if let Ok(out) = std::process::Command::new("oathtool")
            .args(["--totp", "-b", "--now"])
            .arg(format!("@{at}"))
            .arg(secret)
            .output()
        {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), code, "oathtool at {at}");
        }
    }
}

/// Now, in unix seconds.
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Invites (as the super admin) and answers the invite token.
pub async fn invite(app: &TestApp, body: Value) -> String {
    let (s, invite) = send(app.admin(Method::POST, "/admin/users").json(&body)).await;
    assert_eq!(s, 201, "{invite}");
    let url = invite["invite_url"].as_str().unwrap();
    url.rsplit('/').next().unwrap().to_string()
}

/// Accepts an invite.
pub async fn accept(app: &TestApp, token: &str, password: &str) -> (u16, Value) {
    send(
        app.http.post(app.url(&format!("/auth/invites/{token}/accept"))).json(&json!({"password": password})),
    )
    .await
}

/// The session of a sign-in's answer, or its status and body.
pub async fn session_of(res: reqwest::Response) -> Result<Signed, (u16, Value)> {
    session_of_with(res, true).await
}

/// [`session_of`] of a server with `COOKIE_SECURE=secure`.
pub async fn session_of_with(res: reqwest::Response, secure: bool) -> Result<Signed, (u16, Value)> {
    let status = res.status().as_u16();
    let cookies: Vec<String> =
        res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if status != 200 || body.get("mfa_token").is_some() {
        return Err((status, body));
    }
    let value = |name: &str| {
        cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap()[name.len() + 1..].to_string())
            .unwrap()
    };
    let session_cookie = cookies.iter().find(|c| c.starts_with("tokenhub_session=")).unwrap();
    assert!(
        session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"),
        "{session_cookie}"
    );
    assert_eq!(session_cookie.contains("Secure"), secure, "Secure by default: {session_cookie}");
    let (session, csrf) = (value("tokenhub_session"), value("tokenhub_csrf"));
    assert_eq!(body["csrf_token"].as_str(), Some(csrf.as_str()));
    Ok(Signed { cookie: format!("tokenhub_session={session}; tokenhub_csrf={csrf}"), csrf, session })
}

/// `POST /auth/login`: a session, or the status and body (an `mfa_token` answer included).
pub async fn login(app: &TestApp, email: &str, password: &str) -> Result<Signed, (u16, Value)> {
    let res = app.http.post(app.url("/auth/login")).json(&json!({"email": email, "password": password}));
    session_of(res.send().await.unwrap()).await
}

/// `POST /auth/login` for an account with TOTP on: its `mfa_token`.
pub async fn login_mfa_token(app: &TestApp, email: &str, password: &str) -> String {
    match login(app, email, password).await {
        Err((200, body)) => body["mfa_token"].as_str().unwrap().to_string(),
        Err(other) => panic!("login: {other:?}"),
        Ok(_) => panic!("login with TOTP on answered a session"),
    }
}

/// `POST /auth/login/mfa` with `body` (`code` or `recovery_code`) added to the token.
pub async fn login_mfa(app: &TestApp, mfa_token: &str, mut body: Value) -> Result<Signed, (u16, Value)> {
    body["mfa_token"] = json!(mfa_token);
    session_of(app.http.post(app.url("/auth/login/mfa")).json(&body).send().await.unwrap()).await
}

/// Enrols TOTP in `signed`'s session: (base32 secret, recovery codes, the unix time whose code
/// confirmed it).
pub async fn enrol(app: &TestApp, signed: &Signed) -> (String, Vec<String>, i64) {
    let (s, enrolment) = send(signed.request(app, Method::POST, "/auth/totp/enroll")).await;
    assert_eq!(s, 200, "{enrolment}");
    let secret = enrolment["secret"].as_str().unwrap().to_string();
    let at = unix_now();
    let (s, codes) = send(
        signed.request(app, Method::POST, "/auth/totp/confirm").json(&json!({"code": oathtool(&secret, at)})),
    )
    .await;
    assert_eq!(s, 200, "{codes}");
    let codes = codes["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string());
    (secret, codes.collect(), at)
}

/// A person of `role` (in `tenant_id` for tenant roles), invited, active, signed in, with
/// TOTP enrolled where their role requires it.
pub async fn person(app: &TestApp, email: &str, role: &str, tenant_id: Option<&str>) -> Signed {
    let mut body = json!({"email": email, "role": role});
    if let Some(tenant_id) = tenant_id {
        body["tenant_id"] = json!(tenant_id);
    }
    let token = invite(app, body).await;
    assert_eq!(accept(app, &token, PASSWORD).await.0, 200);
    let signed = login(app, email, PASSWORD).await.unwrap();
    if tenant_id.is_none() {
        enrol(app, &signed).await;
    }
    signed
}
