//! Tenant configuration: its schema and validation. Every problem is reported with the JSON
//! path of the field, all at once.
//!
//! ```json
//! { "routes": [{"path": "/v1/chat", "method": "POST", "description": "…"}],
//!   "credentials": {"stripe": {"secret_ref": "STRIPE_SECRET_KEY", "header": "Authorization"}},
//!   "rateLimit": {"enabled": true, "default": {"max": 100, "windowSeconds": 60}},
//!   "cache": {"enabled": true, "ttlSeconds": 300},
//!   "webhooks": [{"url": "https://example.com/hook", "events": ["api_key.revoked"], "secret_ref": "HOOK_SECRET"}] }
//! ```

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

    fn routes(&mut self, value: &Value) {
        let Some(items) = value.as_array() else { return self.issue("$.routes", "must be an array") };
        let mut seen = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("$.routes[{i}]");
            let Some(map) = self.object(item, &path, &["path", "method", "description"]) else { continue };
            let route = self.string(map, &path, "path", true);
            if route.is_some_and(|r| !r.starts_with('/')) {
                self.issue(&format!("{path}.path"), "must start with /");
            }
            let method = self.string(map, &path, "method", true);
            if let Some(m) = method.filter(|m| !METHODS.contains(m)) {
                self.issue(&format!("{path}.method"), format!("'{m}' is not one of {}", METHODS.join(", ")));
            }
            self.string(map, &path, "description", false);
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
                self.string(cred, &path, "header", false);
                self.string(cred, &path, "prefix", false);
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

    fn webhooks(&mut self, value: &Value) {
        let Some(items) = value.as_array() else { return self.issue("$.webhooks", "must be an array") };
        for (i, item) in items.iter().enumerate() {
            let path = format!("$.webhooks[{i}]");
            let Some(map) = self.object(item, &path, &["url", "events", "secret_ref"]) else { continue };
            if let Some(url) = self.string(map, &path, "url", true) {
                if !webhook_url_ok(url) {
                    self.issue(
                        &format!("{path}.url"),
                        "must be https (http only for localhost, 127.0.0.1 or [::1])",
                    );
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

fn webhook_url_ok(url: &str) -> bool {
    let host_of = |rest: &str| rest.split(['/', '?', '#']).next().unwrap_or_default().to_string();
    if let Some(rest) = url.strip_prefix("https://") {
        return !host_of(rest).is_empty();
    }
    if let Some(rest) = url.strip_prefix("http://") {
        let host = host_of(rest);
        let name = if host.starts_with('[') {
            host.split(']').next().map(|h| format!("{h}]")).unwrap_or_default()
        } else {
            host.split(':').next().unwrap_or_default().to_string()
        };
        return matches!(name.as_str(), "localhost" | "127.0.0.1" | "[::1]");
    }
    false
}

/// Validates a configuration document against the schema, with `secrets` the names of the
/// tenant's existing secrets. Returns every problem found.
pub fn validate(config: &Value, secrets: &[String]) -> Result<(), Vec<ConfigIssue>> {
    let mut checker = Checker { issues: Vec::new(), secrets };
    if let Some(map) =
        checker.object(config, "$", &["routes", "credentials", "rateLimit", "cache", "webhooks"])
    {
        let map = map.clone();
        if let Some(v) = map.get("routes") {
            checker.routes(v);
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
        validate(&config, &["STRIPE_SECRET_KEY".to_string()])
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|i| i.path)
            .collect()
    }

    #[test]
    fn a_valid_document_passes() {
        let ok = json!({
            "routes": [{"path": "/v1/chat", "method": "POST", "description": "chat"}, {"path": "/v1/chat", "method": "GET"}],
            "credentials": {"stripe": {"secret_ref": "STRIPE_SECRET_KEY", "header": "Authorization"}},
            "rateLimit": {"enabled": true, "default": {"max": 100, "windowSeconds": 60}},
            "cache": {"enabled": false},
            "webhooks": [{"url": "https://example.com/h", "events": ["api_key.revoked"]}, {"url": "http://127.0.0.1:9000/h", "events": ["x"]}]
        });
        assert_eq!(validate(&ok, &["STRIPE_SECRET_KEY".into()]), Ok(()));
        assert_eq!(validate(&json!({}), &[]), Ok(()));
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
        for ok in ["https://x.io", "http://localhost/h", "http://127.0.0.1:8080/h", "http://[::1]:80/h"] {
            assert!(webhook_url_ok(ok), "{ok}");
        }
        for bad in
            ["http://x.io", "ftp://x", "https://", "http://localhost.evil.com/h", "http://127.0.0.1.nip.io"]
        {
            assert!(!webhook_url_ok(bad), "{bad}");
        }
    }
}
