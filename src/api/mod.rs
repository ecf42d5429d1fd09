//! gRPC services, one file per proto service. Each handler authenticates
//! (the layer did it), validates into domain values, calls one domain
//! function and maps the result; errors become `Status` in `status.rs`.
pub mod accounts;
pub mod api_keys;
pub mod codec;
pub mod conversations;
pub mod convert;
pub mod messages;
pub mod phones;
pub mod status;
pub mod unreadable;
pub mod webhooks;

use prost_reflect::DescriptorPool;

use crate::app::App;
use crate::pb;

/// Every wagate gRPC service, plus the standard health and reflection
/// services; also returns the names of the wagate services mounted, so the
/// REST transcoder can refuse rules whose service is missing. A request
/// message may be at most `max_message_bytes`, the REST body limit (tonic's
/// own default is 4 MiB: a bulk refused over REST went through over gRPC).
pub async fn grpc_routes(
    app: &App,
    max_message_bytes: usize,
) -> anyhow::Result<(tonic::service::Routes, Vec<&'static str>)> {
    use pb::account_service_server::AccountServiceServer;
    use pb::api_key_service_server::ApiKeyServiceServer;
    use pb::conversation_service_server::ConversationServiceServer;
    use pb::message_service_server::MessageServiceServer;
    use pb::outgoing_webhook_service_server::OutgoingWebhookServiceServer;
    use pb::phone_service_server::PhoneServiceServer;
    use pb::waba_service_server::WabaServiceServer;

    let mut m = Mount::new();
    m.add(
        AccountServiceServer::new(accounts::AccountApi::new(app.clone()))
            .max_decoding_message_size(max_message_bytes),
    )
    .await;
    m.add(
        ApiKeyServiceServer::new(api_keys::ApiKeyApi::new(app.clone()))
            .max_decoding_message_size(max_message_bytes),
    )
    .await;
    m.add(
        PhoneServiceServer::new(phones::PhoneApi::new(app.clone()))
            .max_decoding_message_size(max_message_bytes),
    )
    .await;
    m.add(
        WabaServiceServer::new(phones::WabaApi::new(app.clone()))
            .max_decoding_message_size(max_message_bytes),
    )
    .await;
    m.add(
        ConversationServiceServer::new(conversations::ConversationApi::new(app.clone()))
            .max_decoding_message_size(max_message_bytes),
    )
    .await;
    m.add(
        MessageServiceServer::new(messages::MessageApi::new(app.clone()))
            .max_decoding_message_size(max_message_bytes),
    )
    .await;
    m.add(
        OutgoingWebhookServiceServer::new(webhooks::OutgoingWebhookApi::new(app.clone()))
            .max_decoding_message_size(max_message_bytes),
    )
    .await;
    m.finish()
}

/// The path (`/package.Service/Method`) of every RPC the router from
/// [`grpc_routes`] serves: the methods of the wagate services `served`, read
/// from our descriptor set, and those of the standard health and reflection
/// services, read from theirs. Metrics give only these a label of their own.
pub fn method_paths(wagate: &DescriptorPool, served: &[&str]) -> anyhow::Result<Vec<String>> {
    let health = DescriptorPool::decode(tonic_health::pb::FILE_DESCRIPTOR_SET)?;
    let reflection = DescriptorPool::decode(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)?;
    let services = wagate
        .services()
        .filter(|s| served.contains(&s.full_name()))
        .chain(health.services())
        .chain(reflection.services());
    Ok(services
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .map(|m| crate::rest::routes::grpc_path(&m))
        .collect())
}

/// Mounts services and keeps the health service and the served list in step.
struct Mount {
    builder: tonic::service::RoutesBuilder,
    reporter: tonic_health::server::HealthReporter,
    served: Vec<&'static str>,
}

impl Mount {
    fn new() -> Self {
        let (reporter, health) = tonic_health::server::health_reporter();
        let mut builder = tonic::service::Routes::builder();
        builder.add_service(health);
        Self {
            builder,
            reporter,
            served: Vec::new(),
        }
    }

    async fn add<S>(&mut self, svc: S)
    where
        S: tower::Service<http::Request<tonic::body::Body>, Error = std::convert::Infallible>
            + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.reporter
            .set_service_status(S::NAME, tonic_health::ServingStatus::Serving)
            .await;
        self.served.push(S::NAME);
        self.builder.add_service(svc);
    }

    fn finish(mut self) -> anyhow::Result<(tonic::service::Routes, Vec<&'static str>)> {
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::DESCRIPTOR)
            .build_v1()?;
        self.builder.add_service(reflection);
        Ok((self.builder.routes(), self.served))
    }
}
