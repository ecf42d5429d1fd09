//! WhatsApp Business Accounts: account fields, their phone numbers, and the
//! `subscribed_apps` edge that routes the WABA's webhooks to this app.
use serde::{Deserialize, Serialize};

use super::phone_numbers::{HealthStatus, PhoneNumber};
use super::{GraphClient, GraphError, Page, PageRequest, Success, push_fields};
use crate::json::Extra;

/// A WABA. Every field is optional: Graph returns what `fields=` asked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Waba {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_review_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_verification_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_business_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_status: Option<HealthStatus>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

impl Waba {
    pub const DEFAULT_FIELDS: &'static [&'static str] = &[
        "id",
        "name",
        "timezone_id",
        "message_template_namespace",
        "account_review_status",
        "business_verification_status",
        "country",
        "ownership_type",
        "primary_business_location",
    ];
}

/// One entry of `GET /{waba-id}/subscribed_apps`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubscribedApp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp_business_api_data: Option<AppData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_callback_uri: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// Per-WABA webhook destination override (Meta verifies it with a GET).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackOverride {
    /// ≤ 200 chars.
    pub override_callback_uri: String,
    pub verify_token: String,
}

impl GraphClient {
    /// `GET /{waba_id}?fields=...`.
    pub async fn get_waba(
        &self,
        token: &str,
        waba_id: &str,
        fields: &[&str],
    ) -> Result<Waba, GraphError> {
        let mut q = Vec::new();
        push_fields(&mut q, fields);
        self.get(Some(token), &[waba_id], &q).await
    }

    /// `GET /{waba_id}/phone_numbers?fields=...`, one page.
    pub async fn list_phone_numbers(
        &self,
        token: &str,
        waba_id: &str,
        fields: &[&str],
        page: &PageRequest,
    ) -> Result<Page<PhoneNumber>, GraphError> {
        let mut q = Vec::new();
        push_fields(&mut q, fields);
        page.push_query(&mut q);
        self.get(Some(token), &[waba_id, "phone_numbers"], &q).await
    }

    /// `GET /{waba_id}/subscribed_apps`.
    pub async fn get_subscribed_apps(
        &self,
        token: &str,
        waba_id: &str,
    ) -> Result<Page<SubscribedApp>, GraphError> {
        self.get(Some(token), &[waba_id, "subscribed_apps"], &[])
            .await
    }

    /// `POST /{waba_id}/subscribed_apps`: route this WABA's webhooks to the
    /// app (required after Embedded Signup), optionally to another URL.
    pub async fn subscribe_app(
        &self,
        token: &str,
        waba_id: &str,
        callback: Option<&CallbackOverride>,
    ) -> Result<Success, GraphError> {
        let segments = [waba_id, "subscribed_apps"];
        match callback {
            Some(body) => self.post(Some(token), &segments, body).await,
            None => self.post_empty(Some(token), &segments).await,
        }
    }

    /// `DELETE /{waba_id}/subscribed_apps`.
    pub async fn unsubscribe_app(&self, token: &str, waba_id: &str) -> Result<Success, GraphError> {
        self.delete(Some(token), &[waba_id, "subscribed_apps"], &[])
            .await
    }
}
