//! Who is calling. One authentication layer in front of every gRPC service
//! serves gRPC, grpc-web and REST alike (REST calls go through it
//! in-process). Later principals (dashboard sessions, shared-inbox link
//! tokens) are added here as variants of [`Principal`].
pub mod keys;
pub mod layer;
pub mod password;

use uuid::Uuid;

/// The authenticated caller, put in the request extensions by the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An organization API key.
    ApiKey { org_id: Uuid, key_id: Uuid },
}

impl Principal {
    pub fn org_id(&self) -> Uuid {
        match self {
            Principal::ApiKey { org_id, .. } => *org_id,
        }
    }
}

/// The principal of a request that passed the layer. Every non-public RPC
/// has one; its absence is a wiring bug, reported as unauthenticated.
pub fn principal<T>(req: &tonic::Request<T>) -> Result<Principal, crate::domain::DomainError> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or(crate::domain::DomainError::Unauthorized)
}
