//! Secrets at rest (Meta access tokens, webhook signing secrets): AES-256-GCM
//! under the master key. Format: version byte 1, 12-byte nonce, ciphertext
//! with its tag.
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use rand::RngCore;

const VERSION: u8 = 1;

#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "WAGATE_MASTER_KEY must be the base64 encoding of 32 bytes (e.g. `openssl rand -base64 32`)"
    )]
    BadKey,
    #[error("stored secret could not be decrypted (wrong WAGATE_MASTER_KEY?)")]
    Decrypt,
}

impl SecretBox {
    /// From the base64 text of a 32-byte key.
    pub fn from_base64(key: &str) -> Result<Self, CryptoError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .map_err(|_| CryptoError::BadKey)?;
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| CryptoError::BadKey)?;
        Ok(Self { cipher })
    }

    /// A new random key, base64-encoded.
    pub fn generate_key() -> String {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        base64::engine::general_purpose::STANDARD.encode(key)
    }

    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        // Encryption with a valid key and a 12-byte nonce cannot fail.
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + 12 + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < 13 || sealed[0] != VERSION {
            return Err(CryptoError::Decrypt);
        }
        self.cipher
            .decrypt(Nonce::from_slice(&sealed[1..13]), &sealed[13..])
            .map_err(|_| CryptoError::Decrypt)
    }

    pub fn open_string(&self, sealed: &[u8]) -> Result<String, CryptoError> {
        String::from_utf8(self.open(sealed)?).map_err(|_| CryptoError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_and_detects_tampering() {
        let b = SecretBox::from_base64(&SecretBox::generate_key()).expect("key");
        let sealed = b.seal(b"EAAG-token");
        assert_ne!(&sealed[13..], b"EAAG-token");
        assert_eq!(b.open_string(&sealed).expect("opens"), "EAAG-token");
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert!(b.open(&bad).is_err());
        let other = SecretBox::from_base64(&SecretBox::generate_key()).expect("key");
        assert!(other.open(&sealed).is_err());
        assert!(SecretBox::from_base64("c2hvcnQ=").is_err());
    }
}
