//! The authentication layer: deny by default. Every `wagate.*` RPC needs a
//! valid credential unless its proto marks it `(wagate.v1.public) = true`;
//! the standard health and reflection services are open.
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use http::{Request, Response};
use tower::{Layer, Service};

use super::{Principal, keys};
use crate::api::status::status;
use crate::error_code::ErrorCode;
use crate::store::{Store, StoreError};

#[derive(Clone)]
pub struct AuthLayer {
    inner: Arc<Shared>,
}

struct Shared {
    store: Store,
    public_methods: HashSet<String>,
}

impl AuthLayer {
    pub fn new(store: Store, public_methods: impl IntoIterator<Item = String>) -> Self {
        Self {
            inner: Arc::new(Shared {
                store,
                public_methods: public_methods.into_iter().collect(),
            }),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            shared: self.inner.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    shared: Arc<Shared>,
    inner: S,
}

/// Why a presented credential was not accepted.
enum Failure {
    Missing,
    Invalid,
    Store(StoreError),
}

impl<S, B> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // Take the service that was driven to readiness; leave a clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            let path = req.uri().path();
            let open = !path.starts_with("/wagate.") || shared.public_methods.contains(path);
            match authenticate(&shared.store, req.headers()).await {
                Ok(principal) => {
                    req.extensions_mut().insert(principal);
                }
                Err(_) if open => {}
                Err(Failure::Missing) => {
                    return Ok(reject(
                        ErrorCode::Unauthorized,
                        "missing API key: send Authorization: Bearer sk_org_…",
                    ));
                }
                Err(Failure::Invalid) => {
                    return Ok(reject(
                        ErrorCode::Unauthorized,
                        "invalid or revoked API key",
                    ));
                }
                Err(Failure::Store(e)) => {
                    tracing::warn!(error = %e, "authentication could not reach the database");
                    return Ok(reject(
                        ErrorCode::Unavailable,
                        "service temporarily unavailable, retry shortly",
                    ));
                }
            }
            inner.call(req).await
        })
    }
}

fn reject(code: ErrorCode, message: &str) -> Response<Body> {
    status(code, message, None).into_http()
}

/// The credentials of `Bearer <token>`. The scheme is case-insensitive
/// (RFC 9110 §11.1): `Bearer`, `bearer` and `BEARER` are the same.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once([' ', '\t'])?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

async fn authenticate(store: &Store, headers: &http::HeaderMap) -> Result<Principal, Failure> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Err(Failure::Missing);
    };
    let value = value.to_str().map_err(|_| Failure::Invalid)?;
    let token = bearer_token(value).ok_or(Failure::Invalid)?;
    if !keys::looks_like_key(token) {
        return Err(Failure::Invalid);
    }
    let key = store
        .find_active_key(&keys::hash(token))
        .await
        .map_err(Failure::Store)?
        .filter(|k| keys::matches(token, &k.key_hash))
        .ok_or(Failure::Invalid)?;
    let stale = key
        .last_used_at
        .is_none_or(|t| chrono::Utc::now() - t > chrono::Duration::minutes(1));
    if stale {
        store.touch_key(key.id).await.map_err(Failure::Store)?;
    }
    Ok(Principal::ApiKey {
        org_id: key.org_id,
        key_id: key.id,
    })
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_scheme_is_case_insensitive() {
        for v in [
            "Bearer k",
            "bearer k",
            "BEARER k",
            "bEaReR  k ",
            " Bearer\tk",
        ] {
            assert_eq!(bearer_token(v), Some("k"), "{v:?}");
        }
        for v in ["Basic k", "Bearer", "Bearer ", "Bearerk", "k"] {
            assert_eq!(bearer_token(v), None, "{v:?}");
        }
    }
}
