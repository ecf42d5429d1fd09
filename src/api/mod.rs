//! gRPC services, one file per proto service. Each handler authenticates
//! (the layer did it), validates into domain values, calls one domain
//! function and maps the result; errors become `Status` in `status.rs`.
pub mod accounts;
pub mod api_keys;
pub mod conversations;
pub mod convert;
pub mod phones;
pub mod status;

use crate::app::App;
use crate::pb;

/// Every wagate gRPC service, plus the standard health and reflection
/// services; also returns the names of the wagate services mounted, so the
/// REST transcoder can refuse rules whose service is missing.
pub async fn grpc_routes(app: &App) -> anyhow::Result<(tonic::service::Routes, Vec<&'static str>)> {
    use pb::{
        account_service_server::AccountServiceServer, api_key_service_server::ApiKeyServiceServer,
        phone_service_server::PhoneServiceServer, waba_service_server::WabaServiceServer,
    };
    use pb::conversation_service_server::ConversationServiceServer;
    use tonic::server::NamedService;

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<AccountServiceServer<accounts::AccountApi>>()
        .await;
    health_reporter
        .set_serving::<ApiKeyServiceServer<api_keys::ApiKeyApi>>()
        .await;
    health_reporter
        .set_serving::<PhoneServiceServer<phones::PhoneApi>>()
        .await;
    health_reporter
        .set_serving::<WabaServiceServer<phones::WabaApi>>()
        .await;
    health_reporter
        .set_serving::<ConversationServiceServer<conversations::ConversationApi>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::DESCRIPTOR)
        .build_v1()?;
    let served = vec![
        <AccountServiceServer<accounts::AccountApi> as NamedService>::NAME,
        <ApiKeyServiceServer<api_keys::ApiKeyApi> as NamedService>::NAME,
        <PhoneServiceServer<phones::PhoneApi> as NamedService>::NAME,
        <WabaServiceServer<phones::WabaApi> as NamedService>::NAME,
        <ConversationServiceServer<conversations::ConversationApi> as NamedService>::NAME,
    ];
    let mut builder = tonic::service::Routes::builder();
    builder
        .add_service(AccountServiceServer::new(accounts::AccountApi::new(
            app.clone(),
        )))
        .add_service(ApiKeyServiceServer::new(api_keys::ApiKeyApi::new(
            app.clone(),
        )))
        .add_service(PhoneServiceServer::new(phones::PhoneApi::new(app.clone())))
        .add_service(WabaServiceServer::new(phones::WabaApi::new(app.clone())))
        .add_service(ConversationServiceServer::new(
            conversations::ConversationApi::new(app.clone()),
        ))
        .add_service(health)
        .add_service(reflection);
    Ok((builder.routes(), served))
}
