//! HTTP plumbing shared by every Graph call: URL building, bearer auth,
//! bounded body reading, and mapping answers and failures to [`GraphError`].
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::GraphConfig;
use super::error::{ErrorEnvelope, GraphError, MetaApiError, regain_access_after};

/// Cap on JSON answers; Graph responses are small, this only stops a broken
/// or hostile endpoint from exhausting memory.
const JSON_LIMIT: usize = 16 * 1024 * 1024;
/// How much of an unparseable error body is kept for the error message.
const ERROR_SNIPPET: usize = 512;

/// A Graph API client. Cheap to clone (shares one connection pool).
#[derive(Debug, Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    config: Arc<GraphConfig>,
}

/// reqwest is built with `rustls-no-provider`, so a process-wide rustls
/// crypto provider must exist before a client is built. Installing fails
/// harmlessly when one is already installed (by us or by the host program).
fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl GraphClient {
    /// Builds a client with the config's timeouts.
    pub fn new(config: GraphConfig) -> Result<Self, GraphError> {
        ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!("wagate-meta/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GraphError::Request(e.without_url().to_string()))?;
        Ok(GraphClient {
            http,
            config: Arc::new(config),
        })
    }

    pub fn config(&self) -> &GraphConfig {
        &self.config
    }

    /// `{base}/{version}/{segments...}` with each segment percent-encoded, so
    /// ids can never inject path or query syntax.
    pub(crate) fn url(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Url, GraphError> {
        let mut url = self.config.base_url.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| GraphError::Request("base URL cannot have a path".into()))?;
            path.pop_if_empty();
            path.push(&self.config.api_version);
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(url)
    }

    pub(crate) fn request(&self, method: Method, url: Url, token: Option<&str>) -> RequestBuilder {
        let req = self.http.request(method, url);
        match token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// A request with a JSON body.
    pub(crate) fn json_request<B: Serialize + ?Sized>(
        &self,
        method: Method,
        url: Url,
        token: Option<&str>,
        body: &B,
    ) -> Result<RequestBuilder, GraphError> {
        let bytes = serde_json::to_vec(body).map_err(|e| GraphError::Request(e.to_string()))?;
        Ok(self
            .request(method, url, token)
            .header(CONTENT_TYPE, "application/json")
            .body(bytes))
    }

    /// `GET` and parse.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        token: Option<&str>,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, GraphError> {
        let url = self.url(segments, query)?;
        self.execute(self.request(Method::GET, url, token)).await
    }

    /// `POST` a JSON body and parse.
    pub(crate) async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        token: Option<&str>,
        segments: &[&str],
        body: &B,
    ) -> Result<T, GraphError> {
        let url = self.url(segments, &[])?;
        self.execute(self.json_request(Method::POST, url, token, body)?)
            .await
    }

    /// `POST` without a body and parse.
    pub(crate) async fn post_empty<T: DeserializeOwned>(
        &self,
        token: Option<&str>,
        segments: &[&str],
    ) -> Result<T, GraphError> {
        let url = self.url(segments, &[])?;
        self.execute(self.request(Method::POST, url, token)).await
    }

    /// `DELETE` and parse.
    pub(crate) async fn delete<T: DeserializeOwned>(
        &self,
        token: Option<&str>,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, GraphError> {
        let url = self.url(segments, query)?;
        self.execute(self.request(Method::DELETE, url, token)).await
    }

    /// Sends and parses a JSON answer.
    pub(crate) async fn execute<T: DeserializeOwned>(
        &self,
        req: RequestBuilder,
    ) -> Result<T, GraphError> {
        let fetched = self.fetch(req, JSON_LIMIT).await?;
        serde_json::from_slice(&fetched.body).map_err(|e| GraphError::Decode {
            status: fetched.status,
            message: e.to_string(),
        })
    }

    /// Sends; on a 2xx returns the body (at most `limit` bytes), otherwise the
    /// classified error.
    pub(crate) async fn fetch(
        &self,
        req: RequestBuilder,
        limit: usize,
    ) -> Result<Fetched, GraphError> {
        let resp = req.send().await.map_err(GraphError::from_transport)?;
        let status = resp.status().as_u16();
        log_version_warning(resp.headers());
        if resp.status().is_success() {
            let content_type = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = read_limited(resp, limit).await.map_err(|e| match e {
                ReadError::Transport(e) => GraphError::from_transport(e),
                ReadError::TooLarge => GraphError::TooLarge { limit },
            })?;
            return Ok(Fetched {
                status,
                content_type,
                body,
            });
        }
        let regain = resp
            .headers()
            .get("x-business-use-case-usage")
            .and_then(|v| v.to_str().ok())
            .and_then(regain_access_after);
        // Meta has answered: the call failed either way. If the error body
        // cannot be read it is treated as absent.
        let body = read_limited(resp, JSON_LIMIT).await.unwrap_or_default();
        Err(error_from_body(status, &body, regain))
    }
}

/// A successful answer.
pub(crate) struct Fetched {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// Turns a non-2xx answer into [`GraphError::Api`] when it carries Meta's
/// error envelope, else [`GraphError::Http`].
fn error_from_body(
    status: u16,
    body: &[u8],
    regain_access_after: Option<std::time::Duration>,
) -> GraphError {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(envelope) => GraphError::Api(Box::new(MetaApiError {
            status,
            error: envelope.error,
            regain_access_after,
        })),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let snippet: String = text.chars().take(ERROR_SNIPPET).collect();
            GraphError::Http {
                status,
                body: snippet,
            }
        }
    }
}

fn log_version_warning(headers: &HeaderMap) {
    if let Some(warning) = headers
        .get("x-ad-api-version-warning")
        .and_then(|v| v.to_str().ok())
    {
        tracing::warn!(%warning, "Graph API version auto-upgraded; update api_version");
    }
}

enum ReadError {
    Transport(reqwest::Error),
    TooLarge,
}

/// Reads a body chunk by chunk, refusing more than `limit` bytes.
async fn read_limited(mut resp: Response, limit: usize) -> Result<Bytes, ReadError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Transport)? {
        if buf.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
