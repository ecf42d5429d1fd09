//! The `content` read shape of a received message (the platform guide's
//! shapes, camelCase like the rest of the API), and the stored `type`.
//!
//! | type | content |
//! |---|---|
//! | `text` | `{body}` |
//! | `image`, `video` | `{url, caption?, mimeType?, id, sha256?}` |
//! | `audio` | `{url, mimeType?, id, sha256?, voice?}` |
//! | `document` | `{url, caption?, filename?, mimeType?, id, sha256?}` |
//! | `sticker` | `{url, mimeType?, id, sha256?, animated?}` |
//! | `location` | `{latitude, longitude, name?, address?, url?}` |
//! | `contacts` | `{contacts}` (Meta's contact cards) |
//! | `interactive` | `{type: "button_reply"\|"list_reply", id, title, description?}`, `{type: "nfm_reply", name?, body?, response}` (the flow's `response_json`, parsed) |
//! | `button` | `{text, payload}` |
//! | `reaction` | `{emoji, messageId, removed}`; an un-reaction has `emoji: ""` and `removed: true` |
//! | `order` | `{catalogId?, text?, productItems: [{productRetailerId, quantity, itemPrice, currency}]}` |
//! | `system` | `{type, body?, waId?, userId?, parentUserId?, identity?}` (`user_changed_number`, `user_changed_user_id`, `customer_identity_changed`, `request_welcome`) |
//! | `unsupported` | `{type, payload?}`: the type Meta named (or null) and its raw payload |
//! | `revoke` | `{originalMessageId}` |
//! | `edit` | `{originalMessageId, message: {type, content}}` (the new version, in these shapes) |
//!
//! Every shape may also carry `context` (`{messageId?, from?, forwarded?,
//! frequentlyForwarded?, referredProduct?}`: the message replied to, or a
//! forward), `referral` (click-to-WhatsApp ad or post), `errors`
//! (`[{code, title?, message?, details?}]`, e.g. why a message is
//! unsupported) and `groupId`. `url` is Meta's download URL when Meta gives
//! one (it still needs the WABA's token), else null: the media `id` then
//! fetches it. Meta's raw message object is kept as the message's payload.
use serde_json::{Map, Value, json};
use wagate_meta::webhook::{
    InboundMedia, InteractiveReply, Message, MessageContent, MessageContext, MessageEcho, Referral,
};

/// A message's stored `type` and `content`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadShape {
    pub kind: &'static str,
    pub content: Value,
}

/// The read shape of an inbound message, with its context, referral and errors.
pub fn inbound(msg: &Message) -> ReadShape {
    let (kind, mut content) = content_map(&msg.content, msg.raw_payload());
    let extra = &mut content;
    if let Some(ctx) = &msg.context {
        put(extra, "context", context(ctx));
    }
    if let Some(r) = &msg.referral {
        put(extra, "referral", referral(r));
    }
    if !msg.errors.is_empty() {
        put(extra, "errors", errors(&msg.errors));
    }
    if let Some(identity) = &msg.identity
        && kind == "system"
    {
        put(
            extra,
            "identity",
            json!({
                "acknowledged": identity.acknowledged,
                "createdTimestamp": identity.created_timestamp.as_ref().and_then(|t| t.as_i64()),
                "hash": identity.hash,
            }),
        );
    }
    if let Some(g) = msg.group_id.as_deref().filter(|g| !g.is_empty()) {
        put(extra, "groupId", json!(g));
    }
    ReadShape {
        kind,
        content: Value::Object(content),
    }
}

/// The read shape of a message the business sent from the WhatsApp Business
/// app (an SMB echo).
pub fn echo(e: &MessageEcho) -> ReadShape {
    let (kind, mut content) = content_map(&e.content, e.raw_payload());
    if let Some(ctx) = &e.context {
        put(&mut content, "context", context(ctx));
    }
    ReadShape {
        kind,
        content: Value::Object(content),
    }
}

/// A JSON object as a map (every shape here is one; anything else is wrapped).
fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => Map::from_iter([("value".to_owned(), other)]),
    }
}

/// Inserts a value that is not null / empty.
fn put(m: &mut Map<String, Value>, key: &str, v: Value) {
    let empty = match &v {
        Value::Null => true,
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    if !empty {
        m.insert(key.to_owned(), v);
    }
}

fn opt(m: &mut Map<String, Value>, key: &str, v: Option<impl Into<Value>>) {
    if let Some(v) = v {
        m.insert(key.to_owned(), v.into());
    }
}

/// The type-dependent part.
pub fn of_content(content: &MessageContent, raw_payload: Option<&Value>) -> ReadShape {
    let (kind, content) = content_map(content, raw_payload);
    ReadShape {
        kind,
        content: Value::Object(content),
    }
}

fn content_map(
    content: &MessageContent,
    raw_payload: Option<&Value>,
) -> (&'static str, Map<String, Value>) {
    match content {
        MessageContent::Text(t) => ("text", obj(json!({"body": t.body}))),
        MessageContent::Image(m) => ("image", media(m, true, false)),
        MessageContent::Video(m) => ("video", media(m, true, false)),
        MessageContent::Audio(m) => {
            let mut v = media(m, false, false);
            opt(&mut v, "voice", m.voice);
            ("audio", v)
        }
        MessageContent::Document(m) => ("document", media(m, true, true)),
        MessageContent::Sticker(m) => {
            let mut v = media(m, false, false);
            opt(&mut v, "animated", m.animated);
            ("sticker", v)
        }
        MessageContent::Location(l) => {
            let mut v = obj(json!({"latitude": l.latitude, "longitude": l.longitude}));
            let o = &mut v;
            opt(o, "name", l.name.clone());
            opt(o, "address", l.address.clone());
            opt(o, "url", l.url.clone());
            ("location", v)
        }
        MessageContent::Contacts(cards) => (
            "contacts",
            obj(
                json!({"contacts": serde_json::to_value(cards).unwrap_or(Value::Array(Vec::new()))}),
            ),
        ),
        MessageContent::Interactive(reply) => ("interactive", interactive(reply)),
        MessageContent::Button(b) => ("button", obj(json!({"text": b.text, "payload": b.payload}))),
        MessageContent::Reaction(r) => (
            "reaction",
            obj(json!({
                "emoji": r.emoji.clone().unwrap_or_default(),
                "messageId": r.message_id,
                "removed": r.is_removal(),
            })),
        ),
        MessageContent::Order(o) => {
            let items: Vec<Value> = o
                .product_items
                .iter()
                .map(|i| {
                    json!({
                        "productRetailerId": i.product_retailer_id,
                        "quantity": i.quantity,
                        "itemPrice": i.item_price,
                        "currency": i.currency,
                    })
                })
                .collect();
            let mut v = obj(json!({"productItems": items}));
            let m = &mut v;
            opt(m, "catalogId", o.catalog_id.clone());
            opt(m, "text", o.text.clone());
            ("order", v)
        }
        MessageContent::System(s) => {
            let mut v = obj(json!({"type": s.kind.as_ref().map(|k| k.as_str().to_owned())}));
            let m = &mut v;
            opt(m, "body", s.body.clone());
            opt(m, "waId", s.new_phone().map(str::to_owned));
            opt(m, "userId", s.new_user_id().map(str::to_owned));
            opt(
                m,
                "parentUserId",
                s.parent_user_id.clone().filter(|p| !p.is_empty()),
            );
            opt(m, "customer", s.customer.clone());
            ("system", v)
        }
        MessageContent::Unsupported(u) => (
            "unsupported",
            obj(json!({"type": u.as_ref().and_then(|u| u.kind.clone())})),
        ),
        MessageContent::Revoke(r) => (
            "revoke",
            obj(json!({"originalMessageId": r.original_message_id})),
        ),
        MessageContent::Edit(e) => {
            let mut v = obj(json!({"originalMessageId": e.original_message_id}));
            if let Some(m) = &e.message {
                let (inner_kind, mut inner) = content_map(&m.content, None);
                if let Some(ctx) = &m.context {
                    put(&mut inner, "context", context(ctx));
                }
                v.insert(
                    "message".into(),
                    json!({"type": inner_kind, "content": Value::Object(inner)}),
                );
            }
            ("edit", v)
        }
        MessageContent::RequestWelcome => ("system", obj(json!({"type": "request_welcome"}))),
        MessageContent::Other { kind, .. } => {
            let mut v = obj(json!({"type": kind}));
            opt(&mut v, "payload", raw_payload.cloned());
            ("unsupported", v)
        }
    }
}

fn media(m: &InboundMedia, caption: bool, filename: bool) -> Map<String, Value> {
    let mut v = obj(json!({"url": m.url, "id": m.id}));
    let o = &mut v;
    if caption {
        opt(o, "caption", m.caption.clone());
    }
    if filename {
        opt(o, "filename", m.filename.clone());
    }
    opt(o, "mimeType", m.mime_type.clone());
    opt(o, "sha256", m.sha256.clone());
    v
}

fn interactive(reply: &InteractiveReply) -> Map<String, Value> {
    match reply {
        InteractiveReply::ButtonReply(r) | InteractiveReply::ListReply(r) => {
            let kind = if matches!(reply, InteractiveReply::ButtonReply(_)) {
                "button_reply"
            } else {
                "list_reply"
            };
            let mut v = obj(json!({"type": kind, "id": r.id, "title": r.title}));
            opt(&mut v, "description", r.description.clone());
            v
        }
        InteractiveReply::NfmReply(n) => {
            // The flow's answers; kept as the string when it is not JSON.
            let response = n
                .response()
                .unwrap_or_else(|_| Value::String(n.response_json.clone()));
            let mut v = obj(json!({"type": "nfm_reply", "response": response}));
            opt(&mut v, "name", n.name.clone());
            opt(&mut v, "body", n.body.clone());
            v
        }
        // A reply type wagate does not model: Meta's object, which has `type`.
        InteractiveReply::Other(v) => obj(v.clone()),
    }
}

fn context(c: &MessageContext) -> Value {
    let mut m = Map::new();
    opt(&mut m, "messageId", c.id.clone());
    opt(&mut m, "from", c.from.clone());
    opt(&mut m, "forwarded", c.forwarded);
    opt(&mut m, "frequentlyForwarded", c.frequently_forwarded);
    if let Some(p) = &c.referred_product {
        let mut rp = Map::new();
        opt(&mut rp, "catalogId", p.catalog_id.clone());
        opt(&mut rp, "productRetailerId", p.product_retailer_id.clone());
        m.insert("referredProduct".into(), Value::Object(rp));
    }
    Value::Object(m)
}

fn referral(r: &Referral) -> Value {
    let mut m = Map::new();
    opt(&mut m, "sourceUrl", r.source_url.clone());
    opt(&mut m, "sourceId", r.source_id.clone());
    opt(&mut m, "sourceType", r.source_type.clone());
    opt(&mut m, "headline", r.headline.clone());
    opt(&mut m, "body", r.body.clone());
    opt(&mut m, "mediaType", r.media_type.clone());
    opt(&mut m, "imageUrl", r.image_url.clone());
    opt(&mut m, "videoUrl", r.video_url.clone());
    opt(&mut m, "thumbnailUrl", r.thumbnail_url.clone());
    opt(&mut m, "ctwaClid", r.ctwa_clid.clone());
    if let Some(w) = r.welcome_message.as_ref().and_then(|w| w.text.clone()) {
        m.insert("welcomeMessage".into(), json!({"text": w}));
    }
    Value::Object(m)
}

/// Meta's errors as `[{code, title?, message?, details?}]`.
pub fn errors(errors: &[wagate_meta::graph::ErrorBody]) -> Value {
    Value::Array(
        errors
            .iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("code".into(), json!(e.code));
                opt(&mut m, "title", e.title.clone());
                opt(&mut m, "message", e.message.clone());
                opt(&mut m, "details", e.details().map(str::to_owned));
                Value::Object(m)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(v: Value) -> Message {
        serde_json::from_value(v).expect("a message")
    }

    #[test]
    fn documented_shapes() {
        let t = inbound(&msg(
            json!({"from":"1","id":"w","type":"text","text":{"body":"hi"}}),
        ));
        assert_eq!(
            t,
            ReadShape {
                kind: "text",
                content: json!({"body": "hi"})
            }
        );

        let img = inbound(&msg(json!({"from":"1","id":"w","type":"image",
            "image":{"id":"77","mime_type":"image/jpeg","sha256":"abc","caption":"cat"}})));
        assert_eq!(img.kind, "image");
        assert_eq!(
            img.content,
            json!({"url": null, "id": "77", "caption": "cat", "mimeType": "image/jpeg", "sha256": "abc"})
        );

        let doc = inbound(&msg(json!({"from":"1","id":"w","type":"document",
            "document":{"id":"9","filename":"a.pdf","url":"https://lookaside.example/x"}})));
        assert_eq!(
            doc.content,
            json!({"url": "https://lookaside.example/x", "id": "9", "filename": "a.pdf"})
        );

        let unreact = inbound(&msg(json!({"from":"1","id":"w","type":"reaction",
            "reaction":{"message_id":"wamid.X"}})));
        assert_eq!(
            unreact.content,
            json!({"emoji": "", "messageId": "wamid.X", "removed": true})
        );

        let button = inbound(&msg(json!({"from":"1","id":"w","type":"interactive",
            "interactive":{"type":"button_reply","button_reply":{"id":"yes","title":"Yes"}},
            "context":{"from":"155","id":"wamid.Q"}})));
        assert_eq!(
            button.content,
            json!({"type": "button_reply", "id": "yes", "title": "Yes",
                   "context": {"messageId": "wamid.Q", "from": "155"}})
        );

        let weird = inbound(&msg(
            json!({"from":"1","id":"w","type":"poll","poll":{"q":1}}),
        ));
        assert_eq!(weird.kind, "unsupported");
        assert_eq!(weird.content, json!({"type": "poll", "payload": {"q": 1}}));
    }

    #[test]
    fn flows_parse_their_response_and_edits_nest_a_shape() {
        let flow = inbound(&msg(json!({"from":"1","id":"w","type":"interactive",
            "interactive":{"type":"nfm_reply","nfm_reply":{"name":"flow","body":"Sent",
            "response_json":"{\"flow_token\":\"t\",\"a\":1}"}}})));
        assert_eq!(
            flow.content,
            json!({"type": "nfm_reply", "name": "flow", "body": "Sent",
                   "response": {"flow_token": "t", "a": 1}})
        );
        let edit = inbound(&msg(json!({"from":"1","id":"w","type":"edit",
            "edit":{"original_message_id":"wamid.O","message":{"type":"text","text":{"body":"new"}}}})));
        assert_eq!(
            edit.content,
            json!({"originalMessageId": "wamid.O",
                   "message": {"type": "text", "content": {"body": "new"}}})
        );
    }
}
