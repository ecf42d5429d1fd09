//! API key format: `sk_org_` + 32 random bytes in base62. Stored as SHA-256
//! (a fast hash is right here: the key carries 256 bits of entropy) with a
//! short visible prefix.
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const KEY_PREFIX: &str = "sk_org_";
/// Characters of the key shown in listings (`sk_org_` + 6).
const VISIBLE_LEN: usize = KEY_PREFIX.len() + 6;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

pub struct NewKey {
    /// The secret, shown once.
    pub secret: String,
    pub prefix: String,
    pub hash: Vec<u8>,
}

pub fn generate() -> NewKey {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{KEY_PREFIX}{}", base62(&bytes));
    NewKey {
        prefix: secret[..VISIBLE_LEN].to_owned(),
        hash: hash(&secret),
        secret,
    }
}

pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Constant-time comparison of a presented key with a stored hash.
pub fn matches(secret: &str, stored_hash: &[u8]) -> bool {
    hash(secret).ct_eq(stored_hash).into()
}

/// Cheap shape check before any database lookup.
pub fn looks_like_key(s: &str) -> bool {
    s.len() > VISIBLE_LEN
        && s.len() < 100
        && s.starts_with(KEY_PREFIX)
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Big-endian base62 of the bytes (43 characters for 32 bytes).
fn base62(bytes: &[u8]) -> String {
    let mut digits: Vec<u8> = bytes.to_vec();
    let mut out = Vec::new();
    while digits.iter().any(|&d| d != 0) {
        let mut rem: u32 = 0;
        for d in digits.iter_mut() {
            let acc = (rem << 8) | u32::from(*d);
            *d = (acc / 62) as u8;
            rem = acc % 62;
        }
        out.push(BASE62[rem as usize]);
    }
    while out.len() < 43 {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape() {
        let k = generate();
        assert!(k.secret.starts_with("sk_org_"));
        assert_eq!(k.secret.len(), 7 + 43);
        assert!(k.secret.starts_with(&k.prefix));
        assert!(looks_like_key(&k.secret));
        assert!(matches(&k.secret, &k.hash));
        assert!(!matches("sk_org_other", &k.hash));
        assert_ne!(generate().secret, k.secret);
    }

    #[test]
    fn base62_is_positional() {
        assert_eq!(base62(&[0, 61]).trim_start_matches('0'), "z");
        assert_eq!(base62(&[0, 62]).trim_start_matches('0'), "10");
    }
}
