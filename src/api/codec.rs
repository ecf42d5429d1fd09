//! The codec of every wagate gRPC service (`build.rs` points
//! tonic-prost-build's `codec_path` here). It is tonic's prost codec except
//! for one thing: a request message that does not decode is the caller's
//! mistake, so it answers INVALID_ARGUMENT with the contract's
//! VALIDATION_ERROR, not tonic's INTERNAL carrying prost's error text (which
//! names Rust types and fields and says nothing a client can act on).
//!
//! Generated clients use it too; there a decode failure would concern a
//! response, which the server never sends malformed.
use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

use super::status::status;
use crate::error_code::ErrorCode;

pub struct WagateCodec<T, U>(PhantomData<(T, U)>);

// By hand: a derive would require `T: Default` and `U: Default`.
impl<T, U> Default for WagateCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for WagateCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder(PhantomData)
    }
}

/// Decodes with prost; a failure becomes a validation error naming only the
/// message type.
pub struct CheckedDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| {
            tracing::debug!(error = %e, "request message does not decode");
            status(
                ErrorCode::ValidationError,
                &format!(
                    "the request body is not a valid {} message",
                    message_name::<U>()
                ),
                None,
            )
        })
    }
}

/// The proto message's name: prost names each generated type after its
/// message, so the last segment of the Rust path is it (`GetMessageRequest`).
fn message_name<U>() -> &'static str {
    let full = std::any::type_name::<U>();
    full.rsplit("::").next().unwrap_or(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_message_not_the_rust_path() {
        assert_eq!(
            message_name::<crate::pb::GetMessageRequest>(),
            "GetMessageRequest"
        );
    }
}
