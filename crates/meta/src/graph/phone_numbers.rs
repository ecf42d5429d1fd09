//! Business phone numbers: fields (quality, limits, health), registration
//! with the 2FA PIN, and the business profile.
use serde::{Deserialize, Serialize};

use super::{GraphClient, GraphError, Page, Success, push_fields};
use crate::json::{Extra, WhatsApp};

/// A business phone number. Every field is optional: Graph returns only what
/// `fields=` asked for (default `id,display_phone_number,verified_name,quality_rating`).
/// Enum-like fields are strings because Meta's value lists are open.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhoneNumber {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_name: Option<String>,
    /// `GREEN`, `YELLOW`, `RED`, `NA`, `UNKNOWN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_rating: Option<String>,
    /// `VERIFIED`, `NOT_VERIFIED`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_verification_status: Option<String>,
    /// Display-name review: `APPROVED`, `AVAILABLE_WITHOUT_REVIEW`, `DECLINED`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name_status: Option<String>,
    /// `CONNECTED`, `DISCONNECTED`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `SANDBOX` or `LIVE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_mode: Option<String>,
    /// `CLOUD_API`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_official_business_account: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_pin_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligibility_for_api_business_global_search: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_visibility: Option<String>,
    /// Portfolio messaging limit (`TIER_250`, `TIER_2K`, ... `TIER_UNLIMITED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp_business_manager_messaging_limit: Option<String>,
    /// Legacy per-number tier; deprecated since v24.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_limit_tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<Throughput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_status: Option<HealthStatus>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

impl PhoneNumber {
    /// Every field this type models, for `fields=`.
    pub const ALL_FIELDS: &'static [&'static str] = &[
        "id",
        "display_phone_number",
        "verified_name",
        "quality_rating",
        "code_verification_status",
        "name_status",
        "new_name_status",
        "status",
        "account_mode",
        "platform_type",
        "is_official_business_account",
        "is_pin_enabled",
        "eligibility_for_api_business_global_search",
        "search_visibility",
        "whatsapp_business_manager_messaging_limit",
        "messaging_limit_tier",
        "throughput",
        "health_status",
    ];

    /// The current messaging limit, preferring the portfolio-level field over
    /// the legacy per-number tier.
    pub fn messaging_limit(&self) -> Option<&str> {
        self.whatsapp_business_manager_messaging_limit
            .as_deref()
            .or(self.messaging_limit_tier.as_deref())
    }
}

/// `{"level": "STANDARD"}` (80 mps) or a higher level (1000 mps).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// Whether messages can be sent, and what blocks them, per entity in the
/// chain (phone number, WABA, business, app, template).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthStatus {
    /// `AVAILABLE`, `LIMITED` or `BLOCKED` (the worst of the entities).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_send_message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<HealthEntity>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthEntity {
    /// `PHONE_NUMBER`, `WABA`, `BUSINESS`, `APP`, `MESSAGE_TEMPLATE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_send_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_receive_call_sip: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_info: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<HealthError>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub possible_solution: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// Body of `POST /{phone-number-id}/register`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register {
    pub messaging_product: WhatsApp,
    /// The 6-digit two-step verification PIN (set if 2FA is not enabled yet).
    pub pin: String,
    /// Local storage region (e.g. `CH`), if data localization is wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_localization_region: Option<String>,
}

impl Register {
    pub fn new(pin: impl Into<String>) -> Self {
        Register {
            messaging_product: WhatsApp,
            pin: pin.into(),
            data_localization_region: None,
        }
    }
}

/// The WhatsApp business profile of a number.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BusinessProfile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_picture_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub websites: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertical: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_product: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

impl BusinessProfile {
    pub const ALL_FIELDS: &'static [&'static str] = &[
        "about",
        "address",
        "description",
        "email",
        "profile_picture_url",
        "websites",
        "vertical",
    ];
}

impl GraphClient {
    /// `GET /{phone_number_id}?fields=...` (empty `fields`: Meta's defaults).
    pub async fn get_phone_number(
        &self,
        token: &str,
        phone_number_id: &str,
        fields: &[&str],
    ) -> Result<PhoneNumber, GraphError> {
        let mut q = Vec::new();
        push_fields(&mut q, fields);
        self.get(Some(token), &[phone_number_id], &q).await
    }

    /// `POST /{phone_number_id}/register` (≤ 10 register/deregister per 72 h).
    pub async fn register_phone_number(
        &self,
        token: &str,
        phone_number_id: &str,
        register: &Register,
    ) -> Result<Success, GraphError> {
        self.post(Some(token), &[phone_number_id, "register"], register)
            .await
    }

    /// `POST /{phone_number_id}/deregister`.
    pub async fn deregister_phone_number(
        &self,
        token: &str,
        phone_number_id: &str,
    ) -> Result<Success, GraphError> {
        self.post_empty(Some(token), &[phone_number_id, "deregister"])
            .await
    }

    /// `GET /{phone_number_id}/whatsapp_business_profile`.
    pub async fn get_business_profile(
        &self,
        token: &str,
        phone_number_id: &str,
        fields: &[&str],
    ) -> Result<Page<BusinessProfile>, GraphError> {
        let mut q = Vec::new();
        push_fields(&mut q, fields);
        self.get(
            Some(token),
            &[phone_number_id, "whatsapp_business_profile"],
            &q,
        )
        .await
    }
}
