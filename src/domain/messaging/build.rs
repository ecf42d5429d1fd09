//! From the flat send body to the exact Graph request and the stored read
//! shape, validating everything before anything is queued. Errors name the
//! field as the client sent it (`text`, `image.link`, `messages[3].to`).
use serde_json::{Map, Value, json};
use wagate_meta::contact::ContactCard;
use wagate_meta::graph::messages::interactive::{ButtonsAction, CtaUrlAction, ListAction};
use wagate_meta::graph::messages::{
    Interactive, Location, MediaObject, MessagePayload, Recipient as GraphRecipient, SendMessage,
    Template, Text,
};

use super::decode::typed;
use crate::domain::identity::Recipient;
use crate::domain::{DomainError, DomainResult, validate};

pub const TEXT_MAX: usize = 4096;
pub const CAPTION_MAX: usize = 1024;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MediaIn {
    pub id: Option<String>,
    pub link: Option<String>,
    pub caption: Option<String>,
    pub filename: Option<String>,
    pub voice: Option<bool>,
}

/// Coordinates are optional here so that a missing one is refused, not
/// sent as 0 (proto3 `optional double`; REST omits or nulls them).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LocationIn {
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub name: Option<String>,
    pub address: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TemplateIn {
    pub name: String,
    pub language: Option<Value>,
    pub components: Option<Value>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ReactionIn {
    pub message_id: String,
    pub emoji: String,
}

/// A send request as the client gave it, before validation.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct OutboundInput {
    pub to: String,
    /// The `type`, if the client named one.
    pub kind: Option<String>,
    pub text: Option<Value>,
    pub image: Option<MediaIn>,
    pub video: Option<MediaIn>,
    pub audio: Option<MediaIn>,
    pub document: Option<MediaIn>,
    pub sticker: Option<MediaIn>,
    pub location: Option<LocationIn>,
    pub contacts: Option<Value>,
    pub interactive: Option<Value>,
    pub template: Option<TemplateIn>,
    pub reaction: Option<ReactionIn>,
    pub reply_to: Option<String>,
    pub send_at: Option<chrono::DateTime<chrono::Utc>>,
    pub dry_run: bool,
    pub phone_id: Option<String>,
}

/// A validated message: what goes to Meta and what is stored.
#[derive(Debug, Clone)]
pub struct Built {
    pub recipient: Recipient,
    pub kind: &'static str,
    /// The Graph request, without reply context and callback data (added at
    /// send time, when the reply target's wamid and our id are known).
    pub graph: SendMessage,
    /// The platform guide's read shape.
    pub content: Value,
}

const TYPES: [&str; 11] = [
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "template",
    "reaction",
];

/// `prefix` is prepended to field names (`messages[3].`) for bulk items.
pub fn build(input: &OutboundInput, prefix: &str) -> DomainResult<Built> {
    let field = |name: &str| format!("{prefix}{name}");
    let invalid = |name: &str, msg: String| DomainError::validation(&field(name), msg);

    storable(input, prefix)?;
    let recipient =
        Recipient::parse(&input.to).map_err(|m| invalid("to", m.replace("to", &field("to"))))?;
    let present: Vec<&str> = TYPES
        .iter()
        .copied()
        .filter(|t| match *t {
            "text" => input.text.is_some(),
            "image" => input.image.is_some(),
            "video" => input.video.is_some(),
            "audio" => input.audio.is_some(),
            "document" => input.document.is_some(),
            "sticker" => input.sticker.is_some(),
            "location" => input.location.is_some(),
            "contacts" => input.contacts.is_some(),
            "interactive" => input.interactive.is_some(),
            "template" => input.template.is_some(),
            "reaction" => input.reaction.is_some(),
            _ => false,
        })
        .collect();
    let kind: &'static str = match input.kind.as_deref() {
        Some(k) => TYPES.iter().copied().find(|t| *t == k).ok_or_else(|| {
            invalid(
                "type",
                format!("{} must be one of: {}", field("type"), TYPES.join(", ")),
            )
        })?,
        None => match present.as_slice() {
            [one] => one,
            [] => {
                return Err(invalid(
                    "type",
                    format!("{} is required (e.g. \"text\")", field("type")),
                ));
            }
            _ => {
                return Err(invalid(
                    "type",
                    format!(
                        "{} is required when several payloads are given",
                        field("type")
                    ),
                ));
            }
        },
    };
    if let Some(other) = present.iter().find(|t| **t != kind) {
        return Err(invalid(
            other,
            format!("{} does not belong in a {kind} message", field(other)),
        ));
    }

    let (payload, content) = match kind {
        "text" => text(input.text.as_ref(), &field("text"))?,
        "image" | "video" | "audio" | "document" | "sticker" => {
            let media = match kind {
                "image" => &input.image,
                "video" => &input.video,
                "audio" => &input.audio,
                "document" => &input.document,
                _ => &input.sticker,
            };
            media_payload(kind, media.as_ref(), &field(kind))?
        }
        "location" => location(input.location.as_ref(), &field("location"))?,
        "contacts" => contacts(input.contacts.as_ref(), &field("contacts"))?,
        "interactive" => interactive(input.interactive.as_ref(), &field("interactive"))?,
        "template" => template(input.template.as_ref(), &field("template"))?,
        _ => reaction(input.reaction.as_ref(), &field("reaction"))?,
    };
    let graph_recipient = match &recipient {
        Recipient::Phone { to, .. } => GraphRecipient::To(to.clone()),
        Recipient::Bsuid(b) => GraphRecipient::UserId(b.clone()),
    };
    Ok(Built {
        recipient,
        kind,
        graph: SendMessage::new(graph_recipient, payload),
        content,
    })
}

/// Every string the send carries, by the name the client gave it: each is
/// stored (the message, its Graph request), and PostgreSQL refuses NUL
/// characters. Checked up front so the client learns which field, and so
/// one bad message never fails a write it shares with others (bulk, the
/// coalescing writer). Destructured so a new field cannot be forgotten.
fn storable(input: &OutboundInput, prefix: &str) -> DomainResult<()> {
    let OutboundInput {
        to,
        kind,
        text,
        image,
        video,
        audio,
        document,
        sticker,
        location,
        contacts,
        interactive,
        template,
        reaction,
        reply_to,
        send_at: _,
        dry_run: _,
        phone_id,
    } = input;
    // Names are (payload, field): spelled out only for an error.
    let mut strings: Vec<((&str, &str), Option<&String>)> = vec![
        (("to", ""), Some(to)),
        (("type", ""), kind.as_ref()),
        (("replyTo", ""), reply_to.as_ref()),
        (("phoneId", ""), phone_id.as_ref()),
    ];
    for (name, media) in [
        ("image", image),
        ("video", video),
        ("audio", audio),
        ("document", document),
        ("sticker", sticker),
    ] {
        if let Some(MediaIn {
            id,
            link,
            caption,
            filename,
            voice: _,
        }) = media
        {
            strings.push(((name, "id"), id.as_ref()));
            strings.push(((name, "link"), link.as_ref()));
            strings.push(((name, "caption"), caption.as_ref()));
            strings.push(((name, "filename"), filename.as_ref()));
        }
    }
    if let Some(LocationIn {
        latitude: _,
        longitude: _,
        name,
        address,
    }) = location
    {
        strings.push((("location", "name"), name.as_ref()));
        strings.push((("location", "address"), address.as_ref()));
    }
    let mut json: Vec<((&str, &str), Option<&Value>)> = vec![
        (("text", ""), text.as_ref()),
        (("contacts", ""), contacts.as_ref()),
        (("interactive", ""), interactive.as_ref()),
    ];
    if let Some(TemplateIn {
        name,
        language,
        components,
    }) = template
    {
        strings.push((("template", "name"), Some(name)));
        json.push((("template", "language"), language.as_ref()));
        json.push((("template", "components"), components.as_ref()));
    }
    if let Some(ReactionIn { message_id, emoji }) = reaction {
        strings.push((("reaction", "messageId"), Some(message_id)));
        strings.push((("reaction", "emoji"), Some(emoji)));
    }
    let spell = |(payload, name): (&str, &str)| match name {
        "" => format!("{prefix}{payload}"),
        _ => format!("{prefix}{payload}.{name}"),
    };
    for (name, value) in strings {
        if let Some(v) = value.filter(|v| v.contains('\0')) {
            validate::no_nul(&spell(name), v)?;
        }
    }
    for (name, value) in json {
        if let Some(v) = value {
            validate::no_nul_in_json(&spell(name), v)?;
        }
    }
    Ok(())
}

fn missing(field: &str) -> DomainError {
    DomainError::validation(field, format!("{field} is required for this type"))
}

fn check_len(field: &str, value: &str, max: usize) -> DomainResult<()> {
    if value.chars().count() > max {
        return Err(DomainError::validation(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    Ok(())
}

fn text(v: Option<&Value>, field: &str) -> DomainResult<(MessagePayload, Value)> {
    let (body, preview) = match v {
        Some(Value::String(s)) => (s.clone(), None),
        Some(Value::Object(o)) => {
            let body = o
                .get("body")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    DomainError::validation(
                        &format!("{field}.body"),
                        format!("{field}.body is required"),
                    )
                })?
                .to_owned();
            for key in o.keys() {
                if !["body", "previewUrl", "preview_url"].contains(&key.as_str()) {
                    return Err(DomainError::validation(
                        &format!("{field}.{key}"),
                        format!("{field}.{key} is not a text field"),
                    ));
                }
            }
            let preview = match o.get("previewUrl").or_else(|| o.get("preview_url")) {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(_) => {
                    return Err(DomainError::validation(
                        &format!("{field}.previewUrl"),
                        format!("{field}.previewUrl must be true or false"),
                    ));
                }
            };
            (body, preview)
        }
        None => return Err(missing(field)),
        Some(_) => {
            return Err(DomainError::validation(
                field,
                format!("{field} must be a string or {{\"body\", \"previewUrl\"}}"),
            ));
        }
    };
    if body.trim().is_empty() {
        return Err(DomainError::validation(
            field,
            format!("{field} must not be empty"),
        ));
    }
    check_len(field, &body, TEXT_MAX)?;
    let content = json!({ "body": body });
    Ok((
        MessagePayload::Text {
            text: Text {
                body,
                preview_url: preview,
            },
        },
        content,
    ))
}

fn https_link(field: &str, link: &str) -> DomainResult<()> {
    match url::Url::parse(link) {
        Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => Ok(()),
        _ => Err(DomainError::validation(
            field,
            format!("{field} must be an absolute https URL"),
        )),
    }
}

fn media_payload(
    kind: &'static str,
    m: Option<&MediaIn>,
    field: &str,
) -> DomainResult<(MessagePayload, Value)> {
    let m = m.ok_or_else(|| missing(field))?;
    let id = m.id.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let link = m.link.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let mut obj = match (id, link) {
        (Some(_), Some(_)) => {
            return Err(DomainError::validation(
                field,
                format!("{field}: give either id or link, not both"),
            ));
        }
        (None, None) => {
            return Err(DomainError::validation(
                &format!("{field}.id"),
                format!(
                    "{field}.id (an uploaded media id) or {field}.link (an https URL) is required"
                ),
            ));
        }
        (Some(id), None) => MediaObject::id(id),
        (None, Some(link)) => {
            https_link(&format!("{field}.link"), link)?;
            MediaObject::link(link)
        }
    };
    if let Some(c) = m.caption.as_deref().filter(|c| !c.is_empty()) {
        if !matches!(kind, "image" | "video" | "document") {
            return Err(DomainError::validation(
                &format!("{field}.caption"),
                format!("{field}.caption is not allowed on {kind}"),
            ));
        }
        check_len(&format!("{field}.caption"), c, CAPTION_MAX)?;
        obj = obj.caption(c);
    }
    if let Some(f) = m.filename.as_deref().filter(|f| !f.is_empty()) {
        if kind != "document" {
            return Err(DomainError::validation(
                &format!("{field}.filename"),
                format!("{field}.filename is only for documents"),
            ));
        }
        check_len(&format!("{field}.filename"), f, 240)?;
        obj = obj.filename(f);
    }
    if let Some(v) = m.voice {
        if kind != "audio" {
            return Err(DomainError::validation(
                &format!("{field}.voice"),
                format!("{field}.voice is only for audio"),
            ));
        }
        obj = obj.voice(v);
    }
    let mut content = Map::new();
    content.insert("url".into(), link.map_or(Value::Null, |l| json!(l)));
    if let Some(id) = id {
        content.insert("id".into(), json!(id));
    }
    if let Some(c) = &obj.caption {
        content.insert("caption".into(), json!(c));
    }
    if let Some(f) = &obj.filename {
        content.insert("filename".into(), json!(f));
    }
    if let Some(v) = obj.voice {
        content.insert("voice".into(), json!(v));
    }
    let payload = match kind {
        "image" => MessagePayload::image(obj),
        "video" => MessagePayload::video(obj),
        "audio" => MessagePayload::audio(obj),
        "document" => MessagePayload::document(obj),
        _ => MessagePayload::sticker(obj),
    };
    Ok((payload, Value::Object(content)))
}

fn location(l: Option<&LocationIn>, field: &str) -> DomainResult<(MessagePayload, Value)> {
    let l = l.ok_or_else(|| missing(field))?;
    let coordinate = |name: &str, value: Option<f64>| {
        value.ok_or_else(|| {
            DomainError::validation(
                &format!("{field}.{name}"),
                format!("{field}.{name} is required"),
            )
        })
    };
    let latitude = coordinate("latitude", l.latitude)?;
    let longitude = coordinate("longitude", l.longitude)?;
    if !(-90.0..=90.0).contains(&latitude) {
        return Err(DomainError::validation(
            &format!("{field}.latitude"),
            format!("{field}.latitude must be between -90 and 90"),
        ));
    }
    if !(-180.0..=180.0).contains(&longitude) {
        return Err(DomainError::validation(
            &format!("{field}.longitude"),
            format!("{field}.longitude must be between -180 and 180"),
        ));
    }
    let loc = Location {
        latitude,
        longitude,
        name: l.name.clone().filter(|s| !s.is_empty()),
        address: l.address.clone().filter(|s| !s.is_empty()),
    };
    let content = json!({"latitude": loc.latitude, "longitude": loc.longitude, "name": loc.name, "address": loc.address});
    Ok((MessagePayload::location(loc), content))
}

fn contacts(v: Option<&Value>, field: &str) -> DomainResult<(MessagePayload, Value)> {
    let v = v.ok_or_else(|| missing(field))?;
    let Value::Array(items) = v else {
        return Err(DomainError::validation(
            field,
            format!("{field} must be an array of contact cards"),
        ));
    };
    if items.is_empty() {
        return Err(DomainError::validation(
            field,
            format!("{field} must not be empty"),
        ));
    }
    let cards = items
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let f = format!("{field}[{i}]");
            if c.get("name")
                .and_then(|n| n.get("formatted_name"))
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(DomainError::validation(
                    &format!("{f}.name.formatted_name"),
                    format!("{f}.name.formatted_name is required"),
                ));
            }
            typed::<ContactCard>(c, &f)
        })
        .collect::<DomainResult<Vec<_>>>()?;
    Ok((MessagePayload::contacts(cards), json!({ "contacts": v })))
}

fn interactive(v: Option<&Value>, field: &str) -> DomainResult<(MessagePayload, Value)> {
    let v = v.ok_or_else(|| missing(field))?;
    let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
    let sub = |name: &str| format!("{field}.{name}");
    let body_max = match kind {
        "button" | "cta_url" => 1024,
        "list" => 4096,
        "flow" | "location_request_message" => 1024,
        "" => {
            return Err(DomainError::validation(
                &sub("type"),
                format!("{} is required: button, list or cta_url", sub("type")),
            ));
        }
        other => {
            return Err(DomainError::validation(
                &sub("type"),
                format!(
                    "{} {other:?} is not supported: use button, list, cta_url, flow or location_request_message",
                    sub("type")
                ),
            ));
        }
    };
    match v
        .get("body")
        .and_then(|b| b.get("text"))
        .and_then(Value::as_str)
    {
        Some(t) if !t.trim().is_empty() => check_len(&sub("body.text"), t, body_max)?,
        _ if kind == "list" || kind == "button" || kind == "cta_url" => {
            return Err(DomainError::validation(
                &sub("body.text"),
                format!("{} is required", sub("body.text")),
            ));
        }
        _ => {}
    }
    if let Some(t) = v
        .get("footer")
        .and_then(|f| f.get("text"))
        .and_then(Value::as_str)
    {
        check_len(&sub("footer.text"), t, 60)?;
    }
    if let Some(h) = v.get("header") {
        if kind == "list" && h.get("type").and_then(Value::as_str) != Some("text") {
            return Err(DomainError::validation(
                &sub("header"),
                format!("{} of a list can only be text", sub("header")),
            ));
        }
        if let Some(t) = h.get("text").and_then(Value::as_str) {
            check_len(&sub("header.text"), t, 60)?;
        }
    }
    match kind {
        "button" => {
            let buttons = v
                .get("action")
                .and_then(|a| a.get("buttons"))
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    DomainError::validation(
                        &sub("action.buttons"),
                        format!("{} is required", sub("action.buttons")),
                    )
                })?;
            if buttons.is_empty() || buttons.len() > 3 {
                return Err(DomainError::validation(
                    &sub("action.buttons"),
                    format!("{} must have 1 to 3 buttons", sub("action.buttons")),
                ));
            }
            let mut titles = Vec::new();
            for (i, b) in buttons.iter().enumerate() {
                let title = b
                    .get("reply")
                    .and_then(|r| r.get("title"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let f = sub(&format!("action.buttons[{i}].reply.title"));
                if title.is_empty() {
                    return Err(DomainError::validation(&f, format!("{f} is required")));
                }
                check_len(&f, title, 20)?;
                if titles.contains(&title) {
                    return Err(DomainError::validation(&f, format!("{f} must be unique")));
                }
                titles.push(title);
                let id = b
                    .get("reply")
                    .and_then(|r| r.get("id"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let fid = sub(&format!("action.buttons[{i}].reply.id"));
                if id.is_empty() {
                    return Err(DomainError::validation(&fid, format!("{fid} is required")));
                }
                check_len(&fid, id, 256)?;
            }
        }
        "list" => {
            let action = v.get("action").ok_or_else(|| {
                DomainError::validation(&sub("action"), format!("{} is required", sub("action")))
            })?;
            let label = action
                .get("button")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if label.is_empty() {
                return Err(DomainError::validation(
                    &sub("action.button"),
                    format!("{} is required", sub("action.button")),
                ));
            }
            check_len(&sub("action.button"), label, 20)?;
            let sections = action
                .get("sections")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    DomainError::validation(
                        &sub("action.sections"),
                        format!("{} is required", sub("action.sections")),
                    )
                })?;
            if sections.is_empty() || sections.len() > 10 {
                return Err(DomainError::validation(
                    &sub("action.sections"),
                    format!("{} must have 1 to 10 sections", sub("action.sections")),
                ));
            }
            let mut rows = 0;
            for (i, s) in sections.iter().enumerate() {
                if let Some(t) = s.get("title").and_then(Value::as_str) {
                    check_len(&sub(&format!("action.sections[{i}].title")), t, 24)?;
                } else if sections.len() > 1 {
                    let f = sub(&format!("action.sections[{i}].title"));
                    return Err(DomainError::validation(
                        &f,
                        format!("{f} is required when there are several sections"),
                    ));
                }
                let section_rows = s
                    .get("rows")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                for (j, r) in section_rows.iter().enumerate() {
                    let f = sub(&format!("action.sections[{i}].rows[{j}]"));
                    let title = r.get("title").and_then(Value::as_str).unwrap_or_default();
                    if title.is_empty() {
                        return Err(DomainError::validation(
                            &format!("{f}.title"),
                            format!("{f}.title is required"),
                        ));
                    }
                    check_len(&format!("{f}.title"), title, 24)?;
                    if let Some(d) = r.get("description").and_then(Value::as_str) {
                        check_len(&format!("{f}.description"), d, 72)?;
                    }
                    check_len(
                        &format!("{f}.id"),
                        r.get("id").and_then(Value::as_str).unwrap_or_default(),
                        200,
                    )?;
                }
                rows += section_rows.len();
            }
            if rows == 0 || rows > 10 {
                return Err(DomainError::validation(
                    &sub("action.sections"),
                    format!("{} must have 1 to 10 rows in all", sub("action.sections")),
                ));
            }
        }
        "cta_url" => {
            let p = v.get("action").and_then(|a| a.get("parameters"));
            let text = p
                .and_then(|p| p.get("display_text"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if text.is_empty() {
                let f = sub("action.parameters.display_text");
                return Err(DomainError::validation(&f, format!("{f} is required")));
            }
            check_len(&sub("action.parameters.display_text"), text, 20)?;
            let url = p
                .and_then(|p| p.get("url"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            https_link(&sub("action.parameters.url"), url)?;
        }
        _ => {}
    }
    // The action on its own first: inside the whole object serde cannot
    // tell where an error is (the action sits in a flattened enum).
    if let Some(action) = v.get("action") {
        let at = sub("action");
        match kind {
            "button" => drop(typed::<ButtonsAction>(action, &at)?),
            "list" => drop(typed::<ListAction>(action, &at)?),
            "cta_url" => drop(typed::<CtaUrlAction>(action, &at)?),
            _ => {}
        }
    }
    let parsed: Interactive = typed(v, field)?;
    Ok((MessagePayload::interactive(parsed), v.clone()))
}

fn template(t: Option<&TemplateIn>, field: &str) -> DomainResult<(MessagePayload, Value)> {
    let t = t.ok_or_else(|| missing(field))?;
    let name = t.name.trim();
    if name.is_empty() {
        return Err(DomainError::validation(
            &format!("{field}.name"),
            format!("{field}.name is required"),
        ));
    }
    if name.len() > 512
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(DomainError::validation(
            &format!("{field}.name"),
            format!("{field}.name must be lowercase letters, digits and _"),
        ));
    }
    let code = match &t.language {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    };
    if code.trim().is_empty() {
        return Err(DomainError::validation(
            &format!("{field}.language"),
            format!("{field}.language is required (e.g. \"en_US\")"),
        ));
    }
    let mut tpl = Template::new(name, code.trim());
    if let Some(c) = &t.components {
        let Value::Array(items) = c else {
            return Err(DomainError::validation(
                &format!("{field}.components"),
                format!("{field}.components must be an array"),
            ));
        };
        for (i, item) in items.iter().enumerate() {
            tpl.components
                .push(typed(item, &format!("{field}.components[{i}]"))?);
        }
    }
    let content = json!({"name": tpl.name, "language": tpl.language.code, "components": t.components.clone().unwrap_or(json!([]))});
    Ok((MessagePayload::template(tpl), content))
}

fn reaction(r: Option<&ReactionIn>, field: &str) -> DomainResult<(MessagePayload, Value)> {
    let r = r.ok_or_else(|| missing(field))?;
    if r.message_id.trim().is_empty() {
        return Err(DomainError::validation(
            &format!("{field}.messageId"),
            format!("{field}.messageId is required"),
        ));
    }
    if r.emoji.chars().count() > 10 {
        return Err(DomainError::validation(
            &format!("{field}.emoji"),
            format!("{field}.emoji must be one emoji (or \"\" to remove)"),
        ));
    }
    let content = json!({"emoji": r.emoji, "messageId": r.message_id});
    Ok((
        MessagePayload::reaction(r.message_id.trim(), r.emoji.clone()),
        content,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(v: Value) -> OutboundInput {
        let mut i = OutboundInput {
            to: v["to"].as_str().unwrap_or("5491155551234").to_owned(),
            kind: v["type"].as_str().map(str::to_owned),
            ..Default::default()
        };
        i.text = v.get("text").cloned();
        i.interactive = v.get("interactive").cloned();
        i
    }

    fn err_field(r: DomainResult<Built>) -> String {
        match r {
            Err(DomainError::Validation { field, .. }) => field,
            Err(e) => panic!("not a validation error: {e}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn the_platform_guide_body_builds_the_graph_request() {
        let b = build(
            &input(json!({"type": "text", "to": "5491155551234", "text": "Hello!"})),
            "",
        )
        .expect("valid");
        assert_eq!(b.kind, "text");
        assert_eq!(b.content, json!({"body": "Hello!"}));
        assert_eq!(
            serde_json::to_value(&b.graph).expect("json"),
            json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "5491155551234", "type": "text", "text": {"body": "Hello!"}})
        );
    }

    #[test]
    fn bsuids_go_to_meta_as_recipient() {
        let b = build(&input(json!({"to": "US.13491208655302741918", "text": {"body": "Hi", "previewUrl": true}})), "").expect("valid");
        let g = serde_json::to_value(&b.graph).expect("json");
        assert_eq!(g["recipient"], "US.13491208655302741918");
        assert!(g.get("to").is_none());
        assert_eq!(g["text"]["preview_url"], true);
    }

    #[test]
    fn limits_and_field_names() {
        assert_eq!(
            err_field(build(&input(json!({"text": "x".repeat(4097)})), "")),
            "text"
        );
        assert_eq!(
            err_field(build(
                &input(json!({"text": "hi", "to": ""})),
                "messages[2]."
            )),
            "messages[2].to"
        );
        assert_eq!(
            err_field(build(&input(json!({"type": "image", "text": "hi"})), "")),
            "text"
        );
        assert_eq!(err_field(build(&input(json!({"type": "fax"})), "")), "type");
        let four = json!({"type": "button", "body": {"text": "Pick"}, "action": {"buttons": [
            {"type": "reply", "reply": {"id": "1", "title": "a"}}, {"type": "reply", "reply": {"id": "2", "title": "b"}},
            {"type": "reply", "reply": {"id": "3", "title": "c"}}, {"type": "reply", "reply": {"id": "4", "title": "d"}}]}});
        assert_eq!(
            err_field(build(&input(json!({"interactive": four})), "")),
            "interactive.action.buttons"
        );
        let rows: Vec<Value> = (0..11)
            .map(|i| json!({"id": format!("r{i}"), "title": format!("Row {i}")}))
            .collect();
        let list = json!({"type": "list", "body": {"text": "Pick"}, "action": {"button": "Open", "sections": [{"title": "All", "rows": rows}]}});
        assert_eq!(
            err_field(build(&input(json!({"interactive": list})), "")),
            "interactive.action.sections"
        );
    }

    #[test]
    fn media_by_id_or_link_never_both() {
        let mut i = OutboundInput {
            to: "16505551234".into(),
            image: Some(MediaIn {
                id: Some("1479537139650973".into()),
                link: Some("https://example.com/a.jpg".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(err_field(build(&i, "")), "image");
        i.image = Some(MediaIn {
            link: Some("https://example.com/a.jpg".into()),
            caption: Some("A".into()),
            ..Default::default()
        });
        let b = build(&i, "").expect("valid");
        assert_eq!(
            b.content,
            json!({"url": "https://example.com/a.jpg", "caption": "A"})
        );
        i.image = Some(MediaIn::default());
        assert_eq!(err_field(build(&i, "")), "image.id");
    }

    #[test]
    fn templates_need_a_name_and_a_language() {
        let mut i = OutboundInput {
            to: "16505551234".into(),
            template: Some(TemplateIn {
                name: "order_confirmation".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(err_field(build(&i, "")), "template.language");
        i.template = Some(TemplateIn {
            name: "".into(),
            language: Some(json!("en_US")),
            ..Default::default()
        });
        assert_eq!(err_field(build(&i, "")), "template.name");
        i.template = Some(TemplateIn {
            name: "order_confirmation".into(),
            language: Some(json!({"code": "en_US"})),
            components: Some(
                json!([{"type": "body", "parameters": [{"type": "text", "parameter_name": "first_name", "text": "Jessica"}]}]),
            ),
        });
        let g = serde_json::to_value(build(&i, "").expect("valid").graph).expect("json");
        assert_eq!(g["template"]["language"]["code"], "en_US");
        assert_eq!(
            g["template"]["components"][0]["parameters"][0]["parameter_name"],
            "first_name"
        );
    }
}
