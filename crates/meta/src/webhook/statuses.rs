//! Delivery statuses of outbound messages (`value.statuses[]`).
use serde::{Deserialize, Serialize};

use crate::graph::ErrorBody;
use crate::json::{Extra, Timestamp, non_empty, open_enum};

open_enum!(
    /// Status of an outbound message. Meta may send them out of order; a
    /// state machine must never move backwards (sent < delivered < read/played;
    /// failed is terminal, though it can follow sent).
    pub enum StatusKind {
        Sent = "sent",
        Delivered = "delivered",
        Read = "read",
        /// First play of a voice message.
        Played = "played",
        Failed = "failed",
        Deleted = "deleted",
        Warning = "warning",
    }
);

/// One status update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The `wamid` returned by the send.
    pub id: String,
    pub status: StatusKind,
    /// Unix seconds (a string here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    /// Phone number, group id (groups), or `""` (BSUID-only sends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_id: Option<String>,
    /// Recipient BSUID (2026).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_user_id: Option<String>,
    /// Recipient parent BSUID, as Meta's docs name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_parent_user_id: Option<String>,
    /// The same, as whatsapp-api-js's 2026 captures name it. Kept as its own
    /// field (not a serde alias) so both spellings round-trip and a payload
    /// carrying both does not fail; read either via
    /// [`Status::recipient_parent_user_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_recipient_user_id: Option<String>,
    /// `group` for group messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_type: Option<String>,
    /// Groups: the participant's phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_participant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_participant_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_participant_parent_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_identity_key_hash: Option<String>,
    /// Echo of the send's `biz_opaque_callback_data`: matches statuses of
    /// sends whose answer was lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biz_opaque_callback_data: Option<String>,
    /// v23 and older; v24+ only for free-entry-point windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Conversation>,
    /// On `sent` and one of delivered/read; never on `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
    /// Why a `failed` status failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorBody>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

impl Status {
    pub fn is_group(&self) -> bool {
        self.recipient_type.as_deref() == Some("group")
    }

    /// The recipient's phone number: `recipient_id` unless empty or a group id.
    pub fn recipient_phone(&self) -> Option<&str> {
        if self.is_group() {
            return None;
        }
        non_empty(self.recipient_id.as_deref())
    }

    pub fn recipient_user_id(&self) -> Option<&str> {
        non_empty(self.recipient_user_id.as_deref())
    }

    /// The parent BSUID under either spelling.
    pub fn recipient_parent_user_id(&self) -> Option<&str> {
        non_empty(self.recipient_parent_user_id.as_deref())
            .or_else(|| non_empty(self.parent_recipient_user_id.as_deref()))
    }

    pub fn timestamp_secs(&self) -> Option<i64> {
        self.timestamp.as_ref()?.as_i64()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<ConversationOrigin>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationOrigin {
    /// `marketing`, `utility`, `authentication`, `service`, ...
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// Billing information. `billable` is slated for removal; use `kind` and
/// `category`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pricing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billable: Option<bool>,
    /// `PMP` (per-message, since 2025-07-01) or `CBP` (older).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_model: Option<String>,
    /// `regular`, `free_customer_service`, `free_entry_point`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `marketing`, `utility`, `authentication`, `service`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}
