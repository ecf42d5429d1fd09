//! gRPC services, one file per proto service. Each handler authenticates
//! (the layer did it), validates into domain values, calls one domain
//! function and maps the result; errors become `Status` in `status.rs`.
pub mod accounts;
pub mod api_keys;
pub mod convert;
pub mod status;

use crate::app::App;
use crate::pb;

/// Every wagate gRPC service, plus the standard health and reflection services.
pub async fn grpc_routes(app: &App) -> anyhow::Result<tonic::service::Routes> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::account_service_server::AccountServiceServer<accounts::AccountApi>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::DESCRIPTOR)
        .build_v1()?;
    let mut builder = tonic::service::Routes::builder();
    builder
        .add_service(pb::account_service_server::AccountServiceServer::new(
            accounts::AccountApi::new(app.clone()),
        ))
        .add_service(pb::api_key_service_server::ApiKeyServiceServer::new(
            api_keys::ApiKeyApi::new(app.clone()),
        ))
        .add_service(health)
        .add_service(reflection);
    Ok(builder.routes())
}
