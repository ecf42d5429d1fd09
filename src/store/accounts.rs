//! Organizations, users and usage counters.
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use uuid::Uuid;

use super::api_keys::ApiKeyRow;
use super::schema::{api_keys, messages, organizations, users};
use super::{Store, StoreError, StoreResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = organizations, check_for_backend(diesel::pg::Pg))]
pub struct OrgRow {
    pub id: Uuid,
    pub name: String,
    pub plan: String,
    pub onboarding: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// Creates an organization with its first user and first API key, atomically.
    pub async fn create_account(
        &self,
        org: &OrgRow,
        user: &UserRow,
        key: &ApiKeyRow,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        conn.transaction::<_, StoreError, _>(async |c| {
            diesel::insert_into(organizations::table)
                .values(org)
                .execute(c)
                .await?;
            diesel::insert_into(users::table)
                .values(user)
                .execute(c)
                .await?;
            diesel::insert_into(api_keys::table)
                .values(key)
                .execute(c)
                .await?;
            Ok(())
        })
        .await
    }

    pub async fn get_org(&self, org_id: Uuid) -> StoreResult<Option<OrgRow>> {
        let mut conn = self.conn().await?;
        Ok(organizations::table
            .find(org_id)
            .select(OrgRow::as_select())
            .first(&mut conn)
            .await
            .optional()?)
    }

    /// The organization's first user (its owner).
    pub async fn owner_user(&self, org_id: Uuid) -> StoreResult<Option<UserRow>> {
        let mut conn = self.conn().await?;
        Ok(users::table
            .filter(users::org_id.eq(org_id))
            .order(users::created_at.asc())
            .select(UserRow::as_select())
            .first(&mut conn)
            .await
            .optional()?)
    }

    /// Outbound messages accepted for the organization since `since` (the
    /// usage counter; counted from the messages, so sending writes no hot row).
    pub async fn usage(&self, org_id: Uuid, since: DateTime<Utc>) -> StoreResult<i64> {
        let mut conn = self.conn().await?;
        Ok(messages::table
            .filter(messages::org_id.eq(org_id))
            .filter(messages::created_at.ge(since))
            .filter(messages::direction.eq("outbound"))
            .count()
            .get_result(&mut conn)
            .await?)
    }
}

impl Store {
    /// Returns false when there is no such organization.
    pub async fn set_plan(&self, org_id: Uuid, plan: &str) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let n = diesel::update(organizations::table.find(org_id))
            .set((
                organizations::plan.eq(plan),
                organizations::updated_at.eq(diesel::dsl::now),
            ))
            .execute(&mut conn)
            .await?;
        Ok(n == 1)
    }
}
