//! AccountService: register, me, rotate-key.
use tonic::{Request, Response, Status};

use super::convert;
use crate::app::App;
use crate::auth::principal;
use crate::domain::accounts::{self, RegisterInput};
use crate::domain::credentials::{self, CredentialsInputRaw};
use crate::domain::webhooks;
use crate::pb;

pub struct AccountApi {
    app: App,
}

impl AccountApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl pb::account_service_server::AccountService for AccountApi {
    async fn register(
        &self,
        req: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let r = req.into_inner();
        let reg = accounts::register(
            &self.app.store,
            RegisterInput {
                email: r.email,
                password: r.password,
                name: r.name,
            },
        )
        .await?;
        Ok(Response::new(pb::RegisterResponse {
            data: Some(pb::Registration {
                api_key: reg.api_key,
                organization: Some(convert::organization(&reg.org)),
                user: Some(convert::user(&reg.user)),
            }),
        }))
    }

    async fn get_me(
        &self,
        req: Request<pb::GetMeRequest>,
    ) -> Result<Response<pb::GetMeResponse>, Status> {
        let p = principal(&req)?;
        let v = accounts::me(&self.app.store, &p, self.app.sandbox).await?;
        let creds = credentials::get(&self.app, p.org_id()).await?;
        Ok(Response::new(pb::GetMeResponse {
            data: Some(pb::Account {
                organization: Some(convert::organization(&v.org)),
                user: v.user.as_ref().map(convert::user),
                plan: Some(convert::plan_limits(v.plan, v.limits)),
                usage: Some(pb::Usage {
                    messages_this_month: v.messages_this_month,
                    monthly_limit: v.limits.monthly_messages,
                    period_start: Some(convert::ts(v.period_start)),
                    reset_at: Some(convert::ts(v.reset_at)),
                }),
                onboarding: Some(convert::json_struct(&v.org.onboarding)),
                config: Some(pb::AccountConfig {
                    sandbox: v.sandbox,
                    credentials_configured: creds.configured,
                    credentials_verified: creds.verified_at.is_some(),
                    phone_number_id: creds.phone_number_id,
                    waba_id: creds.waba_id,
                    webhook_url: webhooks::forward_url(&self.app, p.org_id()).await?,
                }),
            }),
        }))
    }

    async fn rotate_key(
        &self,
        req: Request<pb::RotateKeyRequest>,
    ) -> Result<Response<pb::RotateKeyResponse>, Status> {
        let p = principal(&req)?;
        let k = accounts::rotate_key(&self.app.store, &p).await?;
        Ok(Response::new(pb::RotateKeyResponse {
            data: Some(convert::api_key_secret(&k.row, k.secret)),
        }))
    }

    async fn set_credentials(
        &self,
        req: Request<pb::SetCredentialsRequest>,
    ) -> Result<Response<pb::SetCredentialsResponse>, Status> {
        let org = principal(&req)?.org_id();
        let r = req.into_inner();
        let view = credentials::set(
            &self.app,
            org,
            CredentialsInputRaw {
                access_token: r.access_token,
                phone_number_id: r.phone_number_id,
                waba_id: r.waba_id,
            },
        )
        .await?;
        Ok(Response::new(pb::SetCredentialsResponse {
            data: Some(convert::credentials(&view)),
        }))
    }

    async fn delete_credentials(
        &self,
        req: Request<pb::DeleteCredentialsRequest>,
    ) -> Result<Response<pb::DeleteCredentialsResponse>, Status> {
        let org = principal(&req)?.org_id();
        let view = credentials::delete(&self.app, org).await?;
        Ok(Response::new(pb::DeleteCredentialsResponse {
            data: Some(convert::credentials(&view)),
        }))
    }

    async fn verify_credentials(
        &self,
        req: Request<pb::VerifyCredentialsRequest>,
    ) -> Result<Response<pb::VerifyCredentialsResponse>, Status> {
        let org = principal(&req)?.org_id();
        let d = credentials::verify(&self.app, org).await?;
        Ok(Response::new(pb::VerifyCredentialsResponse {
            data: Some(convert::diagnostics(&d)),
        }))
    }

    async fn set_webhook(
        &self,
        req: Request<pb::SetWebhookRequest>,
    ) -> Result<Response<pb::SetWebhookResponse>, Status> {
        let org = principal(&req)?.org_id();
        let r = req.into_inner();
        let v = webhooks::set_forward(&self.app, org, &r.url, r.secret).await?;
        Ok(Response::new(pb::SetWebhookResponse {
            data: Some(super::webhooks::webhook(&v)),
        }))
    }

    async fn delete_webhook(
        &self,
        req: Request<pb::DeleteWebhookRequest>,
    ) -> Result<Response<pb::DeleteWebhookResponse>, Status> {
        let org = principal(&req)?.org_id();
        webhooks::delete_forward(&self.app, org).await?;
        Ok(Response::new(pb::DeleteWebhookResponse {}))
    }
}
