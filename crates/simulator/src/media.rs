//! Media: multipart upload (`POST /{phone}/media`), URL lookup (`GET /{media-id}`), download
//! of that URL with a bearer token, delete.
use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use chrono::Utc;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::errors::GraphError;
use crate::graph_routes::{Ctx, GraphResult, Note, Reply, ok_json, success};
use crate::state::Media;
use crate::{Simulator, ids};

/// One part of a multipart body.
#[derive(Debug)]
pub(crate) struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Bytes,
}

fn boundary(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    if !ct.to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    ct.split(';').find_map(|p| {
        let p = p.trim();
        p.strip_prefix("boundary=")
            .map(|b| b.trim_matches('"').to_string())
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

fn disposition_param(line: &str, key: &str) -> Option<String> {
    line.split(';').find_map(|p| {
        let p = p.trim();
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// A small multipart/form-data parser (RFC 7578), enough for Graph uploads.
pub(crate) fn parse_multipart(headers: &HeaderMap, body: &Bytes) -> Option<Vec<Part>> {
    let b = boundary(headers)?;
    let delim = format!("--{b}");
    let delim = delim.as_bytes();
    let mut parts = Vec::new();
    let mut pos = find(body, delim, 0)? + delim.len();
    loop {
        if body.get(pos..pos + 2) == Some(b"--") {
            break;
        }
        // Skip CRLF after the delimiter.
        if body.get(pos..pos + 2) == Some(b"\r\n") {
            pos += 2;
        }
        let head_end = find(body, b"\r\n\r\n", pos)?;
        let head = String::from_utf8_lossy(&body[pos..head_end]).to_string();
        let data_start = head_end + 4;
        let next = find(body, delim, data_start)?;
        let data_end = if next >= 2 && &body[next - 2..next] == b"\r\n" {
            next - 2
        } else {
            next
        };
        let mut name = String::new();
        let mut filename = None;
        let mut content_type = None;
        for line in head.split("\r\n") {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("content-disposition:") {
                name = disposition_param(line, "name").unwrap_or_default();
                filename = disposition_param(line, "filename");
            } else if lower.starts_with("content-type:") {
                content_type = line.split_once(':').map(|x| x.1.trim().to_string());
            }
        }
        parts.push(Part {
            name,
            filename,
            content_type,
            data: body.slice(data_start..data_end),
        });
        pos = next + delim.len();
    }
    Some(parts)
}

/// What the request log records of a multipart body: its parts, without file contents.
pub(crate) fn multipart_summary(headers: &HeaderMap, body: &Bytes) -> Option<Value> {
    let parts = parse_multipart(headers, body)?;
    let mut m = serde_json::Map::new();
    for p in parts {
        let v = if p.filename.is_some() || p.data.len() > 256 {
            json!({"filename": p.filename, "contentType": p.content_type, "size": p.data.len()})
        } else {
            json!(String::from_utf8_lossy(&p.data))
        };
        m.insert(p.name, v);
    }
    Some(Value::Object(m))
}

/// Stores media; returns its id.
pub(crate) fn store(
    sim: &Simulator,
    phone: Option<&str>,
    data: Bytes,
    mime: &str,
    filename: Option<String>,
) -> String {
    let sha = hex::encode(Sha256::digest(&data));
    let mut world = sim.shared.world.lock();
    let id = world.fresh_id();
    world.media.insert(
        id.clone(),
        Media {
            id: id.clone(),
            phone_number_id: phone.map(str::to_string),
            bytes: data,
            mime_type: mime.to_string(),
            sha256: sha,
            filename,
            url_hash: format!("AT{}", ids::random_alnum(40)),
        },
    );
    id
}

/// The download URL of stored media, as Meta's lookaside URL on this server.
pub(crate) fn url_of(base_url: &str, m: &Media) -> String {
    format!(
        "{base_url}/whatsapp_business/attachments/?mid={}&ext={}&hash={}",
        m.id,
        Utc::now().timestamp() + 300,
        m.url_hash
    )
}

pub(crate) fn upload(sim: &Simulator, ctx: &Ctx, phone: &str, note: &mut Note) -> GraphResult {
    note.kind = "media.upload".into();
    note.phone_number_id = Some(phone.to_string());
    {
        let cfg = sim.shared.cfg.read().clone();
        if sim
            .shared
            .world
            .lock()
            .phone_or_create(phone, &cfg)
            .is_none()
        {
            return Err(GraphError::unknown_object("post", phone));
        }
    }
    let Some(parts) = parse_multipart(&ctx.headers, &ctx.body) else {
        return Err(GraphError::param("The parameter file is required."));
    };
    let field = |n: &str| {
        parts
            .iter()
            .find(|p| p.name == n)
            .map(|p| String::from_utf8_lossy(&p.data).to_string())
    };
    if field("messaging_product").as_deref() != Some("whatsapp") {
        return Err(GraphError::param(
            "The parameter messaging_product is required.",
        ));
    }
    let Some(file) = parts.iter().find(|p| p.name == "file") else {
        return Err(GraphError::param("The parameter file is required."));
    };
    let mime = field("type")
        .or_else(|| file.content_type.clone())
        .unwrap_or_else(|| "application/octet-stream".into());
    let id = store(
        sim,
        Some(phone),
        file.data.clone(),
        &mime,
        file.filename.clone(),
    );
    ok_json(json!({"id": id}))
}

pub(crate) fn get_url(sim: &Simulator, ctx: &Ctx, id: &str, note: &mut Note) -> GraphResult {
    note.kind = "media.get".into();
    let world = sim.shared.world.lock();
    let m = world
        .media
        .get(id)
        .ok_or_else(|| GraphError::unknown_object("get", id))?;
    if let Some(p) = ctx.query.get("phone_number_id")
        && m.phone_number_id.as_deref().is_some_and(|mp| mp != p)
    {
        return Err(GraphError::invalid_parameter(
            "The media was not uploaded for this phone number.",
        ));
    }
    note.phone_number_id = m.phone_number_id.clone();
    ok_json(json!({
        "url": url_of(&ctx.base_url, m),
        "mime_type": m.mime_type,
        "sha256": m.sha256,
        "file_size": m.bytes.len(),
        "id": m.id,
        "messaging_product": "whatsapp",
    }))
}

pub(crate) fn download(sim: &Simulator, ctx: &Ctx, note: &mut Note) -> GraphResult {
    if ctx.token.is_none() {
        return Err(GraphError::token_missing());
    }
    let mid = ctx.query.get("mid").cloned().unwrap_or_default();
    let world = sim.shared.world.lock();
    match world.media.get(&mid) {
        Some(m) if ctx.query.get("hash") == Some(&m.url_hash) => {
            note.phone_number_id = m.phone_number_id.clone();
            Ok(Reply::Bytes {
                mime: m.mime_type.clone(),
                data: m.bytes.clone(),
            })
        }
        _ => Err(GraphError {
            status: 404,
            body: json!({"error": {"message": "Media not found", "type": "OAuthException", "code": 100}}),
        }),
    }
}

pub(crate) fn delete(sim: &Simulator, id: &str, note: &mut Note) -> GraphResult {
    note.kind = "media.delete".into();
    let mut world = sim.shared.world.lock();
    if world.media.remove(id).is_some() {
        return success();
    }
    Err(GraphError::invalid_post_id())
}
