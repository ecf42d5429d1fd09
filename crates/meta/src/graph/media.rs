//! Media: upload (multipart) to get an id for sending, resolve a media id to
//! a short-lived URL, download it with the bearer token, delete.
use bytes::Bytes;
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde::{Deserialize, Serialize};
use url::Url;

use super::{GraphClient, GraphError, Success};
use crate::json::{Extra, IntOrString, WhatsApp};

/// A file to upload. Meta checks the MIME type against its per-type limits
/// (images ≤ 5 MB, audio/video ≤ 16 MB, documents ≤ 100 MB, stickers WebP).
#[derive(Debug, Clone)]
pub struct UploadMedia {
    pub bytes: Bytes,
    pub filename: String,
    pub mime_type: String,
}

/// `{"id": "..."}` of an uploaded media (valid 30 days).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaId {
    pub id: String,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// Answer of `GET /{media-id}`. The URL expires after 5 minutes and needs the
/// bearer token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaUrl {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A number in real answers, a string in Meta's docs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_product: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// Downloaded media bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadedMedia {
    pub bytes: Bytes,
    pub content_type: Option<String>,
}

impl GraphClient {
    /// `POST /{phone_number_id}/media` (multipart: `messaging_product`,
    /// `type`, `file`).
    pub async fn upload_media(
        &self,
        token: &str,
        phone_number_id: &str,
        media: UploadMedia,
    ) -> Result<MediaId, GraphError> {
        let file = Part::stream(media.bytes)
            .file_name(media.filename)
            .mime_str(&media.mime_type)
            .map_err(|e| GraphError::Request(e.without_url().to_string()))?;
        let form = Form::new()
            .text("messaging_product", WhatsApp::VALUE)
            .text("type", media.mime_type)
            .part("file", file);
        let url = self.url(&[phone_number_id, "media"], &[])?;
        let req = self
            .request(Method::POST, url, Some(token))
            .timeout(self.config().media_timeout)
            .multipart(form);
        self.execute(req).await
    }

    /// `GET /{media_id}[?phone_number_id=]`: a fresh download URL.
    pub async fn get_media_url(
        &self,
        token: &str,
        media_id: &str,
        phone_number_id: Option<&str>,
    ) -> Result<MediaUrl, GraphError> {
        let q: Vec<(&str, String)> = phone_number_id
            .map(|id| ("phone_number_id", id.to_owned()))
            .into_iter()
            .collect();
        self.get(Some(token), &[media_id], &q).await
    }

    /// `GET <url>` with the bearer token, at most `max_media_bytes`.
    ///
    /// The token is sent to `url`, so only pass URLs that came from Meta
    /// ([`Self::get_media_url`] or a signed webhook). On a 404 the URL has
    /// expired: ask for a new one.
    pub async fn download_media(
        &self,
        token: &str,
        url: &str,
    ) -> Result<DownloadedMedia, GraphError> {
        let url = Url::parse(url).map_err(|e| GraphError::Request(format!("media URL: {e}")))?;
        let req = self
            .request(Method::GET, url, Some(token))
            .timeout(self.config().media_timeout);
        let fetched = self.fetch(req, self.config().max_media_bytes).await?;
        Ok(DownloadedMedia {
            bytes: fetched.body,
            content_type: fetched.content_type,
        })
    }

    /// `DELETE /{media_id}[?phone_number_id=]`.
    pub async fn delete_media(
        &self,
        token: &str,
        media_id: &str,
        phone_number_id: Option<&str>,
    ) -> Result<Success, GraphError> {
        let q: Vec<(&str, String)> = phone_number_id
            .map(|id| ("phone_number_id", id.to_owned()))
            .into_iter()
            .collect();
        self.delete(Some(token), &[media_id], &q).await
    }
}
