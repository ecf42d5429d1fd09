//! Message templates: list (paged), create, get, edit, delete, and the review lifecycle
//! (`PENDING` -> `APPROVED`, or `REJECTED` for names containing "reject", after
//! `template_review_delay`, announced by a signed `message_template_status_update` webhook).
use axum::http::Method;
use serde_json::{Value, json};

use crate::errors::GraphError;
use crate::graph_routes::{Ctx, GraphResult, Note, ok_json, requested_fields, success};
use crate::log::WebhookDelivery;
use crate::management::{cursor, uncursor};
use crate::state::Template;
use crate::{SimError, Simulator};

const CATEGORIES: &[&str] = &["MARKETING", "UTILITY", "AUTHENTICATION"];

pub(crate) async fn waba_templates(
    sim: &Simulator,
    ctx: &Ctx,
    waba: &str,
    note: &mut Note,
) -> GraphResult {
    note.waba_id = Some(waba.to_string());
    {
        let cfg = sim.shared.cfg.read().clone();
        let mut world = sim.shared.world.lock();
        if world.phones.contains_key(waba) || world.waba_or_create(waba, &cfg).is_none() {
            return Err(GraphError::unknown_object(ctx.method.as_str(), waba));
        }
    }
    match ctx.method {
        Method::GET => list(sim, ctx, waba, note),
        Method::POST => create(sim, ctx, waba, note),
        Method::DELETE => delete(sim, ctx, waba, note),
        _ => Err(GraphError::unknown_object(ctx.method.as_str(), waba)),
    }
}

fn project(t: &Template, fields: &Option<Vec<String>>) -> Value {
    let full = t.to_graph();
    match (fields, &full) {
        (Some(f), Value::Object(m)) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                if k == "id" || f.contains(k) {
                    out.insert(k.clone(), v.clone());
                }
            }
            Value::Object(out)
        }
        _ => full,
    }
}

fn list(sim: &Simulator, ctx: &Ctx, waba: &str, note: &mut Note) -> GraphResult {
    note.kind = "templates.list".into();
    let q = |k: &str| ctx.query.get(k).cloned();
    let mut all: Vec<Template> = sim
        .shared
        .world
        .lock()
        .templates
        .values()
        .filter(|t| t.waba_id == waba)
        .filter(|t| q("name").is_none_or(|n| t.name.contains(n.as_str())))
        .filter(|t| q("status").is_none_or(|s| t.status.eq_ignore_ascii_case(&s)))
        .filter(|t| q("category").is_none_or(|c| t.category.eq_ignore_ascii_case(&c)))
        .filter(|t| q("language").is_none_or(|l| t.language == l))
        .cloned()
        .collect();
    all.sort_by_key(|t| t.seq);
    let limit = q("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(25)
        .clamp(1, 1000);
    let start = match (q("after"), q("before")) {
        (Some(a), _) => match uncursor(&a) {
            Some(o) => o + 1,
            None => {
                return Err(GraphError::whatsapp(
                    131059,
                    Some("The pagination cursor is invalid."),
                ));
            }
        },
        (None, Some(b)) => match uncursor(&b) {
            Some(o) => o.saturating_sub(limit),
            None => {
                return Err(GraphError::whatsapp(
                    131059,
                    Some("The pagination cursor is invalid."),
                ));
            }
        },
        _ => 0,
    };
    let fields = requested_fields(ctx);
    let end = (start + limit).min(all.len());
    let page: Vec<Value> = all
        .get(start..end)
        .unwrap_or(&[])
        .iter()
        .map(|t| project(t, &fields))
        .collect();
    let mut paging = json!({"cursors": {
        "before": cursor(start),
        "after": cursor(end.saturating_sub(1).max(start)),
    }});
    if end < all.len() {
        let mut next_q: Vec<(String, String)> = ctx
            .query
            .iter()
            .filter(|(k, _)| k.as_str() != "after" && k.as_str() != "before")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        next_q.push(("limit".into(), limit.to_string()));
        next_q.push(("after".into(), cursor(end - 1)));
        let qs: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(next_q)
            .finish();
        paging["next"] = json!(format!(
            "{}/{}/{}/message_templates?{}",
            ctx.base_url, ctx.version, waba, qs
        ));
    }
    if start > 0 {
        paging["previous"] = json!(format!(
            "{}/{}/{}/message_templates?limit={}&before={}",
            ctx.base_url,
            ctx.version,
            waba,
            limit,
            cursor(start)
        ));
    }
    ok_json(json!({"data": page, "paging": paging}))
}

fn create(sim: &Simulator, ctx: &Ctx, waba: &str, note: &mut Note) -> GraphResult {
    note.kind = "templates.create".into();
    let body = ctx.json.clone().unwrap_or(Value::Null);
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() {
        return Err(GraphError::param("The parameter name is required."));
    }
    if name.len() > 512
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(GraphError::invalid_parameter(
            "Template name can only contain lowercase letters, numbers and underscores.",
        ));
    }
    let language = body
        .get("language")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if language.is_empty() {
        return Err(GraphError::param("The parameter language is required."));
    }
    let category = body
        .get("category")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_uppercase();
    if !CATEGORIES.contains(&category.as_str()) {
        return Err(GraphError::param(
            "Param category must be one of {AUTHENTICATION, MARKETING, UTILITY}.",
        ));
    }
    let components = match body.get("components") {
        Some(Value::Array(a)) if !a.is_empty() => Value::Array(a.clone()),
        _ => return Err(GraphError::param("The parameter components is required.")),
    };
    let parameter_format = body
        .get("parameter_format")
        .and_then(Value::as_str)
        .unwrap_or("positional")
        .to_ascii_uppercase();
    let id = {
        let mut world = sim.shared.world.lock();
        if world
            .templates
            .values()
            .any(|t| t.waba_id == waba && t.name == name && t.language == language)
        {
            return Err(GraphError::invalid_parameter(&format!(
                "Content in this language already exists for the template {name}."
            )));
        }
        let id = world.fresh_id();
        world.template_seq += 1;
        let seq = world.template_seq;
        world.templates.insert(
            id.clone(),
            Template {
                id: id.clone(),
                waba_id: waba.to_string(),
                name: name.to_string(),
                language: language.to_string(),
                category: category.clone(),
                status: "PENDING".into(),
                parameter_format,
                components,
                previous_category: None,
                seq,
            },
        );
        id
    };
    schedule_review(sim, &id);
    ok_json(json!({"id": id, "status": "PENDING", "category": category}))
}

fn delete(sim: &Simulator, ctx: &Ctx, waba: &str, note: &mut Note) -> GraphResult {
    note.kind = "templates.delete".into();
    let name = ctx.query.get("name").cloned().unwrap_or_default();
    let hsm_id = ctx.query.get("hsm_id").cloned();
    let mut world = sim.shared.world.lock();
    let matching: Vec<String> = world
        .templates
        .values()
        .filter(|t| t.waba_id == waba)
        .filter(|t| match &hsm_id {
            Some(h) => &t.id == h && (name.is_empty() || t.name == name),
            None => !name.is_empty() && t.name == name,
        })
        .map(|t| t.id.clone())
        .collect();
    if matching.is_empty() {
        let shown = if name.is_empty() {
            hsm_id.unwrap_or_default()
        } else {
            name
        };
        return Err(GraphError::template_not_found(&shown));
    }
    for id in matching {
        world.templates.remove(&id);
    }
    success()
}

pub(crate) fn get(sim: &Simulator, ctx: &Ctx, id: &str, note: &mut Note) -> GraphResult {
    note.kind = "templates.get".into();
    let world = sim.shared.world.lock();
    let t = world
        .templates
        .get(id)
        .ok_or_else(|| GraphError::unknown_object("get", id))?;
    note.waba_id = Some(t.waba_id.clone());
    ok_json(project(t, &requested_fields(ctx)))
}

pub(crate) async fn edit(sim: &Simulator, ctx: &Ctx, id: &str, note: &mut Note) -> GraphResult {
    note.kind = "templates.edit".into();
    let body = ctx.json.clone().unwrap_or(Value::Null);
    {
        let mut world = sim.shared.world.lock();
        let t = world
            .templates
            .get_mut(id)
            .ok_or_else(|| GraphError::unknown_object("post", id))?;
        note.waba_id = Some(t.waba_id.clone());
        if !matches!(t.status.as_str(), "APPROVED" | "REJECTED" | "PAUSED") {
            return Err(GraphError::invalid_parameter(&format!(
                "Only templates with status APPROVED, REJECTED or PAUSED can be edited (status is {}).",
                t.status
            )));
        }
        let new_category = body
            .get("category")
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase);
        if let Some(c) = &new_category {
            if !CATEGORIES.contains(&c.as_str()) {
                return Err(GraphError::param(
                    "Param category must be one of {AUTHENTICATION, MARKETING, UTILITY}.",
                ));
            }
            if t.status == "APPROVED" && *c != t.category {
                return Err(GraphError::invalid_parameter(
                    "The category of an approved template can't be changed.",
                ));
            }
        }
        let components = body.get("components").filter(|c| c.is_array()).cloned();
        if new_category.is_none() && components.is_none() {
            return Err(GraphError::param("The parameter components is required."));
        }
        if let Some(c) = new_category {
            t.category = c;
        }
        if let Some(c) = components {
            t.components = c;
        }
        t.status = "PENDING".into();
    }
    schedule_review(sim, id);
    success()
}

/// After the review delay: APPROVED (REJECTED for names containing "reject"), plus webhook.
fn schedule_review(sim: &Simulator, id: &str) {
    let sim = sim.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        let delay = sim.shared.cfg.read().template_review_delay;
        tokio::time::sleep(delay).await;
        let reject = sim
            .shared
            .world
            .lock()
            .templates
            .get(&id)
            .map(|t| t.name.contains("reject"));
        let Some(reject) = reject else { return };
        let (status, reason) = if reject {
            ("REJECTED", Some("INVALID_FORMAT"))
        } else {
            ("APPROVED", None)
        };
        if let Err(e) = set_status(&sim, &id, status, reason).await {
            tracing::debug!(error = %e, "template review");
        }
    });
}

/// Sets a template's status and posts the `message_template_status_update` webhook.
pub(crate) async fn set_status(
    sim: &Simulator,
    id: &str,
    status: &str,
    reason: Option<&str>,
) -> Result<WebhookDelivery, SimError> {
    let t = {
        let mut world = sim.shared.world.lock();
        let t = world
            .templates
            .get_mut(id)
            .ok_or_else(|| SimError::NotFound(format!("template {id}")))?;
        t.status = status.to_ascii_uppercase();
        t.clone()
    };
    Ok(sim.post_template_status(&t, reason).await)
}
