//! Values of the non-message webhook fields: template lifecycle, phone number
//! quality and name, account events and capabilities. Event names are kept
//! as strings because Meta's lists keep growing.
use serde::{Deserialize, Serialize};

use crate::json::{Extra, IntOrString, Timestamp};

/// `message_template_status_update`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TemplateStatusUpdate {
    /// `APPROVED`, `REJECTED`, `PAUSED`, `DISABLED`, `FLAGGED`, `REINSTATED`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// A JSON number here (a string in Graph answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_id: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_category: Option<String>,
    /// `NONE`, `INVALID_FORMAT`, `ABUSIVE_CONTENT`, ... (may be null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_info: Option<RejectionInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_info: Option<DisableInfo>,
    /// Pause details (`FIRST_PAUSE`, `SECOND_PAUSE`, `UNPAUSE`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_info: Option<OtherInfo>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RejectionInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DisableInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_date: Option<IntOrString>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OtherInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// `template_category_update`: Meta re-categorised a template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TemplateCategoryUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_id: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct_category: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// `message_template_quality_update`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TemplateQualityUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_quality_score: Option<String>,
    /// `GREEN`, `YELLOW`, `RED`, `UNKNOWN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_quality_score: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_id: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_language: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// `message_template_components_update`: the template's text changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TemplateComponentsUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_id: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_language: Option<String>,
    /// Header text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_title: Option<String>,
    /// Body text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_element: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_footer: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub message_template_buttons: Vec<TemplateButtonUpdate>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TemplateButtonUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_button_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_button_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_button_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_button_phone_number: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// `phone_number_quality_update`: quality or messaging-limit change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhoneNumberQualityUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
    /// `THROUGHPUT_UPGRADE`, `ONBOARDING`, `FLAGGED`, `UPGRADE`, `DOWNGRADE`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// `TIER_250` ... `TIER_UNLIMITED` (removal announced for 2026).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_daily_conversations_per_business: Option<IntOrString>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// `phone_number_name_update`: display-name review decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhoneNumberNameUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
    /// `APPROVED`, `REJECTED`, `PENDING`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_verified_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// `account_update`: WABA lifecycle, partner, restriction and pricing events.
/// `PARTNER_APP_UNINSTALLED` / `PARTNER_REMOVED` mean the customer
/// disconnected this app.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waba_info: Option<WabaInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restriction_info: Vec<RestrictionInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ban_info: Option<BanInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation_info: Option<ViolationInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_international_rate_eligibility: Option<AuthInternationalRateEligibility>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_client_certification_info: Option<PartnerClientCertificationInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnection_info: Option<DisconnectionInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_tier_info: Option<VolumeTierInfo>,
    /// `BUSINESS_PRIMARY_LOCATION_COUNTRY_UPDATE`: ISO country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WabaInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waba_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_business_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_app_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solution_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub solution_partner_business_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad_account_linked: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RestrictionInfo {
    /// `RESTRICTED_BIZ_INITIATED_MESSAGING`, `RESTRICTED_ADD_PHONE_NUMBER_ACTION`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restriction_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<Timestamp>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BanInfo {
    /// `DISABLE`, `REINSTATE`, `SCHEDULE_FOR_DISABLE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waba_ban_state: Option<String>,
    /// Human-readable date, e.g. `April 17, 2025`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waba_ban_date: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ViolationInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation_type: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthInternationalRateEligibility {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exception_countries: Vec<ExceptionCountry>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExceptionCountry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartnerClientCertificationInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_business_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejection_reasons: Vec<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DisconnectionInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiated_by: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeTierInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier_update_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_category: Option<String>,
    /// E.g. `25000001:50000000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// `YYYY-MM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_month: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// `account_review_update`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountReviewUpdate {
    /// `APPROVED`, `REJECTED`, `PENDING`, `DEFERRED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// `business_capability_update`: limits of the business portfolio.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BusinessCapabilityUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_daily_conversations_per_business: Option<IntOrString>,
    /// v23 and older.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_daily_conversation_per_phone: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_phone_numbers_per_waba: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_phone_numbers_per_business: Option<IntOrString>,
    #[serde(flatten, default)]
    pub extra: Extra,
}
