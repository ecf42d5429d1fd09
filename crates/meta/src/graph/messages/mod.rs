//! `POST /{phone-number-id}/messages`: sending every message type, and the
//! mark-as-read / typing-indicator call that shares the endpoint.
//!
//! A [`SendMessage`] is the common envelope (`messaging_product`, recipient,
//! reply context, `biz_opaque_callback_data`) with a flattened
//! [`MessagePayload`] that writes `"type": "<t>", "<t>": {...}`.
use serde::{Deserialize, Serialize};

use super::{GraphClient, GraphError, Success};
use crate::contact::ContactCard;
use crate::json::{Extra, WhatsApp, const_str};

pub mod interactive;
pub mod template;

pub use interactive::Interactive;
pub use template::Template;

/// One outbound message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendMessage {
    pub messaging_product: WhatsApp,
    /// `individual` (the default when absent) or `group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_type: Option<RecipientType>,
    /// `to` (phone number or group id) or `recipient` (BSUID).
    #[serde(flatten)]
    pub recipient: Recipient,
    /// Quote a previous message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ReplyTo>,
    /// Opaque string Meta echoes in every status webhook of this message;
    /// wagate puts its own message id here to match ambiguous sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biz_opaque_callback_data: Option<String>,
    /// Fails the send (137000) if the user's identity key changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_identity_key_hash: Option<String>,
    #[serde(flatten)]
    pub payload: MessagePayload,
}

impl SendMessage {
    /// An individual message to `recipient`.
    pub fn new(recipient: Recipient, payload: MessagePayload) -> Self {
        SendMessage {
            messaging_product: WhatsApp,
            recipient_type: Some(RecipientType::Individual),
            recipient,
            context: None,
            biz_opaque_callback_data: None,
            recipient_identity_key_hash: None,
            payload,
        }
    }

    /// To a phone number (E.164 with `+` is safest: without it Meta assumes
    /// the business number's country code).
    pub fn to(phone: impl Into<String>, payload: MessagePayload) -> Self {
        Self::new(Recipient::To(phone.into()), payload)
    }

    /// To a business-scoped user id (BSUID) or parent BSUID.
    pub fn to_user_id(user_id: impl Into<String>, payload: MessagePayload) -> Self {
        Self::new(Recipient::UserId(user_id.into()), payload)
    }

    /// To a group (Groups API).
    pub fn to_group(group_id: impl Into<String>, payload: MessagePayload) -> Self {
        SendMessage {
            recipient_type: Some(RecipientType::Group),
            ..Self::new(Recipient::To(group_id.into()), payload)
        }
    }

    /// Quote `message_id` (a `wamid`).
    pub fn reply_to(mut self, message_id: impl Into<String>) -> Self {
        self.context = Some(ReplyTo {
            message_id: message_id.into(),
        });
        self
    }

    /// Sets `biz_opaque_callback_data`.
    pub fn callback_data(mut self, data: impl Into<String>) -> Self {
        self.biz_opaque_callback_data = Some(data.into());
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientType {
    Individual,
    Group,
}

/// Who receives the message. If both were sent Meta would use `to`; the type
/// makes that impossible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recipient {
    /// `"to"`: phone number, or group id with `recipient_type: group`.
    /// Always serialised as a JSON string.
    #[serde(rename = "to")]
    To(String),
    /// `"recipient"`: BSUID or parent BSUID (2026).
    #[serde(rename = "recipient")]
    UserId(String),
}

/// `"context": {"message_id": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyTo {
    pub message_id: String,
}

/// The typed body, written as `"type": "<t>", "<t>": {...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MessagePayload {
    Text { text: Text },
    Image { image: MediaObject },
    Audio { audio: MediaObject },
    Video { video: MediaObject },
    Document { document: MediaObject },
    Sticker { sticker: MediaObject },
    Location { location: Location },
    Contacts { contacts: Vec<ContactCard> },
    Interactive { interactive: Interactive },
    Reaction { reaction: Reaction },
    Template { template: Template },
}

impl MessagePayload {
    pub fn text(body: impl Into<String>) -> Self {
        MessagePayload::Text {
            text: Text {
                body: body.into(),
                preview_url: None,
            },
        }
    }

    /// Text whose first URL is rendered as a preview.
    pub fn text_with_preview(body: impl Into<String>) -> Self {
        MessagePayload::Text {
            text: Text {
                body: body.into(),
                preview_url: Some(true),
            },
        }
    }

    pub fn image(image: MediaObject) -> Self {
        MessagePayload::Image { image }
    }

    pub fn audio(audio: MediaObject) -> Self {
        MessagePayload::Audio { audio }
    }

    pub fn video(video: MediaObject) -> Self {
        MessagePayload::Video { video }
    }

    pub fn document(document: MediaObject) -> Self {
        MessagePayload::Document { document }
    }

    pub fn sticker(sticker: MediaObject) -> Self {
        MessagePayload::Sticker { sticker }
    }

    pub fn location(location: Location) -> Self {
        MessagePayload::Location { location }
    }

    pub fn contacts(contacts: Vec<ContactCard>) -> Self {
        MessagePayload::Contacts { contacts }
    }

    pub fn interactive(interactive: Interactive) -> Self {
        MessagePayload::Interactive { interactive }
    }

    /// React to a received message; an empty `emoji` removes the reaction.
    pub fn reaction(message_id: impl Into<String>, emoji: impl Into<String>) -> Self {
        MessagePayload::Reaction {
            reaction: Reaction {
                message_id: message_id.into(),
                emoji: emoji.into(),
            },
        }
    }

    pub fn template(template: Template) -> Self {
        MessagePayload::Template { template }
    }

    /// The wire name of the type.
    pub fn kind(&self) -> &'static str {
        match self {
            MessagePayload::Text { .. } => "text",
            MessagePayload::Image { .. } => "image",
            MessagePayload::Audio { .. } => "audio",
            MessagePayload::Video { .. } => "video",
            MessagePayload::Document { .. } => "document",
            MessagePayload::Sticker { .. } => "sticker",
            MessagePayload::Location { .. } => "location",
            MessagePayload::Contacts { .. } => "contacts",
            MessagePayload::Interactive { .. } => "interactive",
            MessagePayload::Reaction { .. } => "reaction",
            MessagePayload::Template { .. } => "template",
        }
    }
}

/// Text body (≤ 4096 chars).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text {
    pub body: String,
    /// Render a preview of the first URL in `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_url: Option<bool>,
}

/// An image, audio, video, document or sticker: exactly one of an uploaded
/// media id or a public HTTPS link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaObject {
    #[serde(flatten)]
    pub source: MediaSource,
    /// Image, video and document only (≤ 1024 chars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// Document only: the file name shown to the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Audio only: mark as a voice note (OGG/OPUS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<bool>,
}

impl MediaObject {
    pub fn id(id: impl Into<String>) -> Self {
        Self::from_source(MediaSource::Id(id.into()))
    }

    pub fn link(link: impl Into<String>) -> Self {
        Self::from_source(MediaSource::Link(link.into()))
    }

    fn from_source(source: MediaSource) -> Self {
        MediaObject {
            source,
            caption: None,
            filename: None,
            voice: None,
        }
    }

    pub fn caption(mut self, caption: impl Into<String>) -> Self {
        self.caption = Some(caption.into());
        self
    }

    pub fn filename(mut self, filename: impl Into<String>) -> Self {
        self.filename = Some(filename.into());
        self
    }

    pub fn voice(mut self, voice: bool) -> Self {
        self.voice = Some(voice);
        self
    }
}

/// Where Meta gets the media from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MediaSource {
    /// `"id"`: uploaded with `POST /media` (recommended).
    #[serde(rename = "id")]
    Id(String),
    /// `"link"`: an HTTPS URL Meta downloads (cached 10 minutes per URL).
    #[serde(rename = "link")]
    Link(String),
}

/// A location pin. Meta accepts numbers (what this sends) or strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// Reaction to a received message (≤ 30 days old). `emoji: ""` removes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub message_id: String,
    pub emoji: String,
}

const_str!(
    /// `"status": "read"` of the mark-as-read call.
    Read = "read"
);

/// Marks a received message (and all earlier ones) as read, optionally
/// showing a typing indicator for up to 25 s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkRead {
    pub messaging_product: WhatsApp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_type: Option<RecipientType>,
    pub status: Read,
    /// The `wamid` of an incoming message (outgoing ids fail with 100).
    pub message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing_indicator: Option<TypingIndicator>,
}

impl MarkRead {
    pub fn new(message_id: impl Into<String>) -> Self {
        MarkRead {
            messaging_product: WhatsApp,
            recipient_type: None,
            status: Read,
            message_id: message_id.into(),
            typing_indicator: None,
        }
    }

    /// Also show "typing…" until the reply is sent (or 25 s pass).
    pub fn with_typing(mut self) -> Self {
        self.typing_indicator = Some(TypingIndicator {
            kind: TypingKind::Text,
        });
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingIndicator {
    #[serde(rename = "type")]
    pub kind: TypingKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypingKind {
    Text,
}

/// The answer to a send: Meta accepted the message (delivery is reported
/// later by status webhooks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendMessageResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_product: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<SentContact>,
    #[serde(default)]
    pub messages: Vec<SentMessage>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

impl SendMessageResponse {
    /// The `wamid` of the accepted message.
    pub fn message_id(&self) -> Option<&str> {
        self.messages.first().map(|m| m.id.as_str())
    }
}

/// How Meta resolved the recipient: `wa_id` may differ from `input` (Brazil,
/// Mexico), and is empty for BSUID sends, which return `user_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentContact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

impl SentContact {
    /// `wa_id`, unless empty.
    pub fn wa_id(&self) -> Option<&str> {
        crate::json::non_empty(self.wa_id.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentMessage {
    pub id: String,
    /// Template pacing: `accepted` or `held_for_quality_assessment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_status: Option<String>,
    /// Group sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

impl GraphClient {
    /// `POST /{phone_number_id}/messages`. Not idempotent: on
    /// [`GraphError::Ambiguous`] the message may have been sent.
    pub async fn send_message(
        &self,
        token: &str,
        phone_number_id: &str,
        message: &SendMessage,
    ) -> Result<SendMessageResponse, GraphError> {
        self.post(Some(token), &[phone_number_id, "messages"], message)
            .await
    }

    /// `POST /{phone_number_id}/messages` with `status: read` (and optionally
    /// a typing indicator).
    pub async fn mark_read(
        &self,
        token: &str,
        phone_number_id: &str,
        mark: &MarkRead,
    ) -> Result<Success, GraphError> {
        self.post(Some(token), &[phone_number_id, "messages"], mark)
            .await
    }
}
