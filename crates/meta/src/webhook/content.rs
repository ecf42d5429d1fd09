//! The type-dependent part of a message (`"type": "<t>", "<t>": {...}`),
//! shared by inbound messages, SMB echoes and edited messages.
//!
//! [`MessageContent`] is flattened into its message. It takes only the `type`
//! key and the payload keys it knows; any other key stays in the message's
//! `extra`, so an unknown type's payload object is kept there verbatim.
use std::fmt;

use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::messages::{
    ButtonReply, Edit, InboundLocation, InboundMedia, InteractiveReply, Order, Reaction, Revoke,
    System, TextBody, Unsupported,
};
use crate::contact::ContactCard;

/// Keys of the payload objects this crate models, plus `type`.
const KEYS: &[&str] = &[
    "type",
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "button",
    "reaction",
    "order",
    "system",
    "unsupported",
    "revoke",
    "edit",
];

/// What a message carries.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageContent {
    Text(TextBody),
    Image(InboundMedia),
    Video(InboundMedia),
    Audio(InboundMedia),
    Document(InboundMedia),
    Sticker(InboundMedia),
    Location(InboundLocation),
    Contacts(Vec<ContactCard>),
    /// A reply to an interactive message (button, list, flow).
    Interactive(InteractiveReply),
    /// A template quick-reply button tap.
    Button(ButtonReply),
    /// A reaction, or its removal.
    Reaction(Reaction),
    Order(Order),
    /// Number / BSUID / identity changes.
    System(System),
    /// A type Cloud API does not deliver (details in the message's `errors`;
    /// since Nov 2025 `unsupported.type` names it).
    Unsupported(Option<Unsupported>),
    /// Coexistence: the user deleted a message.
    Revoke(Revoke),
    /// Coexistence: the user edited a message.
    Edit(Box<Edit>),
    /// The user opened the chat (legacy event; tolerated, not relied upon).
    RequestWelcome,
    /// A type this crate does not model, or a known type whose payload is
    /// missing or malformed. `payloads` holds the payload keys that were
    /// present (an unknown type's payload stays in the message's `extra`).
    Other {
        kind: Option<String>,
        payloads: Map<String, Value>,
    },
}

impl MessageContent {
    /// The `type` string.
    pub fn kind(&self) -> Option<&str> {
        Some(match self {
            MessageContent::Text(_) => "text",
            MessageContent::Image(_) => "image",
            MessageContent::Video(_) => "video",
            MessageContent::Audio(_) => "audio",
            MessageContent::Document(_) => "document",
            MessageContent::Sticker(_) => "sticker",
            MessageContent::Location(_) => "location",
            MessageContent::Contacts(_) => "contacts",
            MessageContent::Interactive(_) => "interactive",
            MessageContent::Button(_) => "button",
            MessageContent::Reaction(_) => "reaction",
            MessageContent::Order(_) => "order",
            MessageContent::System(_) => "system",
            MessageContent::Unsupported(_) => "unsupported",
            MessageContent::Revoke(_) => "revoke",
            MessageContent::Edit(_) => "edit",
            MessageContent::RequestWelcome => "request_welcome",
            MessageContent::Other { kind, .. } => return kind.as_deref(),
        })
    }

    /// The media object of image/video/audio/document/sticker messages.
    pub fn media(&self) -> Option<&InboundMedia> {
        match self {
            MessageContent::Image(m)
            | MessageContent::Video(m)
            | MessageContent::Audio(m)
            | MessageContent::Document(m)
            | MessageContent::Sticker(m) => Some(m),
            _ => None,
        }
    }

    /// Whether this fell back to [`MessageContent::Other`].
    pub fn is_other(&self) -> bool {
        matches!(self, MessageContent::Other { .. })
    }

    /// Types the content from `type` and the payload keys found. Only a lone
    /// payload under its own type name is typed; anything else is kept raw so
    /// nothing is lost.
    fn from_parts(kind: Option<String>, payloads: Map<String, Value>) -> Self {
        let typed = kind.as_deref().and_then(|k| {
            let payload = payloads.get(k);
            if payloads.len() > usize::from(payload.is_some()) {
                return None;
            }
            Self::typed(k, payload)
        });
        typed.unwrap_or(MessageContent::Other { kind, payloads })
    }

    fn typed(kind: &str, payload: Option<&Value>) -> Option<Self> {
        fn parse<T: DeserializeOwned>(v: Option<&Value>) -> Option<T> {
            T::deserialize(v?).ok()
        }
        let media = || parse::<InboundMedia>(payload);
        Some(match kind {
            "text" => MessageContent::Text(parse(payload)?),
            "image" => MessageContent::Image(media()?),
            "video" => MessageContent::Video(media()?),
            "audio" => MessageContent::Audio(media()?),
            "document" => MessageContent::Document(media()?),
            "sticker" => MessageContent::Sticker(media()?),
            "location" => MessageContent::Location(parse(payload)?),
            "contacts" => MessageContent::Contacts(parse(payload)?),
            "interactive" => MessageContent::Interactive(parse(payload)?),
            "button" => MessageContent::Button(parse(payload)?),
            "reaction" => MessageContent::Reaction(parse(payload)?),
            "order" => MessageContent::Order(parse(payload)?),
            "system" => MessageContent::System(parse(payload)?),
            "unsupported" => MessageContent::Unsupported(match payload {
                None => None,
                Some(_) => Some(parse(payload)?),
            }),
            "revoke" => MessageContent::Revoke(parse(payload)?),
            "edit" => MessageContent::Edit(Box::new(parse(payload)?)),
            "request_welcome" if payload.is_none() => MessageContent::RequestWelcome,
            _ => return None,
        })
    }
}

impl Serialize for MessageContent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let MessageContent::Other { kind, payloads } = self {
            if let Some(kind) = kind {
                map.serialize_entry("type", kind)?;
            }
            for (k, v) in payloads {
                map.serialize_entry(k, v)?;
            }
            return map.end();
        }
        let Some(kind) = self.kind() else {
            return map.end();
        };
        map.serialize_entry("type", kind)?;
        match self {
            MessageContent::Text(p) => map.serialize_entry(kind, p)?,
            MessageContent::Image(p)
            | MessageContent::Video(p)
            | MessageContent::Audio(p)
            | MessageContent::Document(p)
            | MessageContent::Sticker(p) => map.serialize_entry(kind, p)?,
            MessageContent::Location(p) => map.serialize_entry(kind, p)?,
            MessageContent::Contacts(p) => map.serialize_entry(kind, p)?,
            MessageContent::Interactive(p) => map.serialize_entry(kind, p)?,
            MessageContent::Button(p) => map.serialize_entry(kind, p)?,
            MessageContent::Reaction(p) => map.serialize_entry(kind, p)?,
            MessageContent::Order(p) => map.serialize_entry(kind, p)?,
            MessageContent::System(p) => map.serialize_entry(kind, p)?,
            MessageContent::Unsupported(Some(p)) => map.serialize_entry(kind, p)?,
            MessageContent::Revoke(p) => map.serialize_entry(kind, p)?,
            MessageContent::Edit(p) => map.serialize_entry(kind, p)?,
            MessageContent::Unsupported(None)
            | MessageContent::RequestWelcome
            | MessageContent::Other { .. } => {}
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for MessageContent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `deserialize_struct` with the known keys makes a flattened
        // deserializer hand over (and consume) only those keys, leaving the
        // rest to the message's `extra`.
        deserializer.deserialize_struct("MessageContent", KEYS, ContentVisitor)
    }
}

struct ContentVisitor;

impl<'de> Visitor<'de> for ContentVisitor {
    type Value = MessageContent;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message object with a type")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut kind = None;
        let mut payloads = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "type" {
                match map.next_value::<Value>()? {
                    Value::String(s) => kind = Some(s),
                    // A non-string type is kept as a payload so it round-trips.
                    other => {
                        payloads.insert(key, other);
                    }
                }
            } else if KEYS.contains(&key.as_str()) {
                let value = map.next_value::<Value>()?;
                payloads.insert(key, value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(MessageContent::from_parts(kind, payloads))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(MessageContent::Other {
            kind: None,
            payloads: Map::new(),
        })
    }
}
