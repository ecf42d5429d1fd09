//! Accepting sends: validate, resolve the phone, the reply target and the
//! 24-hour window, then store (the 202 comes after the commit). With an
//! Idempotency-Key the whole request is one transaction with its key.
use chrono::{DateTime, Duration, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use wagate_meta::graph::templates::TemplateQuery;

use super::build::{Built, OutboundInput, build};
use crate::app::AppState;
use crate::domain::identity::Recipient;
use crate::domain::message_view;
use crate::domain::plans::Plan;
use crate::domain::{DomainError, DomainResult, phones, validate};
use crate::store::contacts::{ContactRow, contacts_by_ids};
use crate::store::events::{MESSAGE_STATUS_UPDATED, NewEvent, record_events};
use crate::store::idempotency::{Claim, KeyClaim};
use crate::store::messages::MessageRow;
use crate::store::outbound::{Accepted, NewOutbound, WindowCheck, Written, transition_on};
use crate::store::phones::{PhoneRow, WabaRow};
use crate::store::{StoreError, StoreResult};

/// How far ahead a message may be scheduled.
const MAX_SCHEDULE_DAYS: i64 = 90;

/// Who is sending, and how the request arrived.
pub struct SendContext {
    pub org_id: Uuid,
    pub idempotency_key: Option<String>,
    /// The RPC, part of the idempotency fingerprint.
    pub rpc: &'static str,
}

/// What a dry run found.
#[derive(Debug, Clone)]
pub struct DryRun {
    pub phone: PhoneRow,
    pub path: String,
    pub request: Value,
    pub contact_id: Option<Uuid>,
    pub window_expires_at: Option<DateTime<Utc>>,
    pub window_open: bool,
    pub warnings: Vec<String>,
    pub status: &'static str,
}

pub enum SendOutcome {
    Accepted {
        message: Box<MessageRow>,
        contact: Box<ContactRow>,
        replayed: bool,
    },
    DryRun(Box<DryRun>),
}

/// A message validated and resolved, ready to store.
struct Prepared {
    row: NewOutbound,
    phone: PhoneRow,
    waba: WabaRow,
    window_expires_at: Option<DateTime<Utc>>,
    contact_id: Option<Uuid>,
}

/// `POST /send-message` and `POST /v1/phones/{phoneId}/messages`.
pub async fn send(
    app: &AppState,
    ctx: &SendContext,
    input: OutboundInput,
    path_phone: Option<&str>,
) -> DomainResult<SendOutcome> {
    let path_phone = match path_phone {
        Some(p) => Some(validate::uuid("phoneId", p)?),
        None => None,
    };
    if let (Some(path), Some(body)) = (
        path_phone,
        input.phone_id.as_deref().filter(|s| !s.is_empty()),
    ) && validate::uuid("phoneId", body)? != path
    {
        return Err(DomainError::validation(
            "phoneId",
            "phoneId in the body differs from the one in the path",
        ));
    }
    let prepared = prepare(app, ctx.org_id, &input, path_phone, None, "", Utc::now()).await?;
    if input.dry_run {
        return Ok(SendOutcome::DryRun(Box::new(
            dry_run(app, prepared, &input).await?,
        )));
    }
    match &ctx.idempotency_key {
        None => {
            let (message, contact) = app.outbound.insert(prepared.row).await?;
            Ok(SendOutcome::Accepted {
                message: Box::new(message),
                contact: Box::new(contact),
                replayed: false,
            })
        }
        Some(key) => {
            let claim = KeyClaim {
                org_id: ctx.org_id,
                key: idempotency_key(key)?,
                rpc: ctx.rpc,
                fingerprint: fingerprint(ctx.rpc, &(path_phone, &input)),
                response: json!({ "messageIds": [prepared.row.id] }),
            };
            // Through the writer, coalesced with other sends.
            match app.outbound.insert_keyed(prepared.row, claim).await? {
                Written::Stored((message, contact)) => Ok(SendOutcome::Accepted {
                    message: Box::new(message),
                    contact: Box::new(contact),
                    replayed: false,
                }),
                Written::Keyed(claim) => {
                    let response = refused(claim)?;
                    let ids = ids_of(&response, "messageIds");
                    let (message, contact) = app
                        .store
                        .messages_by_ids(ctx.org_id, &ids)
                        .await?
                        .pop()
                        .ok_or(DomainError::NotFound("message"))?;
                    Ok(SendOutcome::Accepted {
                        message: Box::new(message),
                        contact: Box::new(contact),
                        replayed: true,
                    })
                }
            }
        }
    }
}

/// One item's failure in a bulk request.
#[derive(Debug, Clone)]
pub struct ItemError {
    pub index: usize,
    pub code: &'static str,
    pub field: Option<String>,
    pub message: String,
}

pub struct BulkOutcome {
    pub batch_id: Uuid,
    pub accepted: Vec<Accepted>,
    pub errors: Vec<ItemError>,
    pub replayed: bool,
}

/// `POST /messages/bulk`: up to the plan's maximum (never above 1,000).
pub async fn send_bulk(
    app: &AppState,
    ctx: &SendContext,
    items: Vec<OutboundInput>,
    default_phone: Option<&str>,
    default_send_at: Option<DateTime<Utc>>,
) -> DomainResult<BulkOutcome> {
    let org = app
        .store
        .get_org(ctx.org_id)
        .await?
        .ok_or(DomainError::NotFound("organization"))?;
    let plan = Plan::parse(&org.plan).unwrap_or(Plan::Basic);
    let max = plan.limits().bulk_max;
    if max == 0 {
        return Err(DomainError::Forbidden(format!(
            "bulk sending needs a paid plan (this organization is on {plan}); send messages one at a time or upgrade"
        )));
    }
    if items.is_empty() {
        return Err(DomainError::validation(
            "messages",
            "messages must contain at least one message",
        ));
    }
    if items.len() > max as usize {
        return Err(DomainError::validation(
            "messages",
            format!(
                "messages: at most {max} per request on the {plan} plan ({} given)",
                items.len()
            ),
        ));
    }
    if items.iter().any(|i| i.dry_run) {
        return Err(DomainError::validation(
            "messages",
            "dryRun is not supported in bulk requests",
        ));
    }
    let default_phone = match default_phone.filter(|s| !s.is_empty()) {
        Some(p) => Some(validate::uuid("phoneId", p)?),
        None => None,
    };
    // The request's phone is the request's: unknown (or another
    // organization's), the request is refused once, not item by item.
    if let Some(p) = default_phone
        && app
            .store
            .sending_phone(ctx.org_id, Some(p))
            .await?
            .is_none()
    {
        return Err(DomainError::NotFound("phone"));
    }
    // Only a keyed request is compared with an earlier one.
    let keyed = match &ctx.idempotency_key {
        Some(key) => Some((
            idempotency_key(key)?,
            fingerprint(ctx.rpc, &(default_phone, default_send_at, &items)),
        )),
        None => None,
    };
    let batch_id = Uuid::new_v4();
    let now = Utc::now();
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (index, mut item) in items.into_iter().enumerate() {
        if item.send_at.is_none() {
            item.send_at = default_send_at;
        }
        let prefix = format!("messages[{index}].");
        match prepare(
            app,
            ctx.org_id,
            &item,
            default_phone,
            Some(batch_id),
            &prefix,
            now,
        )
        .await
        {
            Ok(p) => rows.push(p.row),
            Err(e) => errors.push(item_error(index, e)?),
        }
    }
    let error_json: Vec<Value> = errors
        .iter()
        .map(|e| json!({"index": e.index, "code": e.code, "field": e.field, "message": e.message}))
        .collect();
    let claim = keyed.map(|(key, fingerprint)| KeyClaim {
        org_id: ctx.org_id,
        key,
        rpc: ctx.rpc,
        fingerprint,
        response: json!({
            "messageIds": rows.iter().map(|r| r.id).collect::<Vec<_>>(),
            "batchId": batch_id,
            "errors": error_json,
        }),
    });
    match app.outbound.insert_all(&rows, claim.as_ref()).await? {
        Ok(accepted) => Ok(BulkOutcome {
            batch_id,
            accepted,
            errors,
            replayed: false,
        }),
        Err(refusal) => {
            let response = refused(refusal)?;
            let accepted = app
                .store
                .messages_by_ids(ctx.org_id, &ids_of(&response, "messageIds"))
                .await?;
            let batch_id = response
                .get("batchId")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .unwrap_or(batch_id);
            let errors = response
                .get("errors")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(stored_item_error).collect())
                .unwrap_or_default();
            Ok(BulkOutcome {
                batch_id,
                accepted,
                errors,
                replayed: true,
            })
        }
    }
}

fn item_error(index: usize, e: DomainError) -> DomainResult<ItemError> {
    let (code, field, message) = match e {
        DomainError::Validation { field, message } => ("VALIDATION_ERROR", Some(field), message),
        DomainError::NotFound(what) => ("NOT_FOUND", None, format!("{what} not found")),
        DomainError::Conflict(m) => ("CONFLICT", None, m),
        DomainError::Forbidden(m) => ("FORBIDDEN", None, m),
        // Infrastructure errors fail the whole request.
        other => return Err(other),
    };
    Ok(ItemError {
        index,
        code,
        field,
        message,
    })
}

fn stored_item_error(v: &Value) -> ItemError {
    let code = match v.get("code").and_then(Value::as_str) {
        Some("NOT_FOUND") => "NOT_FOUND",
        Some("CONFLICT") => "CONFLICT",
        Some("FORBIDDEN") => "FORBIDDEN",
        _ => "VALIDATION_ERROR",
    };
    ItemError {
        index: v.get("index").and_then(Value::as_u64).unwrap_or(0) as usize,
        code,
        field: v.get("field").and_then(Value::as_str).map(str::to_owned),
        message: v
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    }
}

/// The stored response of a key used already, or why it cannot be used.
fn refused(claim: Claim) -> DomainResult<Value> {
    match claim {
        Claim::Replay(response) => Ok(response),
        Claim::Mismatch => Err(DomainError::IdempotencyMismatch(
            "this Idempotency-Key was used with a different request; use a new key".into(),
        )),
        Claim::InFlight => Err(DomainError::InFlight(
            "a request with this Idempotency-Key is still in flight; retry when it has finished"
                .into(),
        )),
        Claim::Fresh => Err(anyhow::anyhow!("a fresh key was refused").into()),
    }
}

fn ids_of(response: &Value, key: &str) -> Vec<Uuid> {
    response
        .get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

fn idempotency_key(key: &str) -> DomainResult<String> {
    let k = key.trim();
    if k.is_empty() || k.len() > 255 || !k.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(DomainError::validation(
            "Idempotency-Key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters, without spaces",
        ));
    }
    Ok(k.to_owned())
}

fn fingerprint(rpc: &str, request: &impl serde::Serialize) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(rpc.as_bytes());
    // serde_json's maps are ordered: the same request serialises the same way.
    h.update(serde_json::to_vec(request).unwrap_or_default());
    h.finalize().to_vec()
}

/// Validation and resolution of one message: everything before storing.
async fn prepare(
    app: &AppState,
    org_id: Uuid,
    input: &OutboundInput,
    default_phone: Option<Uuid>,
    batch_id: Option<Uuid>,
    prefix: &str,
    now: DateTime<Utc>,
) -> DomainResult<Prepared> {
    let built: Built = build(input, prefix)?;
    let named_phone = match input.phone_id.as_deref().filter(|s| !s.is_empty()) {
        Some(p) => Some(validate::uuid(&format!("{prefix}phoneId"), p)?),
        None => default_phone,
    };
    let (phone, waba) = match app.store.sending_phone(org_id, named_phone).await? {
        Some(pw) => pw,
        None if named_phone.is_some() => return Err(DomainError::NotFound("phone")),
        None => {
            return Err(DomainError::Conflict(
                "no phone to send from: connect one with PUT /auth/me/credentials, or name phoneId"
                    .into(),
            ));
        }
    };
    if waba.access_token_enc.is_none() {
        return Err(DomainError::Conflict(
            "sending is disabled for this phone: its Meta credentials were removed; set new ones with PUT /auth/me/credentials".into(),
        ));
    }
    let send_at = match input.send_at {
        Some(t) if t > now + Duration::days(MAX_SCHEDULE_DAYS) => {
            return Err(DomainError::validation(
                &format!("{prefix}sendAt"),
                format!("{prefix}sendAt may be at most {MAX_SCHEDULE_DAYS} days ahead"),
            ));
        }
        other => other,
    };
    let status = if send_at.is_some_and(|t| t > now + Duration::seconds(1)) {
        "scheduled"
    } else {
        "queued"
    };

    let mut graph = built.graph.clone();
    if let Some(r) = input.reply_to.as_deref().filter(|s| !s.is_empty()) {
        graph = graph.reply_to(resolve_wamid(app, org_id, r, &format!("{prefix}replyTo")).await?);
    }
    if let wagate_meta::graph::messages::MessagePayload::Reaction { reaction } = &mut graph.payload
    {
        reaction.message_id = resolve_wamid(
            app,
            org_id,
            &reaction.message_id,
            &format!("{prefix}reaction.messageId"),
        )
        .await?;
    }
    let identity = built.recipient.identity();
    // It goes out at sendAt, or now when that has passed.
    let window_at = send_at.map_or(now, |t| t.max(now));
    let free_form = built.kind != "template";
    let mut warnings = Vec::new();
    if let Some(t) = send_at.filter(|t| *t < now - Duration::seconds(1)) {
        warnings.push(format!(
            "sendAt {} has passed: the message is queued to go out now",
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ));
    }
    // A send learns the window from the conversation the writer touches (no
    // query of its own); a dry run, which writes nothing, reads it here.
    let (window_expires_at, contact_id, window_check) = if input.dry_run {
        let conversation = app.store.conversation_for(phone.id, &identity).await?;
        let end = conversation.as_ref().and_then(|c| c.window_expires_at());
        if free_form && end.is_none_or(|end| end <= window_at) {
            warnings.push(window_warning(end));
        }
        (end, conversation.map(|c| c.contact_id), None)
    } else {
        let check = free_form.then_some(WindowCheck {
            at: window_at,
            warning: window_warning,
        });
        (None, None, check)
    };
    if let Recipient::Phone { to, .. } = &built.recipient
        && !to.starts_with('+')
        && to.len() < 10
    {
        warnings.push(format!(
            "{prefix}to has no country code? Meta treats numbers without + as international"
        ));
    }
    let id = crate::store::new_id();
    let mut payload = serde_json::to_value(&graph).map_err(anyhow::Error::from)?;
    if let Value::Object(o) = &mut payload {
        // Meta echoes it in every status webhook: matches even a send whose answer was lost.
        o.insert("biz_opaque_callback_data".into(), json!(id.to_string()));
    }
    let recipient = match &built.recipient {
        Recipient::Phone { to, .. } => to.clone(),
        Recipient::Bsuid(b) => b.clone(),
    };
    Ok(Prepared {
        contact_id,
        row: NewOutbound {
            id,
            org_id,
            phone_id: phone.id,
            batch_id,
            kind: built.kind.to_owned(),
            content: built.content,
            payload,
            recipient,
            identity,
            status,
            send_at,
            warnings,
            window_check,
            created_at: now,
        },
        phone,
        waba,
        window_expires_at,
    })
}

/// The warning for a free-form message outside the 24-hour window that
/// ends (or ended) at `end`; None: the contact never wrote.
fn window_warning(end: Option<DateTime<Utc>>) -> String {
    match end {
        Some(end) => format!(
            "the 24-hour customer-service window closed at {}: outside it WhatsApp delivers only templates, so Meta will likely fail this message (131047)",
            end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        None => "the 24-hour customer-service window is not open (the contact has never written to this number): outside it WhatsApp delivers only templates, so Meta will likely fail this message (131047)".to_owned(),
    }
}

/// A wamid, or a wagate message id resolved to its wamid.
async fn resolve_wamid(
    app: &AppState,
    org_id: Uuid,
    reference: &str,
    field: &str,
) -> DomainResult<String> {
    match Uuid::parse_str(reference.trim()) {
        Ok(id) => match app.store.message_wamid(org_id, id).await? {
            Some(Some(wamid)) => Ok(wamid),
            Some(None) => Err(DomainError::validation(
                field,
                format!("{field}: that message has no WhatsApp id yet"),
            )),
            None => Err(DomainError::validation(
                field,
                format!("{field}: no such message"),
            )),
        },
        Err(_) => Ok(reference.trim().to_owned()),
    }
}

async fn dry_run(app: &AppState, p: Prepared, input: &OutboundInput) -> DomainResult<DryRun> {
    let mut warnings = p.row.warnings.clone();
    let mut request = p.row.payload.clone();
    if let Value::Object(o) = &mut request {
        o.insert(
            "biz_opaque_callback_data".into(),
            json!("<the message id, assigned when sent>"),
        );
    }
    if let (Some(t), Some(meta_waba)) = (&input.template, &p.waba.meta_waba_id) {
        match phones::access_token(app, &p.waba)? {
            Some(token) => {
                let query = TemplateQuery {
                    name: Some(t.name.trim().to_owned()),
                    ..Default::default()
                };
                match app
                    .meta
                    .graph
                    .list_templates(&token, meta_waba, &query)
                    .await
                {
                    Ok(page) => {
                        let language = p
                            .row
                            .content
                            .get("language")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        let found = page.data.iter().find(|tpl| {
                            tpl.name.as_deref() == Some(t.name.trim())
                                && tpl.language.as_deref() == Some(language)
                        });
                        match found {
                            None => warnings.push(format!(
                                "template {:?} in {language} was not found in the WABA",
                                t.name.trim()
                            )),
                            Some(tpl) => {
                                let status = serde_json::to_value(&tpl.status)
                                    .ok()
                                    .and_then(|v| v.as_str().map(str::to_owned))
                                    .unwrap_or_default();
                                if status != "APPROVED" {
                                    warnings.push(format!("template {:?} is {status}, not APPROVED: Meta will refuse it", t.name.trim()));
                                }
                            }
                        }
                    }
                    Err(e) => warnings.push(format!(
                        "could not check the template with Meta: {}",
                        phones::meta_message(&e)
                    )),
                }
            }
            None => warnings.push("no Meta token to check the template with".into()),
        }
    } else if input.template.is_some() {
        warnings.push("the template was not checked: the phone's WABA id is unknown".into());
    }
    Ok(DryRun {
        path: format!(
            "/{}/{}/messages",
            app.meta.graph.config().api_version,
            p.phone.meta_phone_number_id
        ),
        phone: p.phone,
        request,
        contact_id: p.contact_id,
        window_open: p.window_expires_at.is_some_and(|end| end > Utc::now()),
        window_expires_at: p.window_expires_at,
        warnings,
        status: p.row.status,
    })
}

/// `POST /messages/{id}/retry`: only failed messages.
pub async fn retry(
    app: &AppState,
    org_id: Uuid,
    id: Uuid,
) -> DomainResult<(MessageRow, Option<ContactRow>)> {
    transition(
        app,
        org_id,
        id,
        "failed",
        "queued",
        None,
        "retry requested",
        "only failed messages can be retried",
    )
    .await
}

/// Cancels a scheduled message: it becomes failed with errorMessage "cancelled".
pub async fn cancel(
    app: &AppState,
    org_id: Uuid,
    id: Uuid,
) -> DomainResult<(MessageRow, Option<ContactRow>)> {
    transition(
        app,
        org_id,
        id,
        "scheduled",
        "failed",
        Some("cancelled"),
        "cancelled before sending",
        "only scheduled messages can be cancelled",
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn transition(
    app: &AppState,
    org_id: Uuid,
    id: Uuid,
    from: &'static str,
    to: &'static str,
    error: Option<&str>,
    note: &str,
    refusal: &str,
) -> DomainResult<(MessageRow, Option<ContactRow>)> {
    let mut conn = app.store.conn().await?;
    let outcome = conn
        .transaction::<_, StoreError, _>(async |c| {
            let outcome = transition_on(c, org_id, id, from, to, error, note).await?;
            // A cancel fails the message: subscribers hear of it as of any
            // other failure, in the same transaction.
            if let Some(Ok(row)) = &outcome
                && row.status == "failed"
            {
                record_status_updated(c, row).await?;
            }
            Ok(outcome)
        })
        .await?;
    drop(conn);
    match outcome {
        None => Err(DomainError::NotFound("message")),
        Some(Err(status)) => Err(DomainError::Conflict(format!(
            "{refusal}: this message is {status}"
        ))),
        Some(Ok(_)) => {
            if to == "queued" {
                app.dispatch_wake.notify_one();
            }
            app.store
                .get_message(org_id, id)
                .await?
                .ok_or(DomainError::NotFound("message"))
        }
    }
}

/// Records `message.status_updated` for a message the API changed.
async fn record_status_updated(c: &mut AsyncPgConnection, msg: &MessageRow) -> StoreResult<()> {
    let Some(phone) = crate::store::inbound::phone(c, msg.phone_id).await? else {
        return Ok(());
    };
    let contact = match msg.contact_id {
        Some(id) => contacts_by_ids(c, &[id]).await?.into_iter().next(),
        None => None,
    };
    record_events(
        c,
        vec![NewEvent {
            org_id: msg.org_id,
            waba_id: Some(phone.waba_id),
            event: MESSAGE_STATUS_UPDATED,
            data: message_view::event_data(msg, contact.as_ref(), &phone),
        }],
    )
    .await?;
    Ok(())
}
