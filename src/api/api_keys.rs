//! ApiKeyService: list, create, get, revoke.
use tonic::{Request, Response, Status};

use super::convert;
use crate::app::App;
use crate::auth::principal;
use crate::domain::{api_keys, validate};
use crate::pb;

pub struct ApiKeyApi {
    app: App,
}

impl ApiKeyApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl pb::api_key_service_server::ApiKeyService for ApiKeyApi {
    async fn list_api_keys(
        &self,
        req: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let org = principal(&req)?.org_id();
        let r = req.into_inner();
        let page = validate::page(r.page, r.limit)?;
        let (rows, total) = api_keys::list(&self.app.store, org, page).await?;
        Ok(Response::new(pb::ListApiKeysResponse {
            data: rows.iter().map(convert::api_key).collect(),
            meta: Some(convert::list_meta(page, total)),
        }))
    }

    async fn create_api_key(
        &self,
        req: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let org = principal(&req)?.org_id();
        let k = api_keys::create(&self.app.store, org, &req.into_inner().name).await?;
        Ok(Response::new(pb::CreateApiKeyResponse {
            data: Some(convert::api_key_secret(&k.row, k.secret)),
        }))
    }

    async fn get_api_key(
        &self,
        req: Request<pb::GetApiKeyRequest>,
    ) -> Result<Response<pb::GetApiKeyResponse>, Status> {
        let org = principal(&req)?.org_id();
        let id = validate::uuid("keyId", &req.into_inner().key_id)?;
        let row = api_keys::get(&self.app.store, org, id).await?;
        Ok(Response::new(pb::GetApiKeyResponse {
            data: Some(convert::api_key(&row)),
        }))
    }

    async fn delete_api_key(
        &self,
        req: Request<pb::DeleteApiKeyRequest>,
    ) -> Result<Response<pb::DeleteApiKeyResponse>, Status> {
        let org = principal(&req)?.org_id();
        let id = validate::uuid("keyId", &req.into_inner().key_id)?;
        let row = api_keys::revoke(&self.app.store, org, id).await?;
        Ok(Response::new(pb::DeleteApiKeyResponse {
            data: Some(convert::api_key(&row)),
        }))
    }
}
