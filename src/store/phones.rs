//! WABAs and phone numbers, with their credentials and health snapshot.
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{phone_numbers, wabas};
use super::{PageRequest, Store, StoreError, StoreResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = wabas, check_for_backend(diesel::pg::Pg))]
pub struct WabaRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub meta_waba_id: Option<String>,
    pub name: Option<String>,
    pub source: String,
    pub access_token_enc: Option<Vec<u8>>,
    pub token_last4: Option<String>,
    pub verified_at: Option<DateTime<Utc>>,
    pub restrictions: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = phone_numbers, check_for_backend(diesel::pg::Pg))]
pub struct PhoneRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub waba_id: Uuid,
    pub meta_phone_number_id: String,
    pub display_phone_number: Option<String>,
    pub verified_name: Option<String>,
    pub is_default: bool,
    pub metadata: serde_json::Value,
    pub status: Option<String>,
    pub is_registered: bool,
    pub quality_rating: Option<String>,
    pub throughput_level: Option<String>,
    pub messaging_limit: Option<String>,
    pub name_status: Option<String>,
    pub code_verification_status: Option<String>,
    pub health_status: Option<serde_json::Value>,
    pub app_subscribed: Option<bool>,
    pub token_valid: Option<bool>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub last_sync_error: Option<String>,
    pub throughput_mps: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a resync learned from Meta. `None` fields are left as they were.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = phone_numbers)]
pub struct PhoneHealthUpdate {
    pub display_phone_number: Option<String>,
    pub verified_name: Option<String>,
    pub status: Option<String>,
    pub is_registered: Option<bool>,
    pub quality_rating: Option<String>,
    pub throughput_level: Option<String>,
    pub messaging_limit: Option<String>,
    pub name_status: Option<String>,
    pub code_verification_status: Option<String>,
    pub health_status: Option<serde_json::Value>,
    pub app_subscribed: Option<bool>,
    pub token_valid: Option<bool>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub last_sync_error: Option<Option<String>>,
    pub throughput_mps: Option<i32>,
}

/// Credentials as the store keeps them.
pub struct CredentialsInput<'a> {
    pub meta_phone_number_id: &'a str,
    pub meta_waba_id: Option<&'a str>,
    pub token_enc: Vec<u8>,
    pub token_last4: String,
}

impl Store {
    /// Stores (or replaces) the organization's own credentials: its
    /// credentials WABA and the phone they name, which becomes the default.
    /// Fails with `Duplicate("phone_numbers_meta_key")` when another
    /// organization owns that phone number id.
    pub async fn set_credentials(
        &self,
        org_id: Uuid,
        input: CredentialsInput<'_>,
    ) -> StoreResult<(WabaRow, PhoneRow)> {
        let mut conn = self.conn().await?;
        let result = conn
            .transaction::<_, StoreError, _>(async |c| {
                let now = Utc::now();
                if let Some(meta_waba) = input.meta_waba_id {
                    claim_waba(c, org_id, meta_waba).await?;
                }
                let existing: Option<WabaRow> = wabas::table
                    .filter(wabas::org_id.eq(org_id))
                    .filter(wabas::source.eq("credentials"))
                    .select(WabaRow::as_select())
                    .for_update()
                    .first(c)
                    .await
                    .optional()?;
                let waba = match existing {
                    Some(w) => {
                        diesel::update(wabas::table.find(w.id))
                            .set((
                                wabas::meta_waba_id.eq(input.meta_waba_id),
                                wabas::access_token_enc.eq(Some(&input.token_enc)),
                                wabas::token_last4.eq(Some(&input.token_last4)),
                                wabas::verified_at.eq(None::<DateTime<Utc>>),
                                wabas::updated_at.eq(now),
                            ))
                            .returning(WabaRow::as_returning())
                            .get_result(c)
                            .await?
                    }
                    None => {
                        let row = WabaRow {
                            id: Uuid::new_v4(),
                            org_id,
                            meta_waba_id: input.meta_waba_id.map(str::to_owned),
                            name: None,
                            source: "credentials".into(),
                            access_token_enc: Some(input.token_enc.clone()),
                            token_last4: Some(input.token_last4.clone()),
                            verified_at: None,
                            restrictions: serde_json::json!([]),
                            created_at: now,
                            updated_at: now,
                        };
                        diesel::insert_into(wabas::table)
                            .values(&row)
                            .returning(WabaRow::as_returning())
                            .get_result(c)
                            .await?
                    }
                };
                let phone: Option<PhoneRow> = phone_numbers::table
                    .filter(phone_numbers::meta_phone_number_id.eq(input.meta_phone_number_id))
                    .select(PhoneRow::as_select())
                    .for_update()
                    .first(c)
                    .await
                    .optional()?;
                if phone.as_ref().is_some_and(|p| p.org_id != org_id) {
                    return Err(StoreError::Duplicate("phone_numbers_meta_key".into()));
                }
                diesel::update(phone_numbers::table)
                    .filter(phone_numbers::org_id.eq(org_id))
                    .filter(phone_numbers::is_default)
                    .set(phone_numbers::is_default.eq(false))
                    .execute(c)
                    .await?;
                let phone = match phone {
                    Some(p) => {
                        diesel::update(phone_numbers::table.find(p.id))
                            .set((
                                phone_numbers::waba_id.eq(waba.id),
                                phone_numbers::is_default.eq(true),
                                phone_numbers::token_valid.eq(None::<bool>),
                                // Learned with the previous credentials; unknown again.
                                phone_numbers::app_subscribed.eq(None::<bool>),
                                phone_numbers::updated_at.eq(now),
                            ))
                            .returning(PhoneRow::as_returning())
                            .get_result(c)
                            .await?
                    }
                    None => {
                        let row = new_phone(org_id, waba.id, input.meta_phone_number_id, true, now);
                        diesel::insert_into(phone_numbers::table)
                            .values(&row)
                            .returning(PhoneRow::as_returning())
                            .get_result(c)
                            .await?
                    }
                };
                Ok((waba, phone))
            })
            .await;
        self.changed();
        result
    }

    /// Forgets the organization's access token. Returns false when it had no
    /// credentials. Phones and their history stay.
    pub async fn delete_credentials(&self, org_id: Uuid) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let n = diesel::update(wabas::table)
            .filter(wabas::org_id.eq(org_id))
            .filter(wabas::source.eq("credentials"))
            .filter(wabas::access_token_enc.is_not_null())
            .set((
                wabas::access_token_enc.eq(None::<Vec<u8>>),
                wabas::token_last4.eq(None::<String>),
                wabas::verified_at.eq(None::<DateTime<Utc>>),
                wabas::updated_at.eq(diesel::dsl::now),
            ))
            .execute(&mut conn)
            .await?;
        self.changed();
        Ok(n > 0)
    }

    /// The credentials WABA and its default (or first) phone.
    pub async fn credentials(
        &self,
        org_id: Uuid,
    ) -> StoreResult<Option<(WabaRow, Option<PhoneRow>)>> {
        let mut conn = self.conn().await?;
        let waba: Option<WabaRow> = wabas::table
            .filter(wabas::org_id.eq(org_id))
            .filter(wabas::source.eq("credentials"))
            .select(WabaRow::as_select())
            .first(&mut conn)
            .await
            .optional()?;
        let Some(waba) = waba else {
            return Ok(None);
        };
        let phone = phone_numbers::table
            .filter(phone_numbers::waba_id.eq(waba.id))
            .order((
                phone_numbers::is_default.desc(),
                phone_numbers::updated_at.desc(),
            ))
            .select(PhoneRow::as_select())
            .first(&mut conn)
            .await
            .optional()?;
        Ok(Some((waba, phone)))
    }

    pub async fn mark_verified(&self, waba_id: Uuid, verified: bool) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let at = verified.then(Utc::now);
        diesel::update(wabas::table.find(waba_id))
            .set(wabas::verified_at.eq(at))
            .execute(&mut conn)
            .await?;
        self.changed();
        Ok(())
    }

    pub async fn list_wabas(
        &self,
        org_id: Uuid,
        page: PageRequest,
    ) -> StoreResult<(Vec<(WabaRow, i64)>, i64)> {
        let mut conn = self.conn().await?;
        let total = wabas::table
            .filter(wabas::org_id.eq(org_id))
            .count()
            .get_result(&mut conn)
            .await?;
        let rows: Vec<WabaRow> = wabas::table
            .filter(wabas::org_id.eq(org_id))
            .order((wabas::created_at.asc(), wabas::id))
            .limit(page.limit)
            .offset(page.offset())
            .select(WabaRow::as_select())
            .load(&mut conn)
            .await?;
        let ids: Vec<Uuid> = rows.iter().map(|w| w.id).collect();
        let counts: Vec<(Uuid, i64)> = phone_numbers::table
            .filter(phone_numbers::waba_id.eq_any(&ids))
            .group_by(phone_numbers::waba_id)
            .select((phone_numbers::waba_id, diesel::dsl::count_star()))
            .load(&mut conn)
            .await?;
        let with_counts = rows
            .into_iter()
            .map(|w| {
                let n = counts
                    .iter()
                    .find(|(id, _)| *id == w.id)
                    .map_or(0, |(_, n)| *n);
                (w, n)
            })
            .collect();
        Ok((with_counts, total))
    }

    pub async fn get_waba(
        &self,
        org_id: Uuid,
        waba_id: Uuid,
    ) -> StoreResult<Option<(WabaRow, i64)>> {
        let mut conn = self.conn().await?;
        let waba: Option<WabaRow> = wabas::table
            .filter(wabas::org_id.eq(org_id))
            .filter(wabas::id.eq(waba_id))
            .select(WabaRow::as_select())
            .first(&mut conn)
            .await
            .optional()?;
        let Some(waba) = waba else {
            return Ok(None);
        };
        let n = phone_numbers::table
            .filter(phone_numbers::waba_id.eq(waba.id))
            .count()
            .get_result(&mut conn)
            .await?;
        Ok(Some((waba, n)))
    }

    pub async fn list_phones(
        &self,
        org_id: Uuid,
        waba_id: Option<Uuid>,
        page: PageRequest,
    ) -> StoreResult<(Vec<PhoneRow>, i64)> {
        let mut conn = self.conn().await?;
        let filtered = || {
            let mut q = phone_numbers::table
                .filter(phone_numbers::org_id.eq(org_id))
                .into_boxed();
            if let Some(w) = waba_id {
                q = q.filter(phone_numbers::waba_id.eq(w));
            }
            q
        };
        let total = filtered().count().get_result(&mut conn).await?;
        if page.beyond(total) {
            return Ok((Vec::new(), total));
        }
        let rows = filtered()
            .order((phone_numbers::created_at.asc(), phone_numbers::id))
            .limit(page.limit)
            .offset(page.offset())
            .select(PhoneRow::as_select())
            .load(&mut conn)
            .await?;
        Ok((rows, total))
    }

    pub async fn get_phone(&self, org_id: Uuid, phone_id: Uuid) -> StoreResult<Option<PhoneRow>> {
        let mut conn = self.conn().await?;
        Ok(phone_numbers::table
            .filter(phone_numbers::org_id.eq(org_id))
            .filter(phone_numbers::id.eq(phone_id))
            .select(PhoneRow::as_select())
            .first(&mut conn)
            .await
            .optional()?)
    }

    /// A phone with its WABA, whatever the organization (for jobs).
    pub async fn phone_with_waba(
        &self,
        phone_id: Uuid,
    ) -> StoreResult<Option<(PhoneRow, WabaRow)>> {
        let mut conn = self.conn().await?;
        Ok(phone_numbers::table
            .inner_join(wabas::table)
            .filter(phone_numbers::id.eq(phone_id))
            .select((PhoneRow::as_select(), WabaRow::as_select()))
            .first(&mut conn)
            .await
            .optional()?)
    }

    pub async fn update_phone_health(
        &self,
        phone_id: Uuid,
        update: &PhoneHealthUpdate,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        diesel::update(phone_numbers::table.find(phone_id))
            .set((update, phone_numbers::updated_at.eq(diesel::dsl::now)))
            .execute(&mut conn)
            .await?;
        self.changed();
        Ok(())
    }
}

fn new_phone(
    org_id: Uuid,
    waba_id: Uuid,
    meta_id: &str,
    is_default: bool,
    now: DateTime<Utc>,
) -> PhoneRow {
    PhoneRow {
        id: Uuid::new_v4(),
        org_id,
        waba_id,
        meta_phone_number_id: meta_id.to_owned(),
        display_phone_number: None,
        verified_name: None,
        is_default,
        metadata: serde_json::json!({}),
        status: None,
        is_registered: false,
        quality_rating: None,
        throughput_level: None,
        messaging_limit: None,
        name_status: None,
        code_verification_status: None,
        health_status: None,
        app_subscribed: None,
        token_valid: None,
        last_synced_at: None,
        last_sync_error: None,
        throughput_mps: 80,
        created_at: now,
        updated_at: now,
    }
}

/// A WABA id belongs to one organization, as a phone number id does: its
/// template and account notices are routed to whoever holds it, so another
/// organization may not claim it by saving it with a token of its own.
/// Concurrent claims of one id queue on an advisory lock for the rest of
/// the transaction. Fails with `Duplicate("wabas_meta_key")`.
async fn claim_waba(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    meta_waba_id: &str,
) -> StoreResult<()> {
    use diesel::sql_types::Text;
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended('wagate.waba:' || $1, 0))")
        .bind::<Text, _>(meta_waba_id)
        .execute(conn)
        .await?;
    let taken: bool = diesel::select(diesel::dsl::exists(
        wabas::table
            .filter(wabas::meta_waba_id.eq(meta_waba_id))
            .filter(wabas::org_id.ne(org_id)),
    ))
    .get_result(conn)
    .await?;
    if taken {
        return Err(StoreError::Duplicate(WABA_TAKEN.into()));
    }
    Ok(())
}

/// The constraint [`claim_waba`] keeps, as `StoreError::Duplicate` names it.
pub const WABA_TAKEN: &str = "wabas_meta_key";
