//! AccountService: register, me, rotate-key.
use tonic::{Request, Response, Status};

use super::convert;
use crate::app::App;
use crate::auth::principal;
use crate::domain::accounts::{self, RegisterInput};
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
                    credentials_configured: false,
                    credentials_verified: false,
                    phone_number_id: None,
                    waba_id: None,
                    webhook_url: None,
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
}
