//! API keys: stored only as a SHA-256 hash with a visible prefix.
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::api_keys;
use super::{PageRequest, Store, StoreError, StoreResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys, check_for_backend(diesel::pg::Pg))]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub key_hash: Vec<u8>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Store {
    /// The active key with this hash, if any.
    /// The active key with this hash (served from memory while coherent).
    pub async fn find_active_key(&self, key_hash: &[u8]) -> StoreResult<Option<ApiKeyRow>> {
        self.caches
            .keys
            .get_or_read(&self.caches.invalidation, key_hash.to_vec(), async || {
                let mut conn = self.conn().await?;
                Ok(api_keys::table
                    .filter(api_keys::key_hash.eq(key_hash))
                    .filter(api_keys::revoked_at.is_null())
                    .select(ApiKeyRow::as_select())
                    .first(&mut conn)
                    .await
                    .optional()?)
            })
            .await
    }

    /// Records a use of the key, at most once a minute (per instance in
    /// memory, and per database by the filter) to keep writes rare.
    pub async fn touch_key(&self, key_id: Uuid) -> StoreResult<()> {
        if let Ok(mut touched) = self.caches.touched.lock() {
            let now = std::time::Instant::now();
            match touched.get(&key_id) {
                Some(at) if now.duration_since(*at) < std::time::Duration::from_secs(60) => {
                    return Ok(());
                }
                _ => {
                    if touched.len() >= 10_000 {
                        touched.clear();
                    }
                    touched.insert(key_id, now);
                }
            }
        }
        let mut conn = self.conn().await?;
        diesel::update(api_keys::table.find(key_id))
            .filter(
                api_keys::last_used_at
                    .is_null()
                    .or(api_keys::last_used_at.lt(Utc::now() - chrono::Duration::minutes(1))),
            )
            .set(api_keys::last_used_at.eq(diesel::dsl::now))
            .execute(&mut conn)
            .await?;
        Ok(())
    }

    pub async fn insert_key(&self, key: &ApiKeyRow) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        diesel::insert_into(api_keys::table)
            .values(key)
            .execute(&mut conn)
            .await?;
        Ok(())
    }

    pub async fn list_keys(
        &self,
        org_id: Uuid,
        page: PageRequest,
    ) -> StoreResult<(Vec<ApiKeyRow>, i64)> {
        let mut conn = self.conn().await?;
        let total = api_keys::table
            .filter(api_keys::org_id.eq(org_id))
            .count()
            .get_result(&mut conn)
            .await?;
        let rows = api_keys::table
            .filter(api_keys::org_id.eq(org_id))
            .order((api_keys::created_at.desc(), api_keys::id))
            .limit(page.limit)
            .offset(page.offset())
            .select(ApiKeyRow::as_select())
            .load(&mut conn)
            .await?;
        Ok((rows, total))
    }

    pub async fn get_key(&self, org_id: Uuid, key_id: Uuid) -> StoreResult<Option<ApiKeyRow>> {
        let mut conn = self.conn().await?;
        Ok(api_keys::table
            .filter(api_keys::org_id.eq(org_id))
            .filter(api_keys::id.eq(key_id))
            .select(ApiKeyRow::as_select())
            .first(&mut conn)
            .await
            .optional()?)
    }

    /// Revokes the key (idempotent), unless it is the organization's last
    /// active one.
    pub async fn revoke_key(&self, org_id: Uuid, key_id: Uuid) -> StoreResult<KeyRevocation> {
        let mut conn = self.conn().await?;
        let outcome = conn
            .transaction::<_, StoreError, _>(async |c| {
                // The organization's active keys, locked: two revocations at
                // once cannot each leave the other as the last.
                let active: Vec<Uuid> = api_keys::table
                    .filter(api_keys::org_id.eq(org_id))
                    .filter(api_keys::revoked_at.is_null())
                    .order(api_keys::id)
                    .select(api_keys::id)
                    .for_update()
                    .load(c)
                    .await?;
                if active.contains(&key_id) {
                    if active.len() == 1 {
                        return Ok(Some(KeyRevocation::LastActive));
                    }
                    diesel::update(api_keys::table.find(key_id))
                        .set(api_keys::revoked_at.eq(diesel::dsl::now))
                        .execute(c)
                        .await?;
                }
                Ok(None)
            })
            .await?;
        if let Some(refused) = outcome {
            return Ok(refused);
        }
        drop(conn);
        self.changed();
        Ok(match self.get_key(org_id, key_id).await? {
            Some(row) => KeyRevocation::Revoked(row),
            None => KeyRevocation::NotFound,
        })
    }

    /// Revokes `old_key_id` and inserts `new_key` in one transaction. Returns
    /// false (and changes nothing) when the old key was not active.
    pub async fn rotate_key(
        &self,
        org_id: Uuid,
        old_key_id: Uuid,
        new_key: &ApiKeyRow,
    ) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let rotated = conn
            .transaction::<_, StoreError, _>(async |c| {
                let revoked = diesel::update(api_keys::table)
                    .filter(api_keys::org_id.eq(org_id))
                    .filter(api_keys::id.eq(old_key_id))
                    .filter(api_keys::revoked_at.is_null())
                    .set(api_keys::revoked_at.eq(diesel::dsl::now))
                    .execute(c)
                    .await?;
                if revoked == 0 {
                    return Ok(false);
                }
                diesel::insert_into(api_keys::table)
                    .values(new_key)
                    .execute(c)
                    .await?;
                Ok(true)
            })
            .await;
        self.changed();
        rotated
    }
}

/// What revoking a key did.
#[derive(Debug)]
pub enum KeyRevocation {
    /// Revoked now or before: the key as it stands.
    Revoked(ApiKeyRow),
    /// The organization has no such key.
    NotFound,
    /// Not revoked: it is the organization's last active key, and keys are
    /// its only way in.
    LastActive,
}
