//! Interactive messages: reply buttons, lists and CTA URL buttons (plus flow
//! and location-request, whose action objects are passed through as JSON).
//!
//! Meta's limits (≤ 3 buttons with ≤ 20-char titles, ≤ 10 list rows, body
//! ≤ 1024/4096 chars, ...) are not enforced here; violating them yields
//! error 131009 from Meta.
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::MediaObject;
use crate::json::const_str;

/// `"interactive": {...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interactive {
    /// `"type"` and its `"action"`.
    #[serde(flatten)]
    pub kind: InteractiveKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Header>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<TextBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<TextBlock>,
}

impl Interactive {
    /// Up to three reply buttons.
    pub fn buttons(body: impl Into<String>, buttons: Vec<ReplyButton>) -> Self {
        Self::with_kind(
            InteractiveKind::Button {
                action: ButtonsAction { buttons },
            },
            body,
        )
    }

    /// A list opened by a button labelled `button`.
    pub fn list(
        body: impl Into<String>,
        button: impl Into<String>,
        sections: Vec<Section>,
    ) -> Self {
        Self::with_kind(
            InteractiveKind::List {
                action: ListAction {
                    button: button.into(),
                    sections,
                },
            },
            body,
        )
    }

    /// One button that opens `url`.
    pub fn cta_url(
        body: impl Into<String>,
        display_text: impl Into<String>,
        url: impl Into<String>,
    ) -> Self {
        Self::with_kind(
            InteractiveKind::CtaUrl {
                action: CtaUrlAction {
                    name: CtaUrl,
                    parameters: CtaUrlParameters {
                        display_text: display_text.into(),
                        url: url.into(),
                    },
                },
            },
            body,
        )
    }

    fn with_kind(kind: InteractiveKind, body: impl Into<String>) -> Self {
        Interactive {
            kind,
            header: None,
            body: Some(TextBlock::new(body)),
            footer: None,
        }
    }

    pub fn header(mut self, header: Header) -> Self {
        self.header = Some(header);
        self
    }

    pub fn footer(mut self, text: impl Into<String>) -> Self {
        self.footer = Some(TextBlock::new(text));
        self
    }
}

/// The interactive type with its action object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InteractiveKind {
    Button {
        action: ButtonsAction,
    },
    List {
        action: ListAction,
    },
    CtaUrl {
        action: CtaUrlAction,
    },
    /// WhatsApp Flows; the action object is passed through.
    Flow {
        action: Value,
    },
    /// Asks the user to share their location (`{"name":"send_location"}`).
    LocationRequestMessage {
        action: Value,
    },
}

/// `{"text": "..."}` used for body and footer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextBlock {
    pub text: String,
}

impl TextBlock {
    pub fn new(text: impl Into<String>) -> Self {
        TextBlock { text: text.into() }
    }
}

/// Header: text (≤ 60 chars) or media (buttons and CTA only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Header {
    Text { text: String },
    Image { image: MediaObject },
    Video { video: MediaObject },
    Document { document: MediaObject },
}

impl Header {
    pub fn text(text: impl Into<String>) -> Self {
        Header::Text { text: text.into() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ButtonsAction {
    pub buttons: Vec<ReplyButton>,
}

const_str!(
    /// `"type": "reply"` of a reply button.
    Reply = "reply"
);

/// `{"type":"reply","reply":{"id","title"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyButton {
    #[serde(rename = "type")]
    pub kind: Reply,
    pub reply: ReplyButtonId,
}

impl ReplyButton {
    /// `id` comes back in the `button_reply` webhook; `title` ≤ 20 chars.
    pub fn new(id: impl Into<String>, title: impl Into<String>) -> Self {
        ReplyButton {
            kind: Reply,
            reply: ReplyButtonId {
                id: id.into(),
                title: title.into(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyButtonId {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListAction {
    /// Label of the button that opens the list (≤ 20 chars).
    pub button: String,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// Required when there is more than one section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Comes back in the `list_reply` webhook.
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Row {
    pub fn new(id: impl Into<String>, title: impl Into<String>) -> Self {
        Row {
            id: id.into(),
            title: title.into(),
            description: None,
        }
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

const_str!(
    /// `"name": "cta_url"` of a CTA URL action.
    CtaUrl = "cta_url"
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtaUrlAction {
    pub name: CtaUrl,
    pub parameters: CtaUrlParameters,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtaUrlParameters {
    pub display_text: String,
    pub url: String,
}
