//! Conversations: one per phone inbox and contact, created when a message is
//! sent or received, ordered by their most recent message. A conversation
//! carries its contact's identity, an unread count (customer messages not
//! yet marked read) and the end of the 24-hour customer-service window,
//! which runs from the customer's last message.
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;
use wagate_meta::graph::messages::MarkRead;

use super::{DomainError, DomainResult, phones};
use crate::app::AppState;
use crate::store::contacts::{ContactRow, ConversationRow};
use crate::store::messages::MessageRow;
use crate::store::{PageRequest, Store, StoreResult};

/// Every conversation row comes with its contact.
pub type ConversationView = (ConversationRow, ContactRow);

pub async fn list(
    store: &Store,
    org_id: Uuid,
    phone_id: Uuid,
    page: PageRequest,
) -> DomainResult<(Vec<ConversationView>, i64)> {
    phones::get_phone(store, org_id, phone_id).await?;
    Ok(store.list_conversations(phone_id, page).await?)
}

pub async fn get(
    store: &Store,
    org_id: Uuid,
    phone_id: Uuid,
    conversation_id: Uuid,
) -> DomainResult<ConversationView> {
    phones::get_phone(store, org_id, phone_id).await?;
    store
        .get_conversation(phone_id, conversation_id)
        .await?
        .ok_or(DomainError::NotFound("conversation"))
}

/// The conversation's messages, newest first, with its contact.
pub async fn messages(
    store: &Store,
    org_id: Uuid,
    phone_id: Uuid,
    conversation_id: Uuid,
    page: PageRequest,
) -> DomainResult<(Vec<MessageRow>, ContactRow, i64)> {
    let (conv, contact) = get(store, org_id, phone_id, conversation_id).await?;
    let (rows, total) = store.conversation_messages(conv.id, page).await?;
    Ok((rows, contact, total))
}

/// Sends Meta's read receipt for the latest inbound message (WhatsApp then
/// shows every earlier one read too), optionally with the typing indicator,
/// then marks the conversation's inbound messages up to it `read` and
/// recounts unread. With no inbound message there is nothing to tell Meta.
pub async fn mark_read(
    app: &AppState,
    org_id: Uuid,
    phone_id: Uuid,
    conversation_id: Uuid,
    typing_indicator: bool,
) -> DomainResult<ConversationView> {
    let phone = phones::get_phone(&app.store, org_id, phone_id).await?;
    let (conv, contact) = get(&app.store, org_id, phone_id, conversation_id).await?;
    let Some(latest) = app.store.latest_inbound(conv.id).await? else {
        return Ok((conv, contact));
    };
    let Some(wamid) = latest.wamid.as_deref() else {
        return Ok((conv, contact));
    };
    let waba = app
        .store
        .get_waba(org_id, phone.waba_id)
        .await?
        .map(|(w, _)| w)
        .ok_or(DomainError::NotFound("WABA"))?;
    let token = phones::access_token(app, &waba)?.ok_or_else(|| {
        DomainError::Conflict(
            "no Meta access token is stored for this phone's WABA: connect it (PUT /auth/me/credentials) to send read receipts".into(),
        )
    })?;
    let mut mark = MarkRead::new(wamid);
    if typing_indicator {
        mark = mark.with_typing();
    }
    // Outside any transaction: no database lock waits on Meta.
    if let Err(e) = app
        .meta
        .graph
        .mark_read(&token, &phone.meta_phone_number_id, &mark)
        .await
    {
        return Err(match phones::classify(&e) {
            phones::Outcome::Retry => {
                DomainError::Unavailable(format!("Meta did not answer the read receipt: {e}"))
            }
            _ => DomainError::Conflict(format!(
                "Meta refused the read receipt: {}",
                phones::meta_message(&e)
            )),
        });
    }
    let upto = crate::domain::message_view::timestamp(&latest);
    let conv = app.store.mark_conversation_read(conv.id, upto).await?;
    Ok((conv, contact))
}

/// The end of the 24-hour customer-service window between a phone and a
/// contact (None when the customer never wrote), on the caller's
/// connection: outbound validation and dry-run use it to refuse, or warn
/// about, a free-form message outside the window.
pub async fn window_end(
    conn: &mut AsyncPgConnection,
    phone_id: Uuid,
    contact_id: Uuid,
) -> StoreResult<Option<DateTime<Utc>>> {
    Ok(
        crate::store::conversations::conversation_of(conn, phone_id, contact_id)
            .await?
            .and_then(|c| c.window_expires_at()),
    )
}
