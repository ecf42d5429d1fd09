//! JSON building blocks shared by the Graph and webhook types.
//!
//! Meta adds fields and enum values without notice, so every type here is
//! tolerant: unknown keys are kept in [`Extra`], unknown enum values in an
//! `Other(String)` variant, and numbers that Meta sends sometimes as strings
//! are accepted both ways ([`IntOrString`]).
use std::cell::Cell;
use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

thread_local! {
    /// Set while [`modelled_only`] runs: [`Extra`] then serialises as empty.
    static HIDE_EXTRA: Cell<bool> = const { Cell::new(false) };
}

/// Keys of a JSON object that this crate does not model, kept verbatim so
/// that re-serialising a payload loses nothing. Use it as
/// `#[serde(flatten, default)] extra: Extra`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extra(pub Map<String, Value>);

impl Deref for Extra {
    type Target = Map<String, Value>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Extra {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Serialize for Extra {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if HIDE_EXTRA.with(Cell::get) {
            return serializer.serialize_map(Some(0))?.end();
        }
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Extra {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Map::deserialize(deserializer).map(Extra)
    }
}

/// Serialises `value` leaving out every key kept in an [`Extra`], i.e. only
/// what this crate models. Comparing the result with the original JSON shows
/// which fields Meta sent that the types do not know yet (useful in tests and
/// for logging new fields).
pub fn modelled_only<T: Serialize>(value: &T) -> serde_json::Result<Value> {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            HIDE_EXTRA.with(|h| h.set(self.0));
        }
    }
    let _reset = Reset(HIDE_EXTRA.with(|h| h.replace(true)));
    serde_json::to_value(value)
}

/// A number Meta sends either as a JSON integer or as a string of digits
/// (timestamps are strings in `messages`/`statuses` and integers elsewhere;
/// template ids are numbers in webhooks and strings in Graph responses).
/// The original form is kept so that re-serialisation is exact.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// Sent as a JSON integer.
    Int(i64),
    /// Sent as a JSON string (normally digits, but kept even if not).
    Str(String),
}

impl IntOrString {
    /// The numeric value, if it is one (a string of digits counts).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            IntOrString::Int(n) => Some(*n),
            IntOrString::Str(s) => s.trim().parse().ok(),
        }
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(n) => write!(f, "{n}"),
            IntOrString::Str(s) => f.write_str(s),
        }
    }
}

impl From<i64> for IntOrString {
    fn from(n: i64) -> Self {
        IntOrString::Int(n)
    }
}

/// Unix seconds, as a string (messages, statuses) or an integer (elsewhere).
pub type Timestamp = IntOrString;

/// `Some(s)` unless `s` is empty: Meta sends `""` for a phone number it
/// withholds (BSUID-only users), which must read as absent.
pub(crate) fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// A string enum that keeps values it does not know in `Other`, so a new value
/// from Meta never fails parsing and round-trips unchanged.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this crate does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// The value as Meta spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )+
                    Self::Other(s) => s,
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $( $wire => Self::$variant, )+
                    _ => Self::Other(s),
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::from(s.to_owned())
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d).map(Self::from)
            }
        }
    };
}
pub(crate) use open_enum;

/// A unit type that always serialises as one fixed string (e.g.
/// `messaging_product: "whatsapp"`), so request bodies cannot get it wrong.
/// Deserialising accepts only that string.
macro_rules! const_str {
    ($(#[$meta:meta])* $name:ident = $wire:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
        pub struct $name;

        impl $name {
            /// The fixed wire value.
            pub const VALUE: &'static str = $wire;
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($wire)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                if s == $wire {
                    Ok($name)
                } else {
                    Err(::serde::de::Error::invalid_value(
                        ::serde::de::Unexpected::Str(&s),
                        &$wire,
                    ))
                }
            }
        }
    };
}
pub(crate) use const_str;

const_str!(
    /// `"messaging_product": "whatsapp"`, required on every Cloud API body.
    WhatsApp = "whatsapp"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Sample {
        known: u8,
        #[serde(flatten, default)]
        extra: Extra,
    }

    #[test]
    fn extra_keeps_unknown_keys_and_can_be_hidden() {
        let v = serde_json::json!({"known": 1, "new_field": {"a": true}});
        let s: Sample = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(
            s.extra.get("new_field"),
            Some(&serde_json::json!({"a": true}))
        );
        assert_eq!(serde_json::to_value(&s).unwrap(), v);
        assert_eq!(modelled_only(&s).unwrap(), serde_json::json!({"known": 1}));
        // The flag is restored afterwards.
        assert_eq!(serde_json::to_value(&s).unwrap(), v);
    }

    #[test]
    fn int_or_string() {
        let a: IntOrString = serde_json::from_str("\"1697043223\"").unwrap();
        let b: IntOrString = serde_json::from_str("1697043223").unwrap();
        assert_eq!(a.as_i64(), b.as_i64());
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"1697043223\"");
        assert_eq!(serde_json::to_string(&b).unwrap(), "1697043223");
    }

    #[test]
    fn whatsapp_const() {
        assert_eq!(serde_json::to_string(&WhatsApp).unwrap(), "\"whatsapp\"");
        assert!(serde_json::from_str::<WhatsApp>("\"whatsapp\"").is_ok());
        assert!(serde_json::from_str::<WhatsApp>("\"instagram\"").is_err());
    }
}
