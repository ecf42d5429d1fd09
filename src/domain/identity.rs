//! Contact identity, as the platform guide's "Migrating from Phone to Contact
//! Identity" describes it. A contact is known inside one phone inbox by some
//! of: its WhatsApp id / phone (`wa_id`), its business-scoped user id
//! (BSUID, `user_id`), a parent BSUID and a username.
//!
//! - `contactIdentifier` (the stable key) is the BSUID when known, else the
//!   phone / WhatsApp id, else the username.
//! - `contactIdentifierType` is `bsuid`, `phone` (a WhatsApp id is the user's
//!   phone number in digits) or `username`.
//! - `contactReplyTo` (the `to` for replies) is the phone when known — Meta
//!   recommends sending to the phone number — else the BSUID.
//! - `contactPhone` is the phone, or null when Meta gives none.
use serde_json::{Value, json};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub wa_id: Option<String>,
    pub bsuid: Option<String>,
    pub parent_bsuid: Option<String>,
    pub username: Option<String>,
    pub profile_name: Option<String>,
}

/// An outbound recipient, as given in `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// Digits, with a leading + kept if the client gave one.
    Phone { to: String, digits: String },
    /// A business-scoped user id, sent to Meta as `recipient`.
    Bsuid(String),
}

impl Recipient {
    /// Phone numbers may carry +, spaces, dashes, dots and parentheses; anything
    /// with letters is a BSUID (e.g. `US.13491208655302741918`). Never
    /// validated as digits only.
    pub fn parse(to: &str) -> Result<Recipient, &'static str> {
        let to = to.trim();
        if to.is_empty() {
            return Err("to is required");
        }
        if to.len() > 256 {
            return Err("to must be at most 256 characters");
        }
        if to.chars().any(|c| c.is_ascii_alphabetic()) {
            if to.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err("to: a BSUID has no spaces");
            }
            return Ok(Recipient::Bsuid(to.to_owned()));
        }
        let digits: String = to.chars().filter(char::is_ascii_digit).collect();
        let allowed = to
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c));
        if !allowed
            || !(6..=20).contains(&digits.len())
            || to.matches('+').count() > 1
            || (to.contains('+') && !to.starts_with('+'))
        {
            return Err("to must be a phone number (with country code) or a BSUID");
        }
        let to = if to.starts_with('+') {
            format!("+{digits}")
        } else {
            digits.clone()
        };
        Ok(Recipient::Phone { to, digits })
    }

    pub fn identity(&self) -> Identity {
        match self {
            Recipient::Phone { digits, .. } => Identity {
                wa_id: Some(digits.clone()),
                ..Default::default()
            },
            Recipient::Bsuid(b) => Identity {
                bsuid: Some(b.clone()),
                ..Default::default()
            },
        }
    }
}

impl Identity {
    /// This identity completed by `known`: what this one says wins, what it
    /// leaves out is kept.
    pub fn over(&self, known: &Identity) -> Identity {
        Identity {
            wa_id: self.wa_id.clone().or(known.wa_id.clone()),
            bsuid: self.bsuid.clone().or(known.bsuid.clone()),
            parent_bsuid: self.parent_bsuid.clone().or(known.parent_bsuid.clone()),
            username: self.username.clone().or(known.username.clone()),
            profile_name: self.profile_name.clone().or(known.profile_name.clone()),
        }
    }

    /// Meta sends `""` for absent ids: treat blanks as absent.
    pub fn normalised(self) -> Identity {
        let keep = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        Identity {
            wa_id: keep(self.wa_id),
            bsuid: keep(self.bsuid),
            parent_bsuid: keep(self.parent_bsuid),
            username: keep(self.username),
            profile_name: keep(self.profile_name),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.wa_id.is_none() && self.bsuid.is_none() && self.username.is_none()
    }

    /// (contactIdentifier, contactIdentifierType)
    pub fn identifier(&self) -> Option<(String, &'static str)> {
        if let Some(b) = &self.bsuid {
            Some((b.clone(), "bsuid"))
        } else if let Some(w) = &self.wa_id {
            Some((w.clone(), "phone"))
        } else {
            self.username.as_ref().map(|u| (u.clone(), "username"))
        }
    }

    pub fn reply_to(&self) -> Option<String> {
        self.wa_id.clone().or_else(|| self.bsuid.clone())
    }
}

/// The contact identity fields every conversation and message event carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactFields {
    pub contact_id: Option<String>,
    pub identifier: Option<String>,
    pub identifier_type: Option<String>,
    pub reply_to: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub bsuid: Option<String>,
    pub parent_bsuid: Option<String>,
    pub username: Option<String>,
}

impl ContactFields {
    /// As JSON keys of a webhook event's `data` (contactPhone null when unknown).
    pub fn to_json(&self) -> Value {
        json!({
            "contactId": self.contact_id,
            "contactIdentifier": self.identifier,
            "contactIdentifierType": self.identifier_type,
            "contactReplyTo": self.reply_to,
            "contactPhone": self.phone,
            "contactName": self.name,
            "businessScopedUserId": self.bsuid,
            "parentBusinessScopedUserId": self.parent_bsuid,
            "username": self.username,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_phones_or_bsuids_never_digits_only_checks() {
        assert_eq!(
            Recipient::parse("5491155551234"),
            Ok(Recipient::Phone {
                to: "5491155551234".into(),
                digits: "5491155551234".into()
            })
        );
        assert_eq!(
            Recipient::parse("+1 (650) 555-1234"),
            Ok(Recipient::Phone {
                to: "+16505551234".into(),
                digits: "16505551234".into()
            })
        );
        assert_eq!(
            Recipient::parse("AR.ABC123"),
            Ok(Recipient::Bsuid("AR.ABC123".into()))
        );
        assert_eq!(
            Recipient::parse("US.ENT.11815799212886844830"),
            Ok(Recipient::Bsuid("US.ENT.11815799212886844830".into()))
        );
        for bad in ["", "12", "12+34", "55 11 ++", "US ABC"] {
            assert!(Recipient::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identifier_prefers_bsuid_and_reply_prefers_phone() {
        let both = Identity {
            wa_id: Some("16505551234".into()),
            bsuid: Some("US.1349".into()),
            ..Default::default()
        };
        assert_eq!(both.identifier(), Some(("US.1349".into(), "bsuid")));
        assert_eq!(both.reply_to().as_deref(), Some("16505551234"));
        let bsuid_only = Identity {
            bsuid: Some("US.1349".into()),
            username: Some("@ann".into()),
            ..Default::default()
        };
        assert_eq!(bsuid_only.reply_to().as_deref(), Some("US.1349"));
        let blank = Identity {
            wa_id: Some("".into()),
            bsuid: Some("US.1".into()),
            ..Default::default()
        }
        .normalised();
        assert_eq!(blank.wa_id, None);
    }
}
