//! The gateway's client to its upstreams: hyper's pooled client (HTTP/1.1, and HTTP/2 where
//! TLS negotiates it; rustls with the platform's roots), connecting only through the outbound
//! rules' checked resolver ([`crate::webhooks::target::resolve_checked`]: every address a name
//! resolves to is checked, and the connection goes to exactly those). No redirect, no proxy,
//! no retry: a completion sent twice could be produced, and paid, twice.
//!
//! hyper directly rather than reqwest: on the request path reqwest's layers (its redirect
//! policy turns the URI back into a URL on every request, its timeouts, its body wrappers)
//! cost about a third of a bare proxy's CPU (`examples/bare_proxy.rs`, docs/performance.md).
//! What reqwest gave is kept here: the time to connect is bounded, and so is every wait for
//! the upstream (for its answer's head, then for each part of its body).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, Response};
use futures::Stream;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::webhooks::target::{resolve_checked, TargetError};

/// Idle connections kept per upstream host.
pub const MAX_IDLE_PER_HOST: usize = 256;

/// How long an idle connection to an upstream is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why an upstream gave no (complete) answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// It did not answer (or send the next part of its answer) in time.
    #[error("the upstream did not answer in time")]
    Timeout,
    /// It could not be reached, refused by the outbound rules, or its connection broke.
    #[error("the upstream could not be reached")]
    Unreachable,
}

impl Failure {
    /// Whether it is [`Failure::Timeout`].
    pub fn is_timeout(self) -> bool {
        self == Self::Timeout
    }
}

/// The client could not be built (no usable TLS roots on this host).
#[derive(Debug, thiserror::Error)]
#[error("the upstream client cannot be built: {0}")]
pub struct BuildError(#[from] std::io::Error);

/// The resolver the upstream connections go through: names are resolved and every address
/// is checked by the outbound rules.
#[derive(Debug, Clone, Copy)]
pub struct CheckedNames {
    allow_private: bool,
}

impl tower::Service<Name> for CheckedNames {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = TargetError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, TargetError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), TargetError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move { Ok(resolve_checked(name.as_str(), 0, allow_private).await?.into_iter()) })
    }
}

/// The pooled client, with its bound on every wait.
#[derive(Clone)]
pub struct Upstreams {
    client: Client<HttpsConnector<HttpConnector<CheckedNames>>, Full<Bytes>>,
    read_timeout: Duration,
}

impl Upstreams {
    /// A client whose connections obey the outbound rules (`allow_private`: internal addresses
    /// too), connecting within `connect_timeout` and waiting at most `read_timeout` for each
    /// part of an answer; certificates are verified against the platform's roots.
    pub fn new(
        allow_private: bool,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<Self, BuildError> {
        use hyper_rustls::ConfigBuilderExt as _;
        let tls =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .and_then(|builder| builder.try_with_platform_verifier())
                .map_err(std::io::Error::other)?
                .with_no_client_auth();
        Ok(Self::with_tls(allow_private, connect_timeout, read_timeout, tls))
    }

    /// [`Upstreams::new`] with the TLS settings `tls` (other roots, in tests).
    pub fn with_tls(
        allow_private: bool,
        connect_timeout: Duration,
        read_timeout: Duration,
        tls: rustls::ClientConfig,
    ) -> Self {
        let mut http = HttpConnector::new_with_resolver(CheckedNames { allow_private });
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build(https);
        Self { client, read_timeout }
    }

    /// Sends `request` and waits for the answer's head.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<Answer, Failure> {
        match tokio::time::timeout(self.read_timeout, self.client.request(request)).await {
            Ok(Ok(answer)) => Ok(Answer { answer, read_timeout: self.read_timeout }),
            Ok(Err(e)) => {
                // Why, for the operator: a name refused by the outbound rules, a certificate
                // not trusted, a connection refused (never content: nothing was sent yet when
                // a connection fails).
                if e.is_connect() {
                    tracing::warn!(error = %chain(&e), "cannot connect to the upstream");
                } else {
                    tracing::debug!(error = %chain(&e), "upstream request failed");
                }
                Err(Failure::Unreachable)
            }
            Err(_) => Err(Failure::Timeout),
        }
    }
}

/// An upstream's answer, its body still to read. Dropping it closes the connection (the
/// upstream sees the request cancelled).
pub struct Answer {
    answer: Response<Incoming>,
    read_timeout: Duration,
}

impl Answer {
    /// Its status.
    pub fn status(&self) -> axum::http::StatusCode {
        self.answer.status()
    }

    /// Its headers.
    pub fn headers(&self) -> &axum::http::HeaderMap {
        self.answer.headers()
    }

    /// The next part of its body (`None` at its end); trailers are skipped.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Failure> {
        next_data(self.answer.body_mut(), self.read_timeout).await
    }

    /// Its body as a stream of parts.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, Failure>> + Send + Unpin + 'static {
        let read_timeout = self.read_timeout;
        Box::pin(futures::stream::unfold(Some(self.answer.into_body()), move |body| async move {
            let mut body = body?;
            match next_data(&mut body, read_timeout).await {
                Ok(Some(bytes)) => Some((Ok(bytes), Some(body))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        }))
    }
}

/// An error and its sources, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

/// The next data frame of `body`, waiting at most `read_timeout` for each frame.
async fn next_data(body: &mut Incoming, read_timeout: Duration) -> Result<Option<Bytes>, Failure> {
    loop {
        let frame = match tokio::time::timeout(read_timeout, body.frame()).await {
            Err(_) => return Err(Failure::Timeout),
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => {
                tracing::debug!(error = %e, "upstream answer cut off");
                return Err(Failure::Unreachable);
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if !data.is_empty() {
                return Ok(Some(data));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_connection_says_why_in_one_line() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // A port nothing listens on (bound, then closed).
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let upstreams = Upstreams::new(true, Duration::from_secs(2), Duration::from_secs(2)).unwrap();
        let get = || Request::get(format!("http://{closed}/")).body(Full::default()).unwrap();
        let error = upstreams.client.request(get()).await.unwrap_err();
        let line = chain(&error);
        assert!(error.is_connect() && line.contains("refused") && !line.contains('\n'), "{line}");
        assert_eq!(upstreams.send(get()).await.err(), Some(Failure::Unreachable));
    }
}
