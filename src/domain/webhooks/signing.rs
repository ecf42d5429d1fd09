//! Standard Webhooks signatures (v1, symmetric).
//!
//! Every attempt carries `webhook-id` (the event id: the same on every retry
//! and replay, the receiver's idempotency key), `webhook-timestamp` (Unix
//! seconds of this attempt) and `webhook-signature`: a space-separated list
//! of `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, one per
//! secret in force (the current one first; a rotated-out one for 24 hours).
//!
//! The key is the base64 decoding of what follows `whsec_` when that decodes
//! (standard alphabet, padded), so the Standard Webhooks libraries verify
//! generated secrets as they are; any other secret is used as its UTF-8 bytes.
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a generated secret (the spec asks for 24 to 64).
pub const GENERATED_SECRET_BYTES: usize = 32;

/// A new secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let mut key = [0u8; GENERATED_SECRET_BYTES];
    rand::rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The HMAC key of a secret.
pub fn key_bytes(secret: &str) -> Vec<u8> {
    if let Some(encoded) = secret.strip_prefix(SECRET_PREFIX)
        && let Ok(decoded) = STANDARD.decode(encoded)
        && !decoded.is_empty()
    {
        return decoded;
    }
    secret.as_bytes().to_vec()
}

/// `v1,<base64 signature>` of one message under one key.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; the error arm cannot happen.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return String::new();
    };
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one signature per key, space-separated.
pub fn signature_header(keys: &[Vec<u8>], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| sign(k, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether any `v1` signature of the header verifies under `secret`
/// (constant-time comparison), as a receiver checks it.
pub fn verify(secret: &str, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let Ok(mut mac) = HmacSha256::new_from_slice(&key_bytes(secret)) else {
        return false;
    };
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(body);
    header.split(' ').any(|entry| {
        entry
            .strip_prefix("v1,")
            .and_then(|sig| STANDARD.decode(sig).ok())
            .is_some_and(|sig| mac.clone().verify_slice(&sig).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published test vector of the Standard Webhooks reference libraries.
    #[test]
    fn standard_webhooks_test_vector() {
        let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let id = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
        let ts = 1_649_367_553;
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        assert_eq!(key_bytes(secret).len(), 24);
        let sig = sign(&key_bytes(secret), id, ts, body);
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        assert!(verify(secret, id, ts, body, &sig));
        assert!(!verify(secret, id, ts + 1, body, &sig));
        assert!(!verify(secret, id, ts, b"{}", &sig));
    }

    #[test]
    fn keys_fall_back_to_utf8_bytes() {
        // The platform guide's example secret is not base64 after the prefix.
        assert_eq!(
            key_bytes("whsec_your_secret_key"),
            b"whsec_your_secret_key".to_vec()
        );
        assert_eq!(
            key_bytes("plain-secret-16ch"),
            b"plain-secret-16ch".to_vec()
        );
        // "whsec_" alone, or followed by something that is not padded base64.
        assert_eq!(key_bytes("whsec_"), b"whsec_".to_vec());
        assert_eq!(key_bytes("whsec_abc"), b"whsec_abc".to_vec());
        let generated = generate_secret();
        assert!(generated.starts_with("whsec_"));
        assert_eq!(key_bytes(&generated).len(), GENERATED_SECRET_BYTES);
    }

    #[test]
    fn rotation_sends_every_signature_and_either_verifies() {
        let (new, old) = (generate_secret(), "old-secret-in-utf8".to_owned());
        let body = br#"{"event":"message.received"}"#;
        let header = signature_header(&[key_bytes(&new), key_bytes(&old)], "evt", 42, body);
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert!(verify(&new, "evt", 42, body, &header));
        assert!(verify(&old, "evt", 42, body, &header));
        assert!(!verify(&generate_secret(), "evt", 42, body, &header));
        assert!(!verify(&new, "evt", 42, body, "v1a,abc v2,xyz"));
    }
}
