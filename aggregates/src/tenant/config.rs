//! Tenant configuration: its schema and validation. Every problem is reported with the JSON
//! path of the field, all at once.
//!
//! ```json
//! { "routes": [{"path": "/v1/chat", "method": "POST", "description": "…"}],
//!   "credentials": {"stripe": {"secret_ref": "STRIPE_SECRET_KEY", "header": "Authorization"}},
//!   "rateLimit": {"enabled": true, "default": {"max": 100, "windowSeconds": 60}},
//!   "cache": {"enabled": true, "ttlSeconds": 300},
//!   "webhooks": [{"url": "https://example.com/hook", "events": ["api_key.revoked"], "secret_ref": "HOOK_SECRET"}],
//!   "providers": [{"name": "openai", "kind": "openai", "base_url": "https://api.openai.com/v1",
//!                  "credential": "openai", "models": ["gpt-4o", "text-embedding-3-small"]}] }
//! ```
//!
//! `providers` are the upstreams `tokenhub gateway` forwards to: `kind` is `openai` (any
//! OpenAI-compatible API) or `tensorzero`; `base_url` includes `/v1`; `credential` names an
//! entry of `credentials`; `models` are the model names it serves (`*`: any). A route of the
//! gateway ([`GATEWAY_ROUTES`]) may name a `provider`: its requests go there.

use std::collections::HashSet;

use serde_json::{Map, Value};

/// One problem: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// JSON path, e.g. `$.routes[1].method`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

struct Checker<'a> {
    issues: Vec<ConfigIssue>,
    secrets: &'a [String],
    allow_private: bool,
}

impl Checker<'_> {
    fn issue(&mut self, path: &str, message: impl Into<String>) {
        self.issues.push(ConfigIssue { path: path.to_string(), message: message.into() });
    }

    fn object<'v>(
        &mut self,
        value: &'v Value,
        path: &str,
        allowed: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Some(map) = value.as_object() else {
            self.issue(path, "must be an object");
            return None;
        };
        for key in map.keys().filter(|k| !allowed.contains(&k.as_str())) {
            self.issue(&format!("{path}.{key}"), "unknown field");
        }
        Some(map)
    }

    fn string<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<&'v str> {
        match map.get(key) {
            None if required => {
                self.issue(&format!("{path}.{key}"), "is required");
                None
            }
            None => None,
            Some(Value::String(s)) if s.len() <= 2048 => Some(s),
            Some(_) => {
                self.issue(&format!("{path}.{key}"), "must be a string of at most 2048 characters");
                None
            }
        }
    }

    fn positive(&mut self, map: &Map<String, Value>, path: &str, key: &str, required: bool) {
        match map.get(key) {
            None if required => self.issue(&format!("{path}.{key}"), "is required"),
            None => {}
            Some(v) if v.as_u64().is_some_and(|n| (1..=u32::MAX as u64).contains(&n)) => {}
            Some(_) => self.issue(&format!("{path}.{key}"), "must be a positive integer"),
        }
    }

    fn boolean(&mut self, map: &Map<String, Value>, path: &str, key: &str) {
        match map.get(key) {
            None => self.issue(&format!("{path}.{key}"), "is required"),
            Some(Value::Bool(_)) => {}
            Some(_) => self.issue(&format!("{path}.{key}"), "must be true or false"),
        }
    }

    fn secret_ref(&mut self, map: &Map<String, Value>, path: &str, required: bool) {
        if let Some(name) = self.string(map, path, "secret_ref", required) {
            if !self.secrets.iter().any(|s| s == name) {
                self.issue(&format!("{path}.secret_ref"), format!("secret '{name}' does not exist"));
            }
        }
    }

    fn routes(&mut self, value: &Value, providers: Option<&Value>) {
        let Some(items) = value.as_array() else { return self.issue("$.routes", "must be an array") };
        let mut seen = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("$.routes[{i}]");
            let Some(map) = self.object(item, &path, &["path", "method", "description", "provider"]) else {
                continue;
            };
            let route = self.string(map, &path, "path", true);
            if route.is_some_and(|r| !r.starts_with('/')) {
                self.issue(&format!("{path}.path"), "must start with /");
            }
            let method = self.string(map, &path, "method", true);
            if let Some(m) = method.filter(|m| !METHODS.contains(m)) {
                self.issue(&format!("{path}.method"), format!("'{m}' is not one of {}", METHODS.join(", ")));
            }
            self.string(map, &path, "description", false);
            if let Some(provider) = self.string(map, &path, "provider", false) {
                let named = providers.and_then(Value::as_array).is_some_and(|ps| {
                    ps.iter().any(|p| p.get("name").and_then(Value::as_str) == Some(provider))
                });
                if !named {
                    self.issue(
                        &format!("{path}.provider"),
                        format!("provider '{provider}' is not in $.providers"),
                    );
                }
                let routable = method == Some("POST") && route.is_some_and(|r| GATEWAY_ROUTES.contains(&r));
                if !routable {
                    self.issue(
                        &path,
                        format!("only POST {} can be sent to a provider", GATEWAY_ROUTES.join(" and POST ")),
                    );
                }
            }
            if let (Some(route), Some(method)) = (route, method) {
                if !seen.insert((route.to_string(), method.to_string())) {
                    self.issue(&path, format!("duplicate route {method} {route}"));
                }
            }
        }
    }

    fn credentials(&mut self, value: &Value) {
        let Some(map) = value.as_object() else { return self.issue("$.credentials", "must be an object") };
        for (name, item) in map {
            let path = format!("$.credentials.{name}");
            if let Some(cred) = self.object(item, &path, &["secret_ref", "header", "prefix"]) {
                self.secret_ref(cred, &path, true);
                if let Some(header) = self.string(cred, &path, "header", false) {
                    if !is_http_token(header) {
                        self.issue(
                            &format!("{path}.header"),
                            "must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)",
                        );
                    }
                }
                if let Some(prefix) = self.string(cred, &path, "prefix", false) {
                    if prefix.chars().any(|c| c.is_control()) || prefix.len() > 64 {
                        self.issue(
                            &format!("{path}.prefix"),
                            "must be at most 64 characters, without control characters",
                        );
                    }
                }
            }
        }
    }

    fn rate_limit(&mut self, value: &Value) {
        let path = "$.rateLimit";
        let Some(map) = self.object(value, path, &["enabled", "default"]) else { return };
        self.boolean(map, path, "enabled");
        match map.get("default") {
            None => self.issue(&format!("{path}.default"), "is required"),
            Some(d) => {
                let dpath = format!("{path}.default");
                if let Some(dm) = self.object(d, &dpath, &["max", "windowSeconds"]) {
                    self.positive(dm, &dpath, "max", true);
                    self.positive(dm, &dpath, "windowSeconds", false);
                }
            }
        }
    }

    fn cache(&mut self, value: &Value) {
        let path = "$.cache";
        if let Some(map) = self.object(value, path, &["enabled", "ttlSeconds"]) {
            self.boolean(map, path, "enabled");
            self.positive(map, path, "ttlSeconds", false);
        }
    }

    fn providers(&mut self, value: &Value, credentials: Option<&Value>) {
        let Some(items) = value.as_array() else { return self.issue("$.providers", "must be an array") };
        let mut names = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("$.providers[{i}]");
            let Some(map) = self.object(item, &path, &["name", "kind", "base_url", "credential", "models"])
            else {
                continue;
            };
            if let Some(name) = self.string(map, &path, "name", true) {
                let ok = (1..=64).contains(&name.len())
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                if !ok {
                    self.issue(&format!("{path}.name"), "must be 1 to 64 of [A-Za-z0-9._-]");
                } else if !names.insert(name.to_string()) {
                    self.issue(&format!("{path}.name"), format!("duplicate provider '{name}'"));
                }
            }
            if let Some(kind) = self.string(map, &path, "kind", true) {
                if !PROVIDER_KINDS.contains(&kind) {
                    self.issue(
                        &format!("{path}.kind"),
                        format!("'{kind}' is not one of {}", PROVIDER_KINDS.join(", ")),
                    );
                }
            }
            if let Some(url) = self.string(map, &path, "base_url", true) {
                if let Some(problem) = upstream_url_problem(url, self.allow_private) {
                    self.issue(&format!("{path}.base_url"), problem);
                }
            }
            if let Some(name) = self.string(map, &path, "credential", false) {
                if credentials.and_then(|c| c.get(name)).is_none() {
                    self.issue(
                        &format!("{path}.credential"),
                        format!("credential '{name}' is not in $.credentials"),
                    );
                }
            }
            match map.get("models").and_then(Value::as_array) {
                Some(models)
                    if !models.is_empty()
                        && models.len() <= 1000
                        && models
                            .iter()
                            .all(|m| m.as_str().is_some_and(|s| (1..=256).contains(&s.len()))) => {}
                _ => self.issue(&format!("{path}.models"), "must be a non-empty array of model names"),
            }
        }
    }

    fn webhooks(&mut self, value: &Value) {
        let Some(items) = value.as_array() else { return self.issue("$.webhooks", "must be an array") };
        for (i, item) in items.iter().enumerate() {
            let path = format!("$.webhooks[{i}]");
            let Some(map) = self.object(item, &path, &["url", "events", "secret_ref"]) else { continue };
            if let Some(url) = self.string(map, &path, "url", true) {
                if let Some(problem) = webhook_url_problem(url, self.allow_private) {
                    self.issue(&format!("{path}.url"), problem);
                }
            }
            match map.get("events").and_then(Value::as_array) {
                Some(events)
                    if !events.is_empty()
                        && events.iter().all(|e| e.as_str().is_some_and(|s| !s.is_empty())) => {}
                _ => self.issue(&format!("{path}.events"), "must be a non-empty array of event types"),
            }
            self.secret_ref(map, &path, false);
        }
    }
}

/// True for an HTTP token (RFC 9110 `tchar`s), as header names must be.
pub fn is_http_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub use crate::special_addresses::is_internal_address;

/// The gateway's routes a tenant's `routes` may send to one of its providers (`provider`):
/// requests on such a path go to that provider instead of the first that serves the model.
pub const GATEWAY_ROUTES: &[&str] = &["/v1/chat/completions", "/v1/embeddings"];

/// The kinds of upstream provider the gateway speaks to.
pub const PROVIDER_KINDS: &[&str] = &["openai", "tensorzero"];

/// Why `raw` is not an acceptable upstream base URL, if it is not: the webhook rules (https,
/// no user info, no internal address unless `allow_private`).
pub fn upstream_url_problem(raw: &str, allow_private: bool) -> Option<&'static str> {
    webhook_url_problem(raw, allow_private)
}

/// Why `raw` is not an acceptable webhook URL, if it is not. Parsed with the `url` crate (the
/// WHATWG rules a client would follow, so `http://0x7f.1/` is 127.0.0.1): https only (http
/// too when internal targets are allowed, for local development), no user info, a host, and
/// no internal address unless `allow_private`. A host name is checked again when it is
/// resolved at delivery.
pub fn webhook_url_problem(raw: &str, allow_private: bool) -> Option<&'static str> {
    let Ok(url) = url::Url::parse(raw) else { return Some("must be an absolute URL") };
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Some("must be https"),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Some("must not contain user info (user:password@)");
    }
    let internal = match url.host() {
        None => return Some("must name a host"),
        Some(url::Host::Ipv4(ip)) => is_internal_address(ip.into()),
        Some(url::Host::Ipv6(ip)) => is_internal_address(ip.into()),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost") || d.ends_with(".local") || d.ends_with(".internal")
        }
    };
    if internal && !allow_private {
        return Some("must not target a loopback, private, link-local or other internal address (WEBHOOK_ALLOW_PRIVATE_TARGETS=true allows it)");
    }
    None
}

/// Normalises a document before it is validated and stored: route methods are upper-cased
/// (the published examples send `"get"`), so methods are case-insensitive on input and
/// canonical in the log.
pub fn normalise(config: &mut Value) {
    if let Some(routes) = config.get_mut("routes").and_then(Value::as_array_mut) {
        for route in routes {
            if let Some(method) = route.get_mut("method") {
                if let Some(m) = method.as_str() {
                    *method = Value::String(m.to_ascii_uppercase());
                }
            }
        }
    }
}

/// Validates a configuration document against the schema, with `secrets` the names of the
/// tenant's existing secrets and whether webhooks may target internal addresses. Returns
/// every problem found.
pub fn validate(
    config: &Value,
    secrets: &[String],
    allow_private_webhooks: bool,
) -> Result<(), Vec<ConfigIssue>> {
    let mut checker = Checker { issues: Vec::new(), secrets, allow_private: allow_private_webhooks };
    if let Some(map) =
        checker.object(config, "$", &["routes", "credentials", "rateLimit", "cache", "webhooks", "providers"])
    {
        let map = map.clone();
        if let Some(v) = map.get("routes") {
            checker.routes(v, map.get("providers"));
        }
        if let Some(v) = map.get("credentials") {
            checker.credentials(v);
        }
        if let Some(v) = map.get("rateLimit") {
            checker.rate_limit(v);
        }
        if let Some(v) = map.get("cache") {
            checker.cache(v);
        }
        if let Some(v) = map.get("webhooks") {
            checker.webhooks(v);
        }
        if let Some(v) = map.get("providers") {
            checker.providers(v, map.get("credentials"));
        }
    }
    if checker.issues.is_empty() {
        Ok(())
    } else {
        Err(checker.issues)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn paths(config: Value) -> Vec<String> {
        validate(&config, &["STRIPE_SECRET_KEY".to_string()], false)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|i| i.path)
            .collect()
    }

    #[test]
    fn providers_are_checked_field_by_field() {
        let creds = json!({"up": {"secret_ref": "STRIPE_SECRET_KEY"}});
        let good = json!({"credentials": creds, "providers": [{"name": "openai", "kind": "openai",
            "base_url": "https://api.openai.com/v1", "credential": "up", "models": ["gpt-4o"]}]});
        assert!(paths(good).is_empty());
        let bad = json!({"credentials": creds, "providers": [
            {"name": "a b", "kind": "anthropic", "base_url": "http://10.0.0.1/v1", "credential": "nope", "models": []},
            {"name": "x", "kind": "openai", "base_url": "https://example.com/v1", "models": ["m"], "extra": 1},
            {"name": "x", "kind": "tensorzero", "base_url": "https://example.com/v1", "models": ["m"]}
        ]});
        assert_eq!(
            paths(bad),
            [
                "$.providers[0].name",
                "$.providers[0].kind",
                "$.providers[0].base_url",
                "$.providers[0].credential",
                "$.providers[0].models",
                "$.providers[1].extra",
                "$.providers[2].name",
            ]
        );
    }

    #[test]
    fn a_route_sends_a_gateway_path_to_a_named_provider() {
        let providers = json!([{"name": "embed", "kind": "openai", "base_url": "https://e.example.com/v1", "models": ["*"]}]);
        let good = json!({"providers": providers, "routes": [
            {"path": "/v1/embeddings", "method": "post", "provider": "embed"}]});
        let mut normalised = good.clone();
        normalise(&mut normalised);
        assert!(paths(normalised).is_empty());
        let bad = json!({"providers": providers, "routes": [
            {"path": "/v1/embeddings", "method": "POST", "provider": "nope"},
            {"path": "/v1/other", "method": "POST", "provider": "embed"},
            {"path": "/v1/chat/completions", "method": "GET", "provider": "embed"}]});
        assert_eq!(paths(bad), ["$.routes[0].provider", "$.routes[1]", "$.routes[2]"]);
        let no_providers =
            json!({"routes": [{"path": "/v1/embeddings", "method": "POST", "provider": "embed"}]});
        assert_eq!(paths(no_providers), ["$.routes[0].provider"]);
    }

    #[test]
    fn a_valid_document_passes() {
        let ok = json!({
            "routes": [{"path": "/v1/chat", "method": "POST", "description": "chat"}, {"path": "/v1/chat", "method": "GET"}],
            "credentials": {"stripe": {"secret_ref": "STRIPE_SECRET_KEY", "header": "Authorization"}},
            "rateLimit": {"enabled": true, "default": {"max": 100, "windowSeconds": 60}},
            "cache": {"enabled": false},
            "webhooks": [{"url": "https://example.com/h", "events": ["api_key.revoked"]}]
        });
        assert_eq!(validate(&ok, &["STRIPE_SECRET_KEY".into()], false), Ok(()));
        assert_eq!(validate(&json!({}), &[], false), Ok(()));
    }

    #[test]
    fn every_problem_is_named_by_its_path() {
        let bad = json!({
            "routes": [{"path": "/a", "method": "FETCH"}, {"path": "/a", "method": "GET"}, {"path": "/a", "method": "GET", "x": 1}],
            "credentials": {"jira": {"secret_ref": "JIRA_TOKEN"}},
            "rateLimit": {"enabled": "yes", "default": {"max": 0}},
            "webhooks": [{"url": "http://example.com/h", "events": []}],
            "extra": true
        });
        assert_eq!(
            paths(bad),
            [
                "$.extra",
                "$.routes[0].method",
                "$.routes[2].x",
                "$.routes[2]",
                "$.credentials.jira.secret_ref",
                "$.rateLimit.enabled",
                "$.rateLimit.default.max",
                "$.webhooks[0].url",
                "$.webhooks[0].events",
            ]
        );
    }

    #[test]
    fn webhook_urls() {
        for ok in [
            "https://x.io",
            "https://hooks.example.com:8443/a?b=c",
            "https://8.8.8.8/h",
            "https://[2001:4860::8888]/h",
        ] {
            assert_eq!(webhook_url_problem(ok, false), None, "{ok}");
        }
        for bad in [
            "http://x.io",
            "ftp://x",
            "https://",
            "not a url",
            // User info: the host is evil.example, not localhost (finding 13).
            "https://localhost:1@evil.example/",
            "https://user@example.com/",
            // Internal targets, in every spelling the URL standard accepts.
            "https://169.254.169.254/latest/meta-data",
            "https://127.0.0.1/h",
            "https://0x7f.1/h",
            "https://2130706433/h",
            "https://0/h",
            "https://10.1.2.3/h",
            "https://172.16.0.1/h",
            "https://192.168.1.1/h",
            "https://100.64.0.1/h",
            "https://224.0.0.1/h",
            "https://255.255.255.255/h",
            "https://[::1]/h",
            "https://[::]/h",
            "https://[fe80::1]/h",
            "https://[fd00::1]/h",
            "https://[::ffff:127.0.0.1]/h",
            "https://[::ffff:169.254.169.254]/h",
            "https://localhost/h",
            "https://api.localhost/h",
            "https://metadata.google.internal/h",
        ] {
            assert!(webhook_url_problem(bad, false).is_some(), "{bad}");
        }
        // The operator may allow internal targets (local development), http too.
        assert_eq!(webhook_url_problem("http://127.0.0.1:9000/h", true), None);
        assert!(webhook_url_problem("https://u:p@127.0.0.1/h", true).is_some(), "user info never");
    }

    #[test]
    fn credential_header_names_are_http_tokens() {
        let bad = json!({"credentials": {"s": {"secret_ref": "STRIPE_SECRET_KEY", "header": "X-Key\r\nInjected: 1"}}});
        assert_eq!(paths(bad), ["$.credentials.s.header"]);
        for h in ["Authorization", "X-Api-Key", "x_custom.header"] {
            assert!(is_http_token(h), "{h}");
        }
        for h in ["", "Bad Header", "a:b", "é"] {
            assert!(!is_http_token(h), "{h}");
        }
    }
}
