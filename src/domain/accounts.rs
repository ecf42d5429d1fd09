//! Registration and the account view.
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use uuid::Uuid;

use super::api_keys::NewApiKey;
use super::plans::{Plan, PlanLimits};
use super::{DomainError, DomainResult, validate};
use crate::auth::{Principal, keys, password};
use crate::store::accounts::{OrgRow, UserRow};
use crate::store::api_keys::ApiKeyRow;
use crate::store::{Store, StoreError};

pub struct RegisterInput {
    pub email: String,
    pub password: String,
    pub name: String,
}

pub struct Registration {
    pub api_key: String,
    pub org: OrgRow,
    pub user: UserRow,
}

/// Validates everything before writing anything; then creates the
/// organization (free plan), its owner and its first key in one transaction.
pub async fn register(store: &Store, input: RegisterInput) -> DomainResult<Registration> {
    let email = validate::email(&input.email)?;
    let pass = validate::password(&input.password)?;
    let name = validate::required_text("name", &input.name, 200)?;
    let password_hash = password::hash(pass).await?;
    let now = Utc::now();
    let org = OrgRow {
        id: Uuid::new_v4(),
        name: name.clone(),
        plan: Plan::Basic.as_str().to_owned(),
        onboarding: serde_json::json!({}),
        created_at: now,
        updated_at: now,
    };
    let user = UserRow {
        id: Uuid::new_v4(),
        org_id: org.id,
        email,
        name,
        role: "owner".into(),
        password_hash,
        created_at: now,
        updated_at: now,
    };
    let key = keys::generate();
    let key_row = ApiKeyRow {
        id: Uuid::new_v4(),
        org_id: org.id,
        name: "Default".into(),
        prefix: key.prefix,
        key_hash: key.hash,
        created_by: Some(user.id),
        created_at: now,
        last_used_at: None,
        revoked_at: None,
    };
    match store.create_account(&org, &user, &key_row).await {
        Ok(()) => Ok(Registration {
            api_key: key.secret,
            org,
            user,
        }),
        Err(StoreError::Duplicate(_)) => Err(DomainError::Conflict(
            "an account with this email already exists".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

pub struct AccountView {
    pub org: OrgRow,
    pub plan: Plan,
    pub limits: PlanLimits,
    pub user: Option<UserRow>,
    pub messages_this_month: i64,
    pub period_start: DateTime<Utc>,
    pub reset_at: DateTime<Utc>,
    pub sandbox: bool,
}

pub async fn me(store: &Store, principal: &Principal, sandbox: bool) -> DomainResult<AccountView> {
    let org_id = principal.org_id();
    let org = store
        .get_org(org_id)
        .await?
        .ok_or(DomainError::NotFound("organization"))?;
    let plan = Plan::parse(&org.plan)
        .ok_or_else(|| anyhow::anyhow!("organization {org_id} has unknown plan {:?}", org.plan))?;
    let user = store.owner_user(org_id).await?;
    let (_, period_start, reset_at) = current_period(Utc::now());
    let messages_this_month = store.usage(org_id, period_start).await?;
    Ok(AccountView {
        limits: plan.limits(),
        plan,
        org,
        user,
        messages_this_month,
        period_start,
        reset_at,
        sandbox,
    })
}

/// Rotates the calling key: a new key is created and the caller's key is
/// revoked in the same transaction.
pub async fn rotate_key(store: &Store, principal: &Principal) -> DomainResult<NewApiKey> {
    let Principal::ApiKey { org_id, key_id } = principal;
    let old = store
        .get_key(*org_id, *key_id)
        .await?
        .ok_or(DomainError::Unauthorized)?;
    let (row, secret) = super::api_keys::new_row(*org_id, old.name.clone(), old.created_by);
    if !store.rotate_key(*org_id, *key_id, &row).await? {
        return Err(DomainError::Unauthorized);
    }
    Ok(NewApiKey { row, secret })
}

/// The calendar month (UTC) containing `now`: (first day, start, next start).
fn current_period(now: DateTime<Utc>) -> (NaiveDate, DateTime<Utc>, DateTime<Utc>) {
    let first = NaiveDate::from_ymd_opt(now.year(), now.month(), 1).unwrap_or(now.date_naive());
    let next = if now.month() == 12 {
        NaiveDate::from_ymd_opt(now.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(now.year(), now.month() + 1, 1)
    }
    .unwrap_or(first);
    let at = |d: NaiveDate| Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN));
    (first, at(first), at(next))
}

/// Operator action: move an organization to another plan.
pub async fn set_plan(store: &Store, org_id: Uuid, plan: Plan) -> DomainResult<()> {
    if store.set_plan(org_id, plan.as_str()).await? {
        Ok(())
    } else {
        Err(DomainError::NotFound("organization"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_calendar_months() {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 31, 23, 0, 0)
            .single()
            .expect("date");
        let (first, start, reset) = current_period(now);
        assert_eq!(first.to_string(), "2026-12-01");
        assert_eq!(start.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(reset.to_rfc3339(), "2027-01-01T00:00:00+00:00");
    }
}
