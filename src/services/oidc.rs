//! Sign-in with OpenID providers (`openidconnect`): the authorization code flow with PKCE
//! (S256), `state` and `nonce`. The callback checks the state against the browser that
//! started it, exchanges the code, and verifies the ID token (signature against the JWKS from
//! discovery, `iss`, `aud`, `exp`, `nonce`); the verified e-mail names the account. GitHub is
//! OAuth2 without ID tokens: its verified primary e-mail comes from its `/user/emails` API
//! (`oauth2`), behind the same routes.
//!
//! Providers come from `OIDC_PROVIDERS=google,microsoft,…`, each with `OIDC_<NAME>_ISSUER`,
//! `OIDC_<NAME>_CLIENT_ID` and `OIDC_<NAME>_CLIENT_SECRET`; `github` needs no issuer
//! (`OIDC_GITHUB_AUTH_URL`, `_TOKEN_URL`, `_API_URL` point it elsewhere, e.g. GitHub Enterprise).
//! The redirect URI to register at the provider is `{PUBLIC_URL}/auth/oidc/<name>/callback`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use oauth2::basic::BasicClient;
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse,
};
use tokio::sync::RwLock;

use crate::error::Code;
use crate::error::{Failure, Outcome};

/// How long discovery (with the provider's keys) is kept before it is fetched again; a
/// signature that fails against the kept keys fetches them again at once (key rotation).
const DISCOVERY_TTL: Duration = Duration::from_secs(15 * 60);

/// A client built from discovery (authorization URL set; token and user-info URLs as
/// discovered).
type DiscoveredClient = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// The kind of provider.
#[derive(Debug, Clone)]
enum Kind {
    /// A standard OpenID provider (Google, Microsoft, Okta, …).
    Oidc { issuer: IssuerUrl },
    /// GitHub's OAuth2 and e-mail API.
    GitHub { auth_url: String, token_url: String, api_url: String },
}

/// One configured provider.
pub struct Provider {
    name: String,
    kind: Kind,
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    discovered: RwLock<Option<(Instant, CoreProviderMetadata)>>,
}

/// The configured providers and the HTTP client that talks to them (no redirects followed,
/// 10 s timeout).
pub struct Providers {
    providers: BTreeMap<String, Provider>,
    http: openidconnect::reqwest::Client,
}

/// Who the provider vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The provider's issuer (`https://github.com` for GitHub).
    pub issuer: String,
    /// The subject at that issuer (GitHub: the account's numeric id).
    pub subject: String,
    /// The e-mail the provider verified.
    pub email: String,
}

/// The issuer GitHub identities are recorded under (GitHub is OAuth2, with no issuer of its
/// own).
pub const GITHUB_ISSUER: &str = "https://github.com";

/// Where to send the browser, and what to remember.
pub struct Started {
    /// The provider's authorization URL.
    pub url: String,
    /// The `state` parameter.
    pub state: String,
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier.
    pub verifier: String,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

fn unavailable(provider: &str, e: impl std::fmt::Display) -> Failure {
    tracing::warn!(provider, error = %e, "OpenID provider unavailable");
    Failure::new(
        Code::OidcProviderUnavailable,
        format!("the provider {provider} could not be reached; retry later"),
    )
    .retry_after(5)
}

fn token_invalid(reason: impl std::fmt::Display) -> Failure {
    tracing::info!(msg = "Sign-in failed", reason = %reason, "OpenID ID token refused");
    Failure::new(Code::OidcIdTokenInvalid, format!("the provider's ID token was refused: {reason}"))
}

impl Provider {
    /// Its name in `OIDC_PROVIDERS`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Providers {
    /// The providers named in `names` (comma-separated), configured from the environment.
    pub fn from_env(names: &str, public_url: &str) -> Result<Self, String> {
        let http = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("OIDC HTTP client: {e}"))?;
        let mut providers = BTreeMap::new();
        for name in names.split(',').map(|n| n.trim().to_ascii_lowercase()).filter(|n| !n.is_empty()) {
            if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) || name.len() > 32 {
                return Err(format!("OIDC_PROVIDERS: {name:?} is not a name of 1 to 32 letters and digits"));
            }
            let var = |suffix: &str| format!("OIDC_{}_{suffix}", name.to_ascii_uppercase());
            let need = |suffix: &str| env(&var(suffix)).ok_or_else(|| format!("{} is not set", var(suffix)));
            let kind = if name == "github" {
                Kind::GitHub {
                    auth_url: env(&var("AUTH_URL"))
                        .unwrap_or_else(|| "https://github.com/login/oauth/authorize".into()),
                    token_url: env(&var("TOKEN_URL"))
                        .unwrap_or_else(|| "https://github.com/login/oauth/access_token".into()),
                    api_url: env(&var("API_URL")).unwrap_or_else(|| "https://api.github.com".into()),
                }
            } else {
                let issuer =
                    IssuerUrl::new(need("ISSUER")?).map_err(|e| format!("{}: {e}", var("ISSUER")))?;
                Kind::Oidc { issuer }
            };
            let provider = Provider {
                redirect_uri: format!("{public_url}/auth/oidc/{name}/callback"),
                client_id: need("CLIENT_ID")?,
                client_secret: need("CLIENT_SECRET")?,
                name: name.clone(),
                kind,
                discovered: RwLock::new(None),
            };
            providers.insert(name, provider);
        }
        Ok(Self { providers, http })
    }

    /// The configured provider names.
    pub fn names(&self) -> Vec<String> {
        self.providers.keys().cloned().collect()
    }

    /// The provider `name`, or 404 `oidc_provider_unknown`.
    pub fn get(&self, name: &str) -> Outcome<&Provider> {
        self.providers.get(name).ok_or_else(|| {
            Failure::new(Code::OidcProviderUnknown, format!("no OpenID provider {name:?} is configured"))
        })
    }

    async fn metadata(&self, provider: &Provider, refresh: bool) -> Outcome<CoreProviderMetadata> {
        let Kind::Oidc { issuer } = &provider.kind else {
            return Err(Failure::internal(&"discovery of a provider that has none"));
        };
        if !refresh {
            if let Some((at, metadata)) = provider.discovered.read().await.as_ref() {
                if at.elapsed() < DISCOVERY_TTL {
                    return Ok(metadata.clone());
                }
            }
        }
        let metadata = CoreProviderMetadata::discover_async(issuer.clone(), &self.http)
            .await
            .map_err(|e| unavailable(&provider.name, e))?;
        *provider.discovered.write().await = Some((Instant::now(), metadata.clone()));
        Ok(metadata)
    }

    fn redirect(provider: &Provider) -> Outcome<RedirectUrl> {
        RedirectUrl::new(provider.redirect_uri.clone()).map_err(|e| Failure::internal(&e))
    }

    /// The OpenID client of `provider` over its discovered `metadata`.
    fn oidc_client(
        provider: &Provider,
        metadata: CoreProviderMetadata,
        redirect: RedirectUrl,
    ) -> DiscoveredClient {
        CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(provider.client_id.clone()),
            Some(ClientSecret::new(provider.client_secret.clone())),
        )
        .set_redirect_uri(redirect)
    }

    /// Starts a sign-in at `provider`: the URL to send the browser to, with PKCE, state and
    /// nonce.
    pub async fn start(&self, provider: &Provider) -> Outcome<Started> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = CsrfToken::new_random().secret().clone();
        let nonce = Nonce::new_random().secret().clone();
        let url = match &provider.kind {
            Kind::Oidc { .. } => {
                let metadata = self.metadata(provider, false).await?;
                let client = Self::oidc_client(provider, metadata, Self::redirect(provider)?);
                let (state, nonce) = (state.clone(), nonce.clone());
                let (url, _, _) = client
                    .authorize_url(
                        AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                        move || CsrfToken::new(state),
                        move || Nonce::new(nonce),
                    )
                    .add_scope(Scope::new("email".into()))
                    .set_pkce_challenge(challenge)
                    .url();
                url
            }
            Kind::GitHub { .. } => {
                let state = state.clone();
                let (url, _) = self
                    .github_client(provider)?
                    .authorize_url(move || CsrfToken::new(state))
                    .add_scope(Scope::new("read:user".into()))
                    .add_scope(Scope::new("user:email".into()))
                    .set_pkce_challenge(challenge)
                    .url();
                url
            }
        };
        Ok(Started { url: url.to_string(), state, nonce, verifier: verifier.secret().clone() })
    }

    /// Exchanges `code` and answers who the provider vouches for: its identity (issuer and
    /// subject) and the e-mail it verified.
    pub async fn finish(
        &self,
        provider: &Provider,
        code: &str,
        nonce: &str,
        verifier: &str,
    ) -> Outcome<Identity> {
        match &provider.kind {
            Kind::Oidc { .. } => self.finish_oidc(provider, code, nonce, verifier).await,
            Kind::GitHub { api_url, .. } => self.finish_github(provider, api_url, code, verifier).await,
        }
    }

    async fn finish_oidc(
        &self,
        provider: &Provider,
        code: &str,
        nonce: &str,
        verifier: &str,
    ) -> Outcome<Identity> {
        let metadata = self.metadata(provider, false).await?;
        let redirect = Self::redirect(provider)?;
        let client = |metadata| Self::oidc_client(provider, metadata, redirect.clone());
        let exchange = client(metadata.clone())
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| unavailable(&provider.name, e))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()))
            .request_async(&self.http)
            .await;
        let token = match exchange {
            Ok(token) => token,
            Err(oauth2::RequestTokenError::ServerResponse(e)) => {
                tracing::info!(msg = "Sign-in failed", provider = %provider.name, error = %e, "code exchange refused");
                return Err(Failure::new(
                    Code::OidcFailed,
                    format!("the provider refused the code: {}", e.error()),
                ));
            }
            Err(e) => return Err(unavailable(&provider.name, e)),
        };
        let id_token = token.id_token().ok_or_else(|| token_invalid("the provider sent no ID token"))?;
        let nonce = Nonce::new(nonce.to_string());
        let claims = match id_token.claims(&client(metadata).id_token_verifier(), &nonce) {
            Ok(claims) => claims.clone(),
            // The keys may have rotated: fetch them again, once.
            Err(ClaimsVerificationError::SignatureVerification(_)) => {
                let fresh = self.metadata(provider, true).await?;
                id_token.claims(&client(fresh).id_token_verifier(), &nonce).map_err(token_invalid)?.clone()
            }
            Err(e) => return Err(token_invalid(e)),
        };
        // Providers that keep claims out of the ID token (when an access token is issued)
        // answer them at the user-info endpoint, for the same subject.
        let (email, verified) = match claims.email() {
            Some(email) => (email.as_str().to_string(), claims.email_verified()),
            None => {
                let info: openidconnect::core::CoreUserInfoClaims =
                    client(self.metadata(provider, false).await?)
                        .user_info(token.access_token().clone(), Some(claims.subject().clone()))
                        .map_err(|e| unavailable(&provider.name, e))?
                        .request_async(&self.http)
                        .await
                        .map_err(|e| match e {
                            openidconnect::UserInfoError::ClaimsVerification(e) => token_invalid(e),
                            other => unavailable(&provider.name, other),
                        })?;
                let email = info.email().map(|e| e.as_str().to_string()).ok_or_else(|| {
                    Failure::new(Code::OidcEmailUnverified, "the provider sent no e-mail (the `email` scope)")
                })?;
                (email, info.email_verified())
            }
        };
        if verified != Some(true) {
            return Err(Failure::new(Code::OidcEmailUnverified, "the provider has not verified this e-mail"));
        }
        Ok(Identity {
            issuer: claims.issuer().as_str().to_string(),
            subject: claims.subject().as_str().to_string(),
            email,
        })
    }

    fn github_client(
        &self,
        provider: &Provider,
    ) -> Outcome<
        BasicClient<
            oauth2::EndpointSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointSet,
        >,
    > {
        let Kind::GitHub { auth_url, token_url, .. } = &provider.kind else {
            return Err(Failure::internal(&"not a GitHub provider"));
        };
        let bad = |e: oauth2::url::ParseError| Failure::internal(&e);
        Ok(BasicClient::new(ClientId::new(provider.client_id.clone()))
            .set_client_secret(ClientSecret::new(provider.client_secret.clone()))
            .set_auth_uri(oauth2::AuthUrl::new(auth_url.clone()).map_err(bad)?)
            .set_token_uri(oauth2::TokenUrl::new(token_url.clone()).map_err(bad)?)
            .set_redirect_uri(Self::redirect(provider)?))
    }

    async fn finish_github(
        &self,
        provider: &Provider,
        api_url: &str,
        code: &str,
        verifier: &str,
    ) -> Outcome<Identity> {
        let exchange = self
            .github_client(provider)?
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()))
            .request_async(&self.http)
            .await;
        let token = match exchange {
            Ok(token) => token,
            Err(oauth2::RequestTokenError::ServerResponse(e)) => {
                return Err(Failure::new(
                    Code::OidcFailed,
                    format!("GitHub refused the code: {}", e.error()),
                ));
            }
            Err(e) => return Err(unavailable(&provider.name, e)),
        };
        #[derive(serde::Deserialize)]
        struct GitHubEmail {
            email: String,
            primary: bool,
            verified: bool,
        }
        #[derive(serde::Deserialize)]
        struct GitHubUser {
            id: u64,
        }
        let get = |path: &'static str| {
            self.http
                .get(format!("{}{path}", api_url.trim_end_matches('/')))
                .bearer_auth(oauth2::TokenResponse::access_token(&token).secret())
                .header("Accept", "application/vnd.github+json")
                .header("User-Agent", "TokenHub")
                .send()
        };
        let read = |r: Result<oauth2::reqwest::Response, oauth2::reqwest::Error>| async {
            r.and_then(|r| r.error_for_status())
                .map_err(|e| unavailable(&provider.name, e))?
                .bytes()
                .await
                .map_err(|e| unavailable(&provider.name, e))
        };
        let body = read(get("/user/emails").await).await?;
        let emails: Vec<GitHubEmail> =
            serde_json::from_slice(&body).map_err(|e| unavailable(&provider.name, e))?;
        // The account's stable id is the subject (a login or an e-mail can change hands).
        let user: GitHubUser = serde_json::from_slice(&read(get("/user").await).await?)
            .map_err(|e| unavailable(&provider.name, e))?;
        let primary = emails.into_iter().find(|e| e.primary).ok_or_else(|| {
            Failure::new(Code::OidcEmailUnverified, "GitHub has no primary e-mail for this account")
        })?;
        if !primary.verified {
            return Err(Failure::new(
                Code::OidcEmailUnverified,
                "GitHub has not verified the primary e-mail",
            ));
        }
        Ok(Identity { issuer: GITHUB_ISSUER.to_string(), subject: user.id.to_string(), email: primary.email })
    }
}
