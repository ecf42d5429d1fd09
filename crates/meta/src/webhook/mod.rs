//! Webhook payloads Meta posts to the callback URL.
//!
//! Parsing never rejects what Meta might add: an unknown `field` becomes
//! [`ChangeValue::Other`], a known field whose value does not fit the types
//! falls back to it as well, unknown message types keep their object, and
//! structs keep unknown keys in `extra`. Verify the `X-Hub-Signature-256`
//! header over the raw body (see [`crate::signature`]) before parsing.
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub mod content;
pub mod fields;
pub mod messages;
pub mod statuses;

pub use content::MessageContent;
pub use fields::*;
pub use messages::*;
pub use statuses::*;

use crate::json::{Extra, Timestamp};

/// The whole POST body: `{"object": "whatsapp_business_account", "entry": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookPayload {
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub entry: Vec<Entry>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// Changes for one WABA (`id`). Meta batches: iterate every entry and change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The WABA id.
    pub id: String,
    /// Present on non-message fields (an integer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Timestamp>,
    #[serde(default)]
    pub changes: Vec<Change>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// One change: the `field` names the shape of `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub field: String,
    pub value: ChangeValue,
    /// Keys besides `field` and `value`, kept verbatim.
    pub extra: Extra,
}

/// The typed `value` of a change, chosen by its `field`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ChangeValue {
    /// `messages`: inbound messages, statuses, value-level errors.
    Messages(MessagesValue),
    /// `smb_message_echoes`: messages sent from the WhatsApp Business app.
    SmbMessageEchoes(MessagesValue),
    /// `user_preferences`: marketing opt-out / resume.
    UserPreferences(MessagesValue),
    /// `user_id_update`: BSUID regenerated.
    UserIdUpdate(MessagesValue),
    MessageTemplateStatusUpdate(TemplateStatusUpdate),
    TemplateCategoryUpdate(TemplateCategoryUpdate),
    MessageTemplateQualityUpdate(TemplateQualityUpdate),
    MessageTemplateComponentsUpdate(TemplateComponentsUpdate),
    PhoneNumberQualityUpdate(PhoneNumberQualityUpdate),
    PhoneNumberNameUpdate(PhoneNumberNameUpdate),
    /// Boxed: by far the largest value type.
    AccountUpdate(Box<AccountUpdate>),
    AccountReviewUpdate(AccountReviewUpdate),
    BusinessCapabilityUpdate(BusinessCapabilityUpdate),
    /// An unknown field, or a known one whose value did not fit: kept raw.
    Other(Value),
}

impl ChangeValue {
    /// Types `value` according to `field`; never fails.
    pub fn parse(field: &str, value: Value) -> Self {
        fn typed<T: DeserializeOwned>(
            v: &Value,
            wrap: fn(T) -> ChangeValue,
        ) -> Option<ChangeValue> {
            T::deserialize(v).ok().map(wrap)
        }
        let parsed = match field {
            "messages" => typed(&value, ChangeValue::Messages),
            "smb_message_echoes" => typed(&value, ChangeValue::SmbMessageEchoes),
            "user_preferences" => typed(&value, ChangeValue::UserPreferences),
            "user_id_update" => typed(&value, ChangeValue::UserIdUpdate),
            "message_template_status_update" => {
                typed(&value, ChangeValue::MessageTemplateStatusUpdate)
            }
            "template_category_update" => typed(&value, ChangeValue::TemplateCategoryUpdate),
            "message_template_quality_update" => {
                typed(&value, ChangeValue::MessageTemplateQualityUpdate)
            }
            "message_template_components_update" => {
                typed(&value, ChangeValue::MessageTemplateComponentsUpdate)
            }
            "phone_number_quality_update" => typed(&value, ChangeValue::PhoneNumberQualityUpdate),
            "phone_number_name_update" => typed(&value, ChangeValue::PhoneNumberNameUpdate),
            "account_update" => typed(&value, |v| ChangeValue::AccountUpdate(Box::new(v))),
            "account_review_update" => typed(&value, ChangeValue::AccountReviewUpdate),
            "business_capability_update" => typed(&value, ChangeValue::BusinessCapabilityUpdate),
            _ => None,
        };
        parsed.unwrap_or(ChangeValue::Other(value))
    }

    /// The messages-style value (with `metadata` and `contacts`), if this is one.
    pub fn messages_value(&self) -> Option<&MessagesValue> {
        match self {
            ChangeValue::Messages(v)
            | ChangeValue::SmbMessageEchoes(v)
            | ChangeValue::UserPreferences(v)
            | ChangeValue::UserIdUpdate(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_other(&self) -> bool {
        matches!(self, ChangeValue::Other(_))
    }
}

#[derive(Deserialize)]
struct ChangeIn {
    field: String,
    #[serde(default)]
    value: Value,
    #[serde(flatten, default)]
    extra: Extra,
}

#[derive(Serialize)]
struct ChangeOut<'a> {
    field: &'a str,
    value: &'a ChangeValue,
    #[serde(flatten)]
    extra: &'a Extra,
}

impl<'de> Deserialize<'de> for Change {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = ChangeIn::deserialize(deserializer)?;
        Ok(Change {
            value: ChangeValue::parse(&raw.field, raw.value),
            field: raw.field,
            extra: raw.extra,
        })
    }
}

impl Serialize for Change {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ChangeOut {
            field: &self.field,
            value: &self.value,
            extra: &self.extra,
        }
        .serialize(serializer)
    }
}

/// One change with the entry it came in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChangeRef<'a> {
    /// `entry[].id`: the WABA.
    pub waba_id: &'a str,
    pub time: Option<&'a Timestamp>,
    pub field: &'a str,
    pub value: &'a ChangeValue,
}

impl<'a> ChangeRef<'a> {
    /// `metadata.phone_number_id` of messages-style values.
    pub fn phone_number_id(&self) -> Option<&'a str> {
        self.value.messages_value()?.phone_number_id()
    }
}

impl WebhookPayload {
    /// Parses a raw body (after the signature check).
    pub fn from_slice(body: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(body)
    }

    /// Every change of every entry, in order.
    pub fn changes(&self) -> impl Iterator<Item = ChangeRef<'_>> {
        self.entry.iter().flat_map(|entry| {
            entry.changes.iter().map(move |change| ChangeRef {
                waba_id: &entry.id,
                time: entry.time.as_ref(),
                field: &change.field,
                value: &change.value,
            })
        })
    }

    /// `(phone_number_id, value)` for every messages-style change that names
    /// its business number.
    pub fn messages_values(&self) -> impl Iterator<Item = (&str, &MessagesValue)> {
        self.changes().filter_map(|c| {
            let value = c.value.messages_value()?;
            Some((value.phone_number_id()?, value))
        })
    }
}
