//! How a message looks to customers: the `data` of message events and the
//! fields the Message resource shares with them.
use serde_json::{Value, json};

use crate::store::contacts::ContactRow;
use crate::store::messages::MessageRow;
use crate::store::phones::PhoneRow;

/// The `data` of `message.received`, `message.sent` and
/// `message.status_updated`: the message fields and every contact identity
/// field of the contract (`contactPhone` null when Meta gives no phone).
pub fn event_data(msg: &MessageRow, contact: Option<&ContactRow>, phone: &PhoneRow) -> Value {
    let mut data = json!({
        "messageId": msg.id,
        "conversationId": msg.conversation_id,
        "phoneNumberId": phone.id,
        "phoneNumber": phone.display_phone_number,
        "wamid": msg.wamid,
        "direction": msg.direction,
        "type": msg.kind,
        "content": msg.content,
        "status": msg.status,
        "timestamp": timestamp(msg).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "batchId": msg.batch_id,
        "to": msg.recipient,
        "error": error(msg),
        "errorMessage": msg.error_message,
        "pricing": msg.pricing,
    });
    let fields = contact
        .map(ContactRow::fields)
        .unwrap_or_default()
        .to_json();
    if let (Value::Object(d), Value::Object(c)) = (&mut data, fields) {
        d.extend(c);
    }
    data
}

/// When the message was received (Meta's time) or accepted.
pub fn timestamp(msg: &MessageRow) -> chrono::DateTime<chrono::Utc> {
    msg.meta_timestamp.unwrap_or(msg.created_at)
}

/// `{code, title, message, details}` when the message failed, else null.
pub fn error(msg: &MessageRow) -> Value {
    if msg.status != "failed" && msg.error_message.is_none() {
        return Value::Null;
    }
    json!({
        "code": msg.error_code,
        "title": msg.error_title,
        "message": msg.error_message,
        "details": msg.error_details,
    })
}
