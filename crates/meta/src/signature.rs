//! `X-Hub-Signature-256`: `sha256=<hex HMAC-SHA256(app_secret, raw body)>`.
//!
//! Meta signs the exact bytes it posts (with unicode escaped), so verification
//! must run over the raw body before any JSON parsing.
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "sha256=";

/// A keyed MAC over `body`. HMAC accepts keys of any length, so `None` cannot
/// happen in practice; it exists so that this code has no panic path.
fn keyed(app_secret: &[u8], body: &[u8]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(app_secret).ok()?;
    mac.update(body);
    Some(mac)
}

/// The header value Meta sends for `body` signed with `app_secret`.
///
/// Returns an empty string (which [`verify`] always rejects) in the
/// impossible case that the HMAC cannot be keyed.
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    match keyed(app_secret, body) {
        Some(mac) => format!("{PREFIX}{}", hex::encode(mac.finalize().into_bytes())),
        None => String::new(),
    }
}

/// Checks a header value against the raw body, in constant time.
pub fn verify(app_secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix(PREFIX) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let Some(mac) = keyed(app_secret, body) else {
        return false;
    };
    // `verify_slice` compares in constant time.
    mac.verify_slice(&expected).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let header = sign(b"secret", body);
        assert!(header.starts_with("sha256="));
        assert!(verify(b"secret", body, &header));
        assert!(!verify(b"other", body, &header));
        assert!(!verify(b"secret", b"{}", &header));
        assert!(!verify(b"secret", body, "sha256=zz"));
        assert!(!verify(
            b"secret",
            body,
            &header.replace("sha256=", "sha1=")
        ));
        assert!(!verify(b"secret", body, ""));
        assert!(!verify(b"secret", body, "sha256="));
    }

    /// RFC 4231 test case 2, so the header format is pinned to real HMAC-SHA256.
    #[test]
    fn rfc4231_vector() {
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn long_and_empty_keys() {
        let long = [7u8; 200];
        assert!(verify(&long, b"x", &sign(&long, b"x")));
        assert!(verify(b"", b"x", &sign(b"", b"x")));
    }
}
