//! The value of `messages`-style changes (`messages`, `smb_message_echoes`,
//! `user_preferences`, `user_id_update`): metadata, contacts, inbound
//! messages and their payload types, echoes, preferences and BSUID updates.
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};

use super::content::MessageContent;
use super::statuses::Status;
use crate::graph::ErrorBody;
use crate::json::{Extra, Timestamp, non_empty, open_enum};

/// The value of a `messages` change (and of the other changes that carry
/// `metadata` + `contacts`). Arrays Meta omits are empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessagesValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Who the messages/statuses are from/to (absent for system messages and
    /// failed statuses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<Contact>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<Status>,
    /// Value-level errors (e.g. 131000 "Unsupported webhook payload", 130429).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorBody>,
    /// `smb_message_echoes`: messages the business sent from the WhatsApp
    /// Business app (coexistence).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub message_echoes: Vec<MessageEcho>,
    /// `user_preferences`: marketing opt-out / resume / signup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_preferences: Vec<UserPreference>,
    /// `user_id_update`: a user's BSUID was regenerated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_id_update: Vec<UserIdUpdate>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// The business number the change is about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// The resolved identity of a user, combining a message's (or status's)
/// own fields with the matching `contacts[]` entry. Empty strings are absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContactIdentity<'a> {
    /// Phone number; absent for username users Meta withholds it for.
    pub wa_id: Option<&'a str>,
    /// Business-scoped user id (BSUID), the stable key from 2026.
    pub user_id: Option<&'a str>,
    pub parent_user_id: Option<&'a str>,
    pub username: Option<&'a str>,
    pub profile_name: Option<&'a str>,
}

impl ContactIdentity<'_> {
    /// Neither a phone number nor a BSUID is known.
    pub fn is_anonymous(&self) -> bool {
        self.wa_id.is_none() && self.user_id.is_none()
    }
}

impl MessagesValue {
    /// `metadata.phone_number_id`.
    pub fn phone_number_id(&self) -> Option<&str> {
        non_empty(self.metadata.as_ref()?.phone_number_id.as_deref())
    }

    /// The `contacts[]` entry for a user: the one whose `wa_id` or `user_id`
    /// matches, else the only entry if it does not contradict them.
    pub fn contact(&self, wa_id: Option<&str>, user_id: Option<&str>) -> Option<&Contact> {
        let (wa_id, user_id) = (non_empty(wa_id), non_empty(user_id));
        let matches = |c: &&Contact| {
            (user_id.is_some() && c.user_id() == user_id) || (wa_id.is_some() && c.wa_id() == wa_id)
        };
        let compatible = |c: &&Contact| {
            let agree = |mine: Option<&str>, theirs: Option<&str>| {
                mine.is_none() || theirs.is_none() || mine == theirs
            };
            agree(wa_id, c.wa_id()) && agree(user_id, c.user_id())
        };
        self.contacts
            .iter()
            .find(matches)
            .or_else(|| match self.contacts.as_slice() {
                [only] => Some(only).filter(compatible),
                _ => None,
            })
    }

    /// Who sent `message`.
    pub fn sender<'a>(&'a self, message: &'a Message) -> ContactIdentity<'a> {
        let contact = self.contact(message.from_phone(), message.from_user_id());
        identity(
            message.from_phone(),
            message.from_user_id(),
            non_empty(message.from_parent_user_id.as_deref()),
            contact,
        )
    }

    /// Who an SMB echo was sent to.
    pub fn echo_recipient<'a>(&'a self, echo: &'a MessageEcho) -> ContactIdentity<'a> {
        let contact = self.contact(echo.to_phone(), echo.to_user_id());
        identity(
            echo.to_phone(),
            echo.to_user_id(),
            non_empty(echo.to_parent_user_id.as_deref()),
            contact,
        )
    }

    /// Who `status` is about (the participant, for group statuses).
    pub fn status_recipient<'a>(&'a self, status: &'a Status) -> ContactIdentity<'a> {
        let (wa_id, user_id, parent) = if status.is_group() {
            (
                non_empty(status.recipient_participant_id.as_deref()),
                non_empty(status.recipient_participant_user_id.as_deref()),
                non_empty(status.recipient_participant_parent_user_id.as_deref()),
            )
        } else {
            (
                status.recipient_phone(),
                status.recipient_user_id(),
                status.recipient_parent_user_id(),
            )
        };
        let contact = self.contact(wa_id, user_id);
        identity(wa_id, user_id, parent, contact)
    }
}

fn identity<'a>(
    wa_id: Option<&'a str>,
    user_id: Option<&'a str>,
    parent_user_id: Option<&'a str>,
    contact: Option<&'a Contact>,
) -> ContactIdentity<'a> {
    let profile = contact.and_then(|c| c.profile.as_ref());
    ContactIdentity {
        wa_id: wa_id.or_else(|| contact?.wa_id()),
        user_id: user_id.or_else(|| contact?.user_id()),
        parent_user_id: parent_user_id.or_else(|| non_empty(contact?.parent_user_id.as_deref())),
        username: profile.and_then(|p| non_empty(p.username.as_deref())),
        profile_name: profile.and_then(|p| non_empty(p.name.as_deref())),
    }
}

/// An entry of `value.contacts[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// Phone number; may be `""` (see [`Contact::wa_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    /// BSUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Parent BSUID (enterprises with several portfolios).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_key_hash: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

impl Contact {
    /// `wa_id`, unless absent or empty.
    pub fn wa_id(&self) -> Option<&str> {
        non_empty(self.wa_id.as_deref())
    }

    /// `user_id` (BSUID), unless absent or empty.
    pub fn user_id(&self) -> Option<&str> {
        non_empty(self.user_id.as_deref())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// E.g. `@pablomorales`, for users who adopted a username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Nov 2025 BSUID draft only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// An inbound message (`value.messages[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Sender phone; `""` for username users (see [`Message::from_phone`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Sender BSUID (2026).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_parent_user_id: Option<String>,
    /// The `wamid`: the dedupe key.
    pub id: String,
    /// Unix seconds (a string here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<MessageContext>,
    /// Click-to-WhatsApp ad or post the user came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<Referral>,
    /// Groups API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Sent with `customer_identity_changed` system messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// Why an `unsupported` message could not be delivered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorBody>,
    #[serde(flatten)]
    pub content: MessageContent,
    #[serde(flatten, default)]
    pub extra: Extra,
}

impl Message {
    /// `from`, unless absent or empty.
    pub fn from_phone(&self) -> Option<&str> {
        non_empty(self.from.as_deref())
    }

    /// `from_user_id` (BSUID), unless absent or empty.
    pub fn from_user_id(&self) -> Option<&str> {
        non_empty(self.from_user_id.as_deref())
    }

    pub fn timestamp_secs(&self) -> Option<i64> {
        self.timestamp.as_ref()?.as_i64()
    }

    /// The raw payload object of a type this crate does not model (kept in
    /// `extra` under the type name) or of a malformed known type.
    pub fn raw_payload(&self) -> Option<&Value> {
        raw_payload(&self.content, &self.extra)
    }
}

fn raw_payload<'a>(content: &'a MessageContent, extra: &'a Extra) -> Option<&'a Value> {
    match content {
        MessageContent::Other { kind, payloads } => {
            let kind = kind.as_deref()?;
            payloads.get(kind).or_else(|| extra.get(kind))
        }
        _ => None,
    }
}

/// A message the business sent from the WhatsApp Business app
/// (`smb_message_echoes`, coexistence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEcho {
    /// The business number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The user's phone; may be `""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_parent_user_id: Option<String>,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<MessageContext>,
    #[serde(flatten)]
    pub content: MessageContent,
    #[serde(flatten, default)]
    pub extra: Extra,
}

impl MessageEcho {
    /// `to`, unless absent or empty.
    pub fn to_phone(&self) -> Option<&str> {
        non_empty(self.to.as_deref())
    }

    pub fn to_user_id(&self) -> Option<&str> {
        non_empty(self.to_user_id.as_deref())
    }

    pub fn raw_payload(&self) -> Option<&Value> {
        raw_payload(&self.content, &self.extra)
    }
}

/// The new version of an edited message (no id, sender or timestamp).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditedMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<MessageContext>,
    #[serde(flatten)]
    pub content: MessageContent,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// Reply, forward and product-enquiry context of a message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageContext {
    /// The business number (replies to a business message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The `wamid` replied to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded: Option<bool>,
    /// Forwarded more than five times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequently_forwarded: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referred_product: Option<ReferredProduct>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReferredProduct {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_retailer_id: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// Click-to-WhatsApp ad / post attribution.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Referral {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// `ad` or `post`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    /// Click id for conversion reporting (absent for Status ads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctwa_clid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome_message: Option<WelcomeMessage>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WelcomeMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// Identity-key change details.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextBody {
    pub body: String,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// Inbound image, video, audio, document or sticker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InboundMedia {
    /// Media id for `GET /{media-id}` (valid 7 days).
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// Documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Direct download URL (since late 2025); still needs the bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Audio: a voice note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<bool>,
    /// Stickers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub animated: Option<bool>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InboundLocation {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// Template quick-reply tap (`type: "button"`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ButtonReply {
    /// The payload set when sending the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The button label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// A reaction. No or empty `emoji` means the reaction was removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reaction {
    pub message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

impl Reaction {
    pub fn is_removal(&self) -> bool {
        non_empty(self.emoji.as_deref()).is_none()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub product_items: Vec<ProductItem>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProductItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_retailer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<i64>,
    /// Kept as a JSON number (integer or decimal, as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_price: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

open_enum!(
    /// `system.type`.
    pub enum SystemKind {
        /// The user's phone number changed (`wa_id` is the new one).
        UserChangedNumber = "user_changed_number",
        /// The user's BSUID changed (`user_id` is the new one).
        UserChangedUserId = "user_changed_user_id",
        /// The user's identity key changed (see the message's `identity`).
        CustomerIdentityChanged = "customer_identity_changed",
        /// Older name of `user_changed_number`.
        CustomerChangedNumber = "customer_changed_number",
    }
);

/// A system message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct System {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<SystemKind>,
    /// New phone number (`user_changed_number`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    /// Older payloads: new phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_wa_id: Option<String>,
    /// Older payloads: the user concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// New BSUID (`user_changed_user_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_user_id: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

impl System {
    /// The user's new phone number, for number changes.
    pub fn new_phone(&self) -> Option<&str> {
        non_empty(self.wa_id.as_deref()).or_else(|| non_empty(self.new_wa_id.as_deref()))
    }

    /// The user's new BSUID, for BSUID changes.
    pub fn new_user_id(&self) -> Option<&str> {
        non_empty(self.user_id.as_deref())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Unsupported {
    /// The actual type (e.g. `edit`, `poll`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Revoke {
    pub original_message_id: String,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edit {
    pub original_message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<EditedMessage>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// A reply to an interactive message: `{"type": "<t>", "<t>": {...}}`.
/// Unknown reply types are kept whole in `Other`.
#[derive(Debug, Clone, PartialEq)]
pub enum InteractiveReply {
    ButtonReply(ReplyId),
    ListReply(ReplyId),
    /// WhatsApp Flow completion.
    NfmReply(NfmReply),
    Other(Value),
}

impl Serialize for InteractiveReply {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (kind, payload) = match self {
            InteractiveReply::ButtonReply(r) => ("button_reply", ReplyRef::Id(r)),
            InteractiveReply::ListReply(r) => ("list_reply", ReplyRef::Id(r)),
            InteractiveReply::NfmReply(r) => ("nfm_reply", ReplyRef::Nfm(r)),
            InteractiveReply::Other(v) => return v.serialize(serializer),
        };
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("type", kind)?;
        map.serialize_entry(kind, &payload)?;
        map.end()
    }
}

/// Borrowed payload of a typed [`InteractiveReply`], for serialisation.
#[derive(Serialize)]
#[serde(untagged)]
enum ReplyRef<'a> {
    Id(&'a ReplyId),
    Nfm(&'a NfmReply),
}

impl<'de> Deserialize<'de> for InteractiveReply {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(deserializer)?;
        let kind = map.get("type").and_then(Value::as_str);
        let payload = kind.and_then(|k| map.get(k));
        let typed = match (kind, payload) {
            // Only the exact `{type, <type>}` shape is typed; extra keys keep it raw.
            (Some(kind), Some(payload)) if map.len() == 2 => match kind {
                "button_reply" => ReplyId::deserialize(payload).ok().map(Self::ButtonReply),
                "list_reply" => ReplyId::deserialize(payload).ok().map(Self::ListReply),
                "nfm_reply" => NfmReply::deserialize(payload).ok().map(Self::NfmReply),
                _ => None,
            },
            _ => None,
        };
        Ok(typed.unwrap_or(InteractiveReply::Other(Value::Object(map))))
    }
}

/// The `id` and `title` of the chosen button or list row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplyId {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// List rows only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// Flow completion: `response_json` is a JSON document in a string.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NfmReply {
    /// `flow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub response_json: String,
    #[serde(flatten, default)]
    pub extra: Extra,
}

impl NfmReply {
    /// `response_json` parsed (includes `flow_token` when the flow had one).
    pub fn response(&self) -> serde_json::Result<Value> {
        serde_json::from_str(&self.response_json)
    }
}

/// Marketing-message preference change (`user_preferences`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserPreference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// `marketing_messages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// `stop`, `resume` or `signup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signup_id: Option<String>,
    /// Unix seconds (an integer here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

impl UserPreference {
    pub fn wa_id(&self) -> Option<&str> {
        non_empty(self.wa_id.as_deref())
    }

    pub fn user_id(&self) -> Option<&str> {
        non_empty(self.user_id.as_deref())
    }
}

/// A BSUID regeneration (`user_id_update`, 2026): re-key the user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserIdUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<IdChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_user_id: Option<IdChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IdChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}
