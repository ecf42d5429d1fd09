//! Meta's delivery statuses applied to outbound messages.
//!
//! - A status names its message by `wamid`, or by `biz_opaque_callback_data`,
//!   which wagate sets to the message's id (so a send whose answer was lost
//!   still gets its statuses, and learns its wamid from them).
//! - The lifecycle only moves forward (`store::messages::advances`): `read`
//!   may come before `delivered`, `sent` after `delivered`; every status is
//!   still recorded once in the timeline. `played` (a voice message was
//!   heard) counts as `read`, noted as such.
//! - `failed` carries Meta's first error: `errorMessage` is its message (with
//!   `error_data.details` when Meta gives them), plus code, title and details.
//!   Pricing is kept.
//! - A message becoming `sent` records `message.sent`; `delivered`, `read`
//!   and `failed` record `message.status_updated`.
//! - A status for a wamid not known yet (Meta can answer faster than the
//!   dispatcher commits the wamid) is kept in `orphan_statuses`; the
//!   dispatcher calls [`reconcile_orphans`] right after recording a wamid.
use chrono::Utc;
use diesel_async::AsyncPgConnection;
use uuid::Uuid;
use wagate_meta::webhook::{Status, StatusKind};

use crate::domain::message_view::event_data;
use crate::store::StoreResult;
use crate::store::contacts::{ContactRow, contacts_by_ids};
use crate::store::events::{MESSAGE_SENT, MESSAGE_STATUS_UPDATED, NewEvent, record_events};
use crate::store::inbound as store;
use crate::store::messages::{MessageRow, MetaFailure, StatusUpdate, apply_status, rank};
use crate::store::phones::PhoneRow;

/// The message id wagate sent as `biz_opaque_callback_data`, if it is one.
pub(crate) fn callback_id(s: &Status) -> Option<Uuid> {
    s.biz_opaque_callback_data
        .as_deref()
        .and_then(|d| Uuid::parse_str(d.trim()).ok())
}

/// The lifecycle update a status means; None for statuses that are not part
/// of it (`deleted`, `warning`, unknown ones), which stay in the raw delivery.
pub fn update_of(s: &Status) -> Option<StatusUpdate> {
    let (status, note) = match &s.status {
        StatusKind::Sent => ("sent", None),
        StatusKind::Delivered => ("delivered", None),
        StatusKind::Read => ("read", None),
        StatusKind::Played => ("read", Some("played".to_owned())),
        StatusKind::Failed => ("failed", None),
        _ => return None,
    };
    Some(StatusUpdate {
        status,
        at: super::time_of(s.timestamp_secs()),
        wamid: Some(s.id.clone()),
        failure: (status == "failed").then(|| failure(s)),
        pricing: s
            .pricing
            .as_ref()
            .and_then(|p| serde_json::to_value(p).ok()),
        source: "webhook",
        note,
    })
}

fn failure(s: &Status) -> MetaFailure {
    let Some(e) = s.errors.first() else {
        return MetaFailure {
            message: "Meta reported the message failed, without an error".into(),
            ..Default::default()
        };
    };
    let what = e
        .message
        .clone()
        .or_else(|| e.title.clone())
        .unwrap_or_else(|| format!("Meta error {}", e.code));
    let details = e.details().map(str::to_owned);
    let message = match &details {
        Some(d) if !d.is_empty() && *d != what => format!("{what}: {d}"),
        _ => what,
    };
    MetaFailure {
        code: Some(e.code),
        title: e.title.clone(),
        details,
        message,
    }
}

/// Applies one status to a message the caller holds locked and mirrors the
/// change on `msg`; the customer event it calls for is pushed to `events`
/// (recorded by the caller in the same transaction). Returns whether the
/// message's status changed.
pub(crate) async fn apply(
    conn: &mut AsyncPgConnection,
    msg: &mut MessageRow,
    contact: Option<&ContactRow>,
    phone: &PhoneRow,
    s: &Status,
    events: &mut Vec<NewEvent>,
) -> StoreResult<bool> {
    let Some(update) = update_of(s) else {
        tracing::debug!(wamid = %s.id, status = %s.status, "status outside the lifecycle ignored");
        return Ok(false);
    };
    let changed = apply_status(conn, msg, &update).await?;
    // What apply_status wrote, so later statuses of the batch see it.
    if msg.wamid.is_none() {
        msg.wamid = update.wamid.clone();
    }
    if update.pricing.is_some() {
        msg.pricing = update.pricing.clone();
    }
    if !changed {
        return Ok(false);
    }
    msg.status = update.status.to_owned();
    if let Some(f) = &update.failure {
        msg.error_code = f.code;
        msg.error_title = f.title.clone();
        msg.error_details = f.details.clone();
        msg.error_message = Some(f.message.clone());
    }
    msg.unknown_since = None;
    msg.unknown_reason = None;
    msg.lease_until = None;
    msg.lease_token = None;
    msg.next_attempt_at = None;
    msg.updated_at = Utc::now();
    let event = if update.status == "sent" {
        MESSAGE_SENT
    } else {
        MESSAGE_STATUS_UPDATED
    };
    events.push(NewEvent {
        org_id: msg.org_id,
        waba_id: Some(phone.waba_id),
        event,
        data: event_data(msg, contact, phone),
    });
    Ok(true)
}

/// Applies the statuses that arrived before `msg`'s wamid was recorded.
/// Call it on the same transaction, right after recording the wamid: it
/// re-reads the message (locked), so `msg` may predate that write.
pub async fn reconcile_orphans(conn: &mut AsyncPgConnection, msg: &MessageRow) -> StoreResult<()> {
    let Some(wamid) = msg.wamid.as_deref() else {
        return Ok(());
    };
    let orphans = store::take_orphans(conn, msg.phone_id, wamid).await?;
    if orphans.is_empty() {
        return Ok(());
    }
    let Some(mut current) = store::lock_message(conn, msg.id).await? else {
        return Ok(());
    };
    let Some(phone) = store::phone(conn, current.phone_id).await? else {
        return Ok(());
    };
    let contact = match current.contact_id {
        Some(c) => contacts_by_ids(conn, &[c]).await?.into_iter().next(),
        None => None,
    };
    let mut statuses: Vec<Status> = orphans
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect();
    // In lifecycle order, so each step is recorded as it happened.
    statuses.sort_by_key(|s| {
        (
            s.timestamp_secs().unwrap_or(0),
            update_of(s).map_or(0, |u| rank(u.status)),
        )
    });
    let mut events = Vec::new();
    for s in &statuses {
        apply(conn, &mut current, contact.as_ref(), &phone, s, &mut events).await?;
    }
    record_events(conn, events).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(v: serde_json::Value) -> Status {
        serde_json::from_value(v).expect("a status")
    }

    #[test]
    fn failed_statuses_carry_meta_error() {
        let u = update_of(&status(serde_json::json!({
            "id": "wamid.X", "status": "failed", "timestamp": "1751142888",
            "errors": [{"code": 131049, "title": "Not delivered",
                        "message": "Not delivered", "error_data": {"details": "Healthy ecosystem."}}]
        })))
        .expect("lifecycle status");
        assert_eq!(u.status, "failed");
        assert_eq!(u.at.timestamp(), 1_751_142_888);
        let f = u.failure.expect("failure");
        assert_eq!(f.code, Some(131_049));
        assert_eq!(f.title.as_deref(), Some("Not delivered"));
        assert_eq!(f.details.as_deref(), Some("Healthy ecosystem."));
        assert_eq!(f.message, "Not delivered: Healthy ecosystem.");
    }

    #[test]
    fn played_reads_and_others_are_ignored() {
        let played =
            update_of(&status(serde_json::json!({"id": "w", "status": "played"}))).expect("played");
        assert_eq!(
            (played.status, played.note.as_deref()),
            ("read", Some("played"))
        );
        assert!(update_of(&status(serde_json::json!({"id": "w", "status": "deleted"}))).is_none());
        let cb = status(serde_json::json!({"id": "w", "status": "sent",
            "biz_opaque_callback_data": "0b9c2b4e-3f2a-4c55-9d1e-6f1f7b0e5a11"}));
        assert!(callback_id(&cb).is_some());
    }
}
