//! Id generators shaped like Meta's: `wamid.` ids, numeric object ids, `fbtrace_id`s, tokens.
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use rand::Rng;

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// A unique `wamid.` in Meta's shape: base64 of a small binary record holding the user's id
/// (`wa_id` or BSUID) and a random-plus-counter key. Outbound and inbound ids differ in one
/// byte, like Meta's (`...AgARGBI...` outbound, `...AgASGBQ...` inbound).
pub fn wamid(user: &str, outbound: bool) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let r: u32 = rand::rng().random();
    let key = if outbound {
        format!("{r:08X}{:010X}", n & 0xFF_FFFF_FFFF)
    } else {
        format!("3A{r:08X}{:010X}", n & 0xFF_FFFF_FFFF)
    };
    let user = &user.as_bytes()[..user.len().min(64)];
    let mut raw = Vec::with_capacity(user.len() + key.len() + 12);
    raw.extend_from_slice(&[0x1c, 0x18]);
    raw.push(u8::try_from(user.len()).unwrap_or(64));
    raw.extend_from_slice(user);
    raw.extend_from_slice(&[0x15, 0x02, 0x00, if outbound { 0x11 } else { 0x12 }, 0x18]);
    raw.push(u8::try_from(key.len()).unwrap_or(0));
    raw.extend_from_slice(key.as_bytes());
    raw.push(0);
    format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// A 15-digit numeric id (phone number ids, WABAs, templates, media).
pub fn numeric_id() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 1000;
    let r: u64 = rand::rng().random_range(100_000_000_000..999_999_999_999);
    format!("{r}{n:03}")
}

/// A random `fbtrace_id` (23 chars of base64url, starting with `A`).
pub fn fbtrace_id() -> String {
    format!("A{}", random_alnum(22))
}

/// A business-integration access token in Meta's shape (`EAA...`).
pub fn access_token() -> String {
    format!("EAA{}", random_alnum(120))
}

/// A one-time Embedded Signup code.
pub fn signup_code() -> String {
    format!("AQ{}", random_alnum(180))
}

/// A BSUID for a phone-less simulated user: `US.` + 20 digits.
pub fn bsuid() -> String {
    let a: u64 = rand::rng().random_range(10_000_000_000..99_999_999_999);
    let b: u32 = rand::rng().random_range(100_000_000..999_999_999);
    format!("US.{a}{b}")
}

pub fn random_alnum(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// The digits of a phone number as Meta's `wa_id` (`+1 (650) 555-1234` -> `16505551234`).
pub fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// A display number for a phone created on first sight, derived from its id so it is stable:
/// `15557` + 6 digits (never in the reserved `15550`..`15553` recipient ranges).
pub fn display_digits_for(phone_number_id: &str) -> String {
    let mut h: u64 = 1469598103934665603;
    for b in phone_number_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(1099511628211);
    }
    format!("15557{:06}", h % 1_000_000)
}

/// `15550783881` -> `+1 555-078-3881`; other numbers -> `+<digits>`.
pub fn format_display(digits: &str) -> String {
    if digits.len() == 11 && digits.starts_with('1') {
        format!("+1 {}-{}-{}", &digits[1..4], &digits[4..7], &digits[7..11])
    } else {
        format!("+{digits}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wamids_are_unique_and_shaped() {
        let a = wamid("13437772910", true);
        let b = wamid("13437772910", true);
        assert_ne!(a, b);
        assert!(a.starts_with("wamid.HBgLMTM0Mzc3NzI5MTAVAgARGB"));
        assert!(wamid("16505551234", false).contains("VAgASGB"));
    }

    #[test]
    fn display_numbers() {
        assert_eq!(format_display("15550783881"), "+1 555-078-3881");
        assert_eq!(digits("+1 (650) 555-1234"), "16505551234");
        assert!(display_digits_for("106540352242922").starts_with("15557"));
    }
}
