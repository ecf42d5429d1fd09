//! Several named API keys per organization.
use chrono::Utc;
use uuid::Uuid;

use super::{DomainError, DomainResult, validate};
use crate::auth::keys;
use crate::store::api_keys::{ApiKeyRow, KeyRevocation};
use crate::store::{PageRequest, Store};

/// A key just created, with its secret (shown once).
pub struct NewApiKey {
    pub row: ApiKeyRow,
    pub secret: String,
}

pub(crate) fn new_row(org_id: Uuid, name: String, created_by: Option<Uuid>) -> (ApiKeyRow, String) {
    let key = keys::generate();
    let row = ApiKeyRow {
        id: Uuid::new_v4(),
        org_id,
        name,
        prefix: key.prefix,
        key_hash: key.hash,
        created_by,
        created_at: Utc::now(),
        last_used_at: None,
        revoked_at: None,
    };
    (row, key.secret)
}

pub async fn create(store: &Store, org_id: Uuid, name: &str) -> DomainResult<NewApiKey> {
    let name = validate::required_text("name", name, 100)?;
    let (row, secret) = new_row(org_id, name, None);
    store.insert_key(&row).await?;
    Ok(NewApiKey { row, secret })
}

pub async fn list(
    store: &Store,
    org_id: Uuid,
    page: PageRequest,
) -> DomainResult<(Vec<ApiKeyRow>, i64)> {
    Ok(store.list_keys(org_id, page).await?)
}

pub async fn get(store: &Store, org_id: Uuid, key_id: Uuid) -> DomainResult<ApiKeyRow> {
    store
        .get_key(org_id, key_id)
        .await?
        .ok_or(DomainError::NotFound("API key"))
}

/// Revokes a key. The organization's last active key stays: with no
/// other key, nothing could sign in again (rotate it instead).
pub async fn revoke(store: &Store, org_id: Uuid, key_id: Uuid) -> DomainResult<ApiKeyRow> {
    match store.revoke_key(org_id, key_id).await? {
        KeyRevocation::Revoked(row) => Ok(row),
        KeyRevocation::NotFound => Err(DomainError::NotFound("API key")),
        KeyRevocation::LastActive => Err(DomainError::Conflict(
            "this is the organization's last active API key: create another key or rotate this one before revoking it".into(),
        )),
    }
}
