//! Where a request goes: the provider a tenant's `routes` name for its path, else the first
//! of the tenant configuration's `providers` (each with its credential, a tenant secret opened
//! in memory only), then of the platform's (`GATEWAY_PROVIDERS`), that serves its model. A tenant's
//! upstreams are read from the query tables at most once a second ([`REFRESH`]) and kept in
//! memory; the request path never calls the control API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use axum::http::Uri;
use dashmap::DashMap;
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;
use tokenhub_aggregates::tenant::config::upstream_url_problem;

use crate::crypto::data_keys::Keks;

/// How long a tenant's upstreams are used before they are read again.
pub const REFRESH: Duration = Duration::from_secs(1);

/// What an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any OpenAI-compatible API: key-bound tags go in the `X-TokenHub-Tags` header.
    OpenAi,
    /// TensorZero's OpenAI-compatible API: key-bound tags go in the body's `tensorzero::tags`.
    TensorZero,
}

/// An upstream.
#[derive(Clone)]
pub struct Provider {
    /// Name (the `owned_by` of `/v1/models`).
    pub name: String,
    /// What it speaks.
    pub kind: Kind,
    /// Its OpenAI base URL, with `/v1`, without a trailing slash.
    pub base_url: String,
    /// The header that carries its credential (sensitive: never logged).
    pub auth: Option<(HeaderName, HeaderValue)>,
    /// The models it serves (`*`: any).
    pub models: Vec<String>,
    /// Its chat and embeddings URLs, parsed once (`None`: `base_url` is not a URL).
    urls: Option<[Uri; 2]>,
    /// Why the outbound rules refuse `base_url`: without and with private upstreams allowed.
    problems: [Option<&'static str>; 2],
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// A provider at `base_url` (its trailing slash dropped), its URLs parsed and its outbound
    /// rules checked once, not on every request: `base_url` is the provider's OpenAI base
    /// with `/v1`, so requests go to `{base_url}/chat/completions` and `{base_url}/embeddings`.
    pub fn new(
        name: String,
        kind: Kind,
        base_url: &str,
        auth: Option<(HeaderName, HeaderValue)>,
        models: Vec<String>,
    ) -> Self {
        let base_url = base_url.trim_end_matches('/').to_string();
        // Parsed as a URL first (its host in ASCII, its path normalised), then as the URI sent.
        let url = |path: &str| {
            url::Url::parse(&format!("{base_url}{path}")).ok().and_then(|u| u.as_str().parse::<Uri>().ok())
        };
        let urls = url("/chat/completions").zip(url("/embeddings")).map(|(c, e)| [c, e]);
        let problems = [upstream_url_problem(&base_url, false), upstream_url_problem(&base_url, true)];
        Self { name, kind, base_url, auth, models, urls, problems }
    }

    /// Where a request goes: `embeddings` or chat completions.
    pub fn url(&self, embeddings: bool) -> Option<&Uri> {
        self.urls.as_ref().map(|u| &u[usize::from(embeddings)])
    }

    /// Why the outbound rules refuse it, if they do.
    pub fn problem(&self, allow_private: bool) -> Option<&'static str> {
        self.problems[usize::from(allow_private)]
    }

    /// Whether it serves `model`.
    pub fn serves(&self, model: &str) -> bool {
        self.models.iter().any(|m| m == model || m == "*")
    }
}

/// A platform provider as `GATEWAY_PROVIDERS` gives it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlatformProvider {
    name: String,
    kind: String,
    base_url: String,
    models: Vec<String>,
    #[serde(default)]
    api_key_env: Option<String>,
}

fn kind_of(raw: &str) -> Option<Kind> {
    match raw {
        "openai" => Some(Kind::OpenAi),
        "tensorzero" => Some(Kind::TensorZero),
        _ => None,
    }
}

fn bearer(secret: &str) -> Option<(HeaderName, HeaderValue)> {
    let mut value = HeaderValue::from_str(&format!("Bearer {secret}")).ok()?;
    value.set_sensitive(true);
    Some((AUTHORIZATION, value))
}

/// Parses `GATEWAY_PROVIDERS`.
pub fn platform_from_env(raw: &str) -> Result<Vec<Provider>, String> {
    let parsed: Vec<PlatformProvider> = serde_json::from_str(raw)
        .map_err(|e| format!("GATEWAY_PROVIDERS is not a JSON array of providers: {e}"))?;
    parsed
        .into_iter()
        .map(|p| {
            let kind = kind_of(&p.kind)
                .ok_or_else(|| format!("GATEWAY_PROVIDERS: kind '{}' is not openai or tensorzero", p.kind))?;
            let auth = match &p.api_key_env {
                Some(var) => {
                    let secret =
                        std::env::var(var).map_err(|_| format!("GATEWAY_PROVIDERS: {var} is not set"))?;
                    Some(
                        bearer(&secret)
                            .ok_or_else(|| format!("GATEWAY_PROVIDERS: {var} is not a header value"))?,
                    )
                }
                None => None,
            };
            Ok(Provider::new(p.name, kind, &p.base_url, auth, p.models))
        })
        .collect()
}

/// A tenant's own upstreams: its providers, and the gateway routes it sends to one of them.
#[derive(Debug, Default)]
pub struct TenantUpstreams {
    /// Its providers, in the configuration's order.
    pub providers: Vec<Arc<Provider>>,
    /// (gateway path, provider name): requests on the path go to that provider.
    pub routes: Vec<(String, String)>,
}

/// Why no provider takes a request.
#[derive(Debug, PartialEq, Eq)]
pub enum NoProvider {
    /// No provider serves the model.
    Model,
    /// The tenant routes the path to this provider, and it does not serve the model (or is gone).
    Routed(String),
}

/// The upstreams of every tenant, cached.
pub struct Providers {
    platform: Vec<Arc<Provider>>,
    tenants: DashMap<String, (Instant, Arc<TenantUpstreams>)>,
}

impl Providers {
    /// With the platform's providers.
    pub fn new(platform: Vec<Provider>) -> Self {
        Self { platform: platform.into_iter().map(Arc::new).collect(), tenants: DashMap::new() }
    }

    /// The platform's providers (`GATEWAY_PROVIDERS`), after every tenant's own.
    pub fn platform(&self) -> &[Arc<Provider>] {
        &self.platform
    }

    /// The tenant's own upstreams (read at most once per [`REFRESH`]).
    pub async fn of(&self, pool: &PgPool, keks: &Keks, tenant: &str) -> Result<Arc<TenantUpstreams>, String> {
        let cached = self.tenants.get(tenant).filter(|e| e.0.elapsed() < REFRESH).map(|e| e.1.clone());
        match cached {
            Some(own) => Ok(own),
            None => {
                let own = Arc::new(load(pool, keks, tenant).await?);
                self.tenants.insert(tenant.to_string(), (Instant::now(), own.clone()));
                Ok(own)
            }
        }
    }

    /// Where a request on `path` for `model` goes: the provider the tenant routes the path to,
    /// else the first of its own, then the platform's, that serves the model.
    pub fn pick<'a>(
        &'a self,
        own: &'a TenantUpstreams,
        path: &str,
        model: &str,
    ) -> Result<&'a Arc<Provider>, NoProvider> {
        if let Some((_, name)) = own.routes.iter().find(|(p, _)| p == path) {
            return own
                .providers
                .iter()
                .find(|p| &p.name == name && p.serves(model))
                .ok_or_else(|| NoProvider::Routed(name.clone()));
        }
        own.providers.iter().chain(&self.platform).find(|p| p.serves(model)).ok_or(NoProvider::Model)
    }
}

/// Reads the tenant's `providers` and opens their credentials.
async fn load(pool: &PgPool, keks: &Keks, tenant: &str) -> Result<TenantUpstreams, String> {
    let Some((_, config)) = tokenhub_projections::read::tenants::config(pool, tenant)
        .await
        .map_err(|e| format!("database: {e}"))?
    else {
        return Ok(TenantUpstreams::default());
    };
    let routes = config
        .get("routes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| r.get("method").and_then(Value::as_str) == Some("POST"))
        .filter_map(|r| {
            Some((r.get("path")?.as_str()?.to_string(), r.get("provider")?.as_str()?.to_string()))
        })
        .collect();
    let mut out = Vec::new();
    for p in config.get("providers").and_then(Value::as_array).into_iter().flatten() {
        let text = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(name), Some(kind), Some(base_url)) =
            (text("name"), text("kind").as_deref().and_then(kind_of), text("base_url"))
        else {
            continue;
        };
        let models = p
            .get("models")
            .and_then(Value::as_array)
            .map(|m| m.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let auth = match text("credential") {
            None => None,
            Some(credential) => {
                let c = config.get("credentials").and_then(|c| c.get(&credential));
                let secret_ref = c.and_then(|c| c.get("secret_ref")).and_then(Value::as_str);
                let Some(secret_ref) = secret_ref else { continue };
                let opened = crate::crypto::secrets::open_current(pool, keks, tenant, secret_ref)
                    .await
                    .map_err(|e| format!("credential {credential}: {e}"))?;
                let Some((_, secret)) = opened else { continue };
                let secret =
                    String::from_utf8(secret).map_err(|_| format!("credential {credential} is not text"))?;
                match c.and_then(|c| c.get("header")).and_then(Value::as_str) {
                    Some(header) => {
                        let prefix =
                            c.and_then(|c| c.get("prefix")).and_then(Value::as_str).unwrap_or_default();
                        let (Ok(name), Ok(mut value)) = (
                            HeaderName::try_from(header),
                            HeaderValue::from_str(&format!("{prefix}{secret}")),
                        ) else {
                            continue;
                        };
                        value.set_sensitive(true);
                        Some((name, value))
                    }
                    None => bearer(&secret),
                }
            }
        };
        out.push(Arc::new(Provider::new(name, kind, &base_url, auth, models)));
    }
    Ok(TenantUpstreams { providers: out, routes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(base_url: &str) -> Provider {
        Provider::new("p".into(), Kind::OpenAi, base_url, None, vec!["*".into()])
    }

    #[test]
    fn urls_are_parsed_and_checked_once_with_the_outbound_rules() {
        let public = provider("https://api.example.com/v1/");
        assert_eq!(
            public.url(false).map(ToString::to_string).as_deref(),
            Some("https://api.example.com/v1/chat/completions")
        );
        assert_eq!(
            public.url(true).map(ToString::to_string).as_deref(),
            Some("https://api.example.com/v1/embeddings")
        );
        // A host in Unicode goes in ASCII; a space is escaped.
        let unicode = provider("https://bücher.example/v 1");
        assert_eq!(
            unicode.url(false).map(ToString::to_string).as_deref(),
            Some("https://xn--bcher-kva.example/v%201/chat/completions")
        );
        assert_eq!((public.problem(false), public.problem(true)), (None, None));

        let local = provider("http://127.0.0.1:9000/v1");
        assert!(local.problem(false).is_some(), "a private upstream is refused by default");
        assert_eq!(local.problem(true), None, "and allowed with GATEWAY_ALLOW_PRIVATE_UPSTREAMS");

        for odd in ["", "not a url", "ftp://example.com/v1", "https://user:pw@example.com/v1"] {
            let p = provider(odd);
            assert!(p.url(false).is_none() || p.problem(true).is_some(), "{odd:?} is refused");
        }
    }
}
