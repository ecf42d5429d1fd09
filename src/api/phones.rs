//! PhoneService and WabaService: list, get, health.
use tonic::{Request, Response, Status};

use super::convert;
use crate::app::App;
use crate::auth::principal;
use crate::domain::{phones, validate};
use crate::pb;

pub struct PhoneApi {
    app: App,
}

impl PhoneApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl pb::phone_service_server::PhoneService for PhoneApi {
    async fn list_phones(
        &self,
        req: Request<pb::ListPhonesRequest>,
    ) -> Result<Response<pb::ListPhonesResponse>, Status> {
        let org = principal(&req)?.org_id();
        let r = req.into_inner();
        let page = validate::page(r.page, r.limit)?;
        let waba = match r.waba_id.trim() {
            "" => None,
            w => Some(validate::uuid("wabaId", w)?),
        };
        let (rows, total) = phones::list_phones(&self.app.store, org, waba, page).await?;
        Ok(Response::new(pb::ListPhonesResponse {
            data: rows.iter().map(convert::phone).collect(),
            meta: Some(convert::list_meta(page, total)),
        }))
    }

    async fn get_phone(
        &self,
        req: Request<pb::GetPhoneRequest>,
    ) -> Result<Response<pb::GetPhoneResponse>, Status> {
        let org = principal(&req)?.org_id();
        let id = validate::uuid("phoneId", &req.into_inner().phone_id)?;
        let row = phones::get_phone(&self.app.store, org, id).await?;
        Ok(Response::new(pb::GetPhoneResponse {
            data: Some(convert::phone(&row)),
        }))
    }

    async fn get_phone_health(
        &self,
        req: Request<pb::GetPhoneHealthRequest>,
    ) -> Result<Response<pb::GetPhoneHealthResponse>, Status> {
        let org = principal(&req)?.org_id();
        let id = validate::uuid("phoneId", &req.into_inner().phone_id)?;
        let view = phones::health(&self.app, org, id).await?;
        Ok(Response::new(pb::GetPhoneHealthResponse {
            data: Some(convert::phone_health(&view)),
        }))
    }
}

pub struct WabaApi {
    app: App,
}

impl WabaApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl pb::waba_service_server::WabaService for WabaApi {
    async fn list_wabas(
        &self,
        req: Request<pb::ListWabasRequest>,
    ) -> Result<Response<pb::ListWabasResponse>, Status> {
        let org = principal(&req)?.org_id();
        let r = req.into_inner();
        let page = validate::page(r.page, r.limit)?;
        let (rows, total) = phones::list_wabas(&self.app.store, org, page).await?;
        Ok(Response::new(pb::ListWabasResponse {
            data: rows.iter().map(|(w, n)| convert::waba(w, *n)).collect(),
            meta: Some(convert::list_meta(page, total)),
        }))
    }

    async fn get_waba(
        &self,
        req: Request<pb::GetWabaRequest>,
    ) -> Result<Response<pb::GetWabaResponse>, Status> {
        let org = principal(&req)?.org_id();
        let id = validate::uuid("wabaId", &req.into_inner().waba_id)?;
        let (w, n) = phones::get_waba(&self.app.store, org, id).await?;
        Ok(Response::new(pb::GetWabaResponse {
            data: Some(convert::waba(&w, n)),
        }))
    }

    async fn list_waba_updates(
        &self,
        req: Request<pb::ListWabaUpdatesRequest>,
    ) -> Result<Response<pb::ListWabaUpdatesResponse>, Status> {
        let org = principal(&req)?.org_id();
        let r = req.into_inner();
        let id = validate::uuid("wabaId", &r.waba_id)?;
        let page = validate::page(r.page, r.limit)?;
        let field = r.field.as_deref().map(str::trim).filter(|f| !f.is_empty());
        let (rows, total) =
            crate::domain::inbound::waba_updates(&self.app.store, org, id, field, page).await?;
        Ok(Response::new(pb::ListWabaUpdatesResponse {
            data: rows
                .iter()
                .map(|u| pb::WabaUpdate {
                    id: u.id.to_string(),
                    waba_id: u.waba_id.to_string(),
                    phone_id: u.phone_id.map(|p| p.to_string()),
                    field: u.field.clone(),
                    event: u.event.clone(),
                    value: Some(convert::json_struct(&u.value)),
                    occurred_at: Some(convert::ts(u.occurred_at)),
                    received_at: Some(convert::ts(u.received_at)),
                })
                .collect(),
            meta: Some(convert::list_meta(page, total)),
        }))
    }
}
