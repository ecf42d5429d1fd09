//! Conversations of a phone inbox and their messages, as the conversations
//! API reads them, and mark-as-read.
use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::Timestamptz;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::contacts::{ContactRow, ConversationRow};
use super::messages::MessageRow;
use super::schema::{contacts, conversations, messages};
use super::{PageRequest, Store, StoreError, StoreResult};

/// When a message happened: Meta's time when known, else when it was stored
/// (the same value the Message resource shows as `timestamp`).
fn message_time() -> diesel::expression::SqlLiteral<Timestamptz> {
    sql::<Timestamptz>("COALESCE(messages.meta_timestamp, messages.created_at)")
}

impl Store {
    /// A phone's conversations, the most recent message first (conversations
    /// without messages last).
    pub async fn list_conversations(
        &self,
        phone_id: Uuid,
        page: PageRequest,
    ) -> StoreResult<(Vec<(ConversationRow, ContactRow)>, i64)> {
        let mut conn = self.conn().await?;
        let total = conversations::table
            .filter(conversations::phone_id.eq(phone_id))
            .count()
            .get_result(&mut conn)
            .await?;
        let rows = conversations::table
            .inner_join(contacts::table)
            .filter(conversations::phone_id.eq(phone_id))
            .order((
                conversations::last_message_at.desc().nulls_last(),
                conversations::id.desc(),
            ))
            .limit(page.limit)
            .offset(page.offset())
            .select((ConversationRow::as_select(), ContactRow::as_select()))
            .load(&mut conn)
            .await?;
        Ok((rows, total))
    }

    pub async fn get_conversation(
        &self,
        phone_id: Uuid,
        conversation_id: Uuid,
    ) -> StoreResult<Option<(ConversationRow, ContactRow)>> {
        let mut conn = self.conn().await?;
        Ok(conversations::table
            .inner_join(contacts::table)
            .filter(conversations::phone_id.eq(phone_id))
            .filter(conversations::id.eq(conversation_id))
            .select((ConversationRow::as_select(), ContactRow::as_select()))
            .first(&mut conn)
            .await
            .optional()?)
    }

    /// A conversation's messages, newest first.
    pub async fn conversation_messages(
        &self,
        conversation_id: Uuid,
        page: PageRequest,
    ) -> StoreResult<(Vec<MessageRow>, i64)> {
        let mut conn = self.conn().await?;
        let total = messages::table
            .filter(messages::conversation_id.eq(conversation_id))
            .count()
            .get_result(&mut conn)
            .await?;
        let rows = messages::table
            .filter(messages::conversation_id.eq(conversation_id))
            .order((message_time().desc(), messages::id.desc()))
            .limit(page.limit)
            .offset(page.offset())
            .select(MessageRow::as_select())
            .load(&mut conn)
            .await?;
        Ok((rows, total))
    }

    /// The conversation's latest inbound message that has a wamid (the one a
    /// read receipt names).
    pub async fn latest_inbound(&self, conversation_id: Uuid) -> StoreResult<Option<MessageRow>> {
        let mut conn = self.conn().await?;
        Ok(messages::table
            .filter(messages::conversation_id.eq(conversation_id))
            .filter(messages::direction.eq("inbound"))
            .filter(messages::wamid.is_not_null())
            .order((message_time().desc(), messages::id.desc()))
            .select(MessageRow::as_select())
            .first(&mut conn)
            .await
            .optional()?)
    }

    /// Marks the conversation's inbound messages up to `upto` read and
    /// recounts its unread messages (those that arrived since stay unread).
    pub async fn mark_conversation_read(
        &self,
        conversation_id: Uuid,
        upto: DateTime<Utc>,
    ) -> StoreResult<ConversationRow> {
        let mut conn = self.conn().await?;
        conn.transaction::<_, StoreError, _>(async |c| mark_read_on(c, conversation_id, upto).await)
            .await
    }
}

async fn mark_read_on(
    conn: &mut AsyncPgConnection,
    conversation_id: Uuid,
    upto: DateTime<Utc>,
) -> StoreResult<ConversationRow> {
    // Lock the conversation first: the inbound processor touches it too.
    conversations::table
        .find(conversation_id)
        .select(conversations::id)
        .for_update()
        .first::<Uuid>(conn)
        .await?;
    let now = Utc::now();
    diesel::update(messages::table)
        .filter(messages::conversation_id.eq(conversation_id))
        .filter(messages::direction.eq("inbound"))
        .filter(messages::status.eq("delivered"))
        .filter(message_time().le(upto))
        .set((messages::status.eq("read"), messages::updated_at.eq(now)))
        .execute(conn)
        .await?;
    // Unread = customer messages still delivered (system notices never count).
    let unread: i64 = messages::table
        .filter(messages::conversation_id.eq(conversation_id))
        .filter(messages::direction.eq("inbound"))
        .filter(messages::status.eq("delivered"))
        .filter(messages::kind.ne("system"))
        .count()
        .get_result(conn)
        .await?;
    Ok(diesel::update(conversations::table.find(conversation_id))
        .set((
            conversations::unread_count.eq(i32::try_from(unread).unwrap_or(i32::MAX)),
            conversations::updated_at.eq(now),
        ))
        .returning(ConversationRow::as_returning())
        .get_result(conn)
        .await?)
}

/// The conversation of a phone and contact, if it exists (for the 24-hour
/// window check of outbound messages).
pub async fn conversation_of(
    conn: &mut AsyncPgConnection,
    phone_id: Uuid,
    contact_id: Uuid,
) -> StoreResult<Option<ConversationRow>> {
    Ok(conversations::table
        .filter(conversations::phone_id.eq(phone_id))
        .filter(conversations::contact_id.eq(contact_id))
        .select(ConversationRow::as_select())
        .first(conn)
        .await
        .optional()?)
}
