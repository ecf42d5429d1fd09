//! Graph API client for the WhatsApp Cloud API.
//!
//! One [`GraphClient`] serves every tenant: the access token is an argument of
//! each call, because tokens belong to a WABA/organization, not to the client.
//! Calls are grouped by resource in the submodules; each adds methods to
//! [`GraphClient`].
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::json::Extra;

mod client;
pub mod error;
pub mod media;
pub mod messages;
pub mod phone_numbers;
pub mod signup;
pub mod templates;
pub mod waba;

pub use client::GraphClient;
pub use error::{ErrorBody, ErrorClass, GraphError, MetaApiError, classify};

/// Where and how to reach the Graph API. The base URL is configurable so that
/// tests and the simulator can stand in for `graph.facebook.com`.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// E.g. `https://graph.facebook.com/`; a path prefix is kept.
    pub base_url: Url,
    /// E.g. `v23.0`. Meta auto-upgrades deprecated versions and says so in
    /// `X-Ad-Api-Version-Warning`, which the client logs.
    pub api_version: String,
    /// Bound on DNS + TCP + TLS. Failures inside it are "not sent".
    pub connect_timeout: Duration,
    /// Bound on the whole JSON call. Hitting it after connecting is ambiguous.
    pub request_timeout: Duration,
    /// Bound on media upload and download, which move up to 100 MB.
    pub media_timeout: Duration,
    /// Largest media download accepted (Meta's own cap is 100 MB).
    pub max_media_bytes: usize,
}

impl GraphConfig {
    pub const DEFAULT_BASE_URL: &'static str = "https://graph.facebook.com/";
    pub const DEFAULT_API_VERSION: &'static str = "v23.0";

    /// A config with the default timeouts (connect 5 s, request 15 s, media
    /// 120 s, as the reliability requirements ask: connect ≤ 5 s, total ≤ 15 s).
    pub fn new(base_url: Url, api_version: impl Into<String>) -> Self {
        GraphConfig {
            base_url,
            api_version: api_version.into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            media_timeout: Duration::from_secs(120),
            max_media_bytes: 105 * 1024 * 1024,
        }
    }

    /// The real Graph API at [`Self::DEFAULT_BASE_URL`] and
    /// [`Self::DEFAULT_API_VERSION`].
    pub fn meta() -> Result<Self, url::ParseError> {
        Ok(Self::new(
            Url::parse(Self::DEFAULT_BASE_URL)?,
            Self::DEFAULT_API_VERSION,
        ))
    }
}

/// `{"success": true}`, the answer of most mutations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Success {
    pub success: bool,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// A Graph list: `{"data": [...], "paging": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paging: Option<Paging>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

impl<T> Page<T> {
    /// The `after` cursor for the next page, or `None` on the last page.
    /// Meta keeps returning cursors on the last page; only `next` tells
    /// whether more data exists.
    pub fn next_cursor(&self) -> Option<&str> {
        let paging = self.paging.as_ref()?;
        paging.next.as_ref()?;
        paging.cursors.as_ref()?.after.as_deref()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paging {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursors: Option<Cursors>,
    /// Full URL of the next page (absent on the last page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursors {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// Cursor paging parameters for list calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: Option<u32>,
    pub after: Option<String>,
    pub before: Option<String>,
}

impl PageRequest {
    pub(crate) fn push_query(&self, q: &mut Vec<(&'static str, String)>) {
        if let Some(limit) = self.limit {
            q.push(("limit", limit.to_string()));
        }
        if let Some(after) = &self.after {
            q.push(("after", after.clone()));
        }
        if let Some(before) = &self.before {
            q.push(("before", before.clone()));
        }
    }
}

/// `fields=a,b,c`, omitted when empty so Meta applies its defaults.
pub(crate) fn push_fields(q: &mut Vec<(&'static str, String)>, fields: &[&str]) {
    if !fields.is_empty() {
        q.push(("fields", fields.join(",")));
    }
}
