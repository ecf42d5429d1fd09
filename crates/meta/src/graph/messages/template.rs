//! The `template` object of a template message: name, language, and the
//! parameters filling the template's variables, positional (`{{1}}`, order
//! matters) or named (`{{first_name}}`, via `parameter_name`).
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Location, MediaObject};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// Template name (`[a-z0-9_]`, ≤ 512 chars).
    pub name: String,
    pub language: TemplateLanguage,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<TemplateComponent>,
}

impl Template {
    pub fn new(name: impl Into<String>, language_code: impl Into<String>) -> Self {
        Template {
            name: name.into(),
            language: TemplateLanguage {
                code: language_code.into(),
                policy: None,
            },
            components: Vec::new(),
        }
    }

    pub fn component(mut self, component: TemplateComponent) -> Self {
        self.components.push(component);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateLanguage {
    /// E.g. `en_US`; must match an approved translation.
    pub code: String,
    /// Legacy `"deterministic"`; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// Parameters for one part of the template. Buttons take one component each,
/// addressed by `sub_type` and 0-based `index`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateComponent {
    #[serde(rename = "type")]
    pub kind: ComponentKind,
    /// Buttons: `quick_reply`, `url`, `COPY_CODE`, `flow`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_type: Option<String>,
    /// Buttons: position of the button in the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<TemplateParameter>,
}

impl TemplateComponent {
    pub fn header(parameters: Vec<TemplateParameter>) -> Self {
        Self::new(ComponentKind::Header, parameters)
    }

    pub fn body(parameters: Vec<TemplateParameter>) -> Self {
        Self::new(ComponentKind::Body, parameters)
    }

    /// A button component, e.g. `("quick_reply", 0, [payload])` or
    /// `("url", 0, [text suffix])`.
    pub fn button(
        sub_type: impl Into<String>,
        index: u32,
        parameters: Vec<TemplateParameter>,
    ) -> Self {
        TemplateComponent {
            kind: ComponentKind::Button,
            sub_type: Some(sub_type.into()),
            index: Some(index),
            parameters,
        }
    }

    fn new(kind: ComponentKind, parameters: Vec<TemplateParameter>) -> Self {
        TemplateComponent {
            kind,
            sub_type: None,
            index: None,
            parameters,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentKind {
    #[serde(alias = "HEADER")]
    Header,
    #[serde(alias = "BODY")]
    Body,
    #[serde(alias = "BUTTON")]
    Button,
}

/// One variable's value. Meta treats the `type` case-insensitively (uppercase
/// `TEXT` has been seen accepted); this writes lowercase, as documented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TemplateParameter {
    #[serde(alias = "TEXT")]
    Text {
        text: String,
        /// Named templates only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameter_name: Option<String>,
    },
    #[serde(alias = "CURRENCY")]
    Currency {
        currency: Currency,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameter_name: Option<String>,
    },
    #[serde(alias = "DATE_TIME")]
    DateTime {
        date_time: DateTime,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameter_name: Option<String>,
    },
    #[serde(alias = "IMAGE")]
    Image { image: MediaObject },
    #[serde(alias = "VIDEO")]
    Video { video: MediaObject },
    #[serde(alias = "DOCUMENT")]
    Document { document: MediaObject },
    #[serde(alias = "LOCATION")]
    Location { location: Location },
    /// Quick-reply button payload, returned in the `button` webhook.
    #[serde(alias = "PAYLOAD")]
    Payload { payload: String },
    /// Copy-code button.
    #[serde(alias = "COUPON_CODE")]
    CouponCode { coupon_code: String },
    /// Flow button action, passed through.
    #[serde(alias = "ACTION")]
    Action { action: Value },
}

impl TemplateParameter {
    /// A positional text value.
    pub fn text(text: impl Into<String>) -> Self {
        TemplateParameter::Text {
            text: text.into(),
            parameter_name: None,
        }
    }

    /// A named text value.
    pub fn named_text(name: impl Into<String>, text: impl Into<String>) -> Self {
        TemplateParameter::Text {
            text: text.into(),
            parameter_name: Some(name.into()),
        }
    }

    pub fn payload(payload: impl Into<String>) -> Self {
        TemplateParameter::Payload {
            payload: payload.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Currency {
    pub fallback_value: String,
    /// ISO 4217.
    pub code: String,
    /// Amount × 1000.
    pub amount_1000: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateTime {
    pub fallback_value: String,
}
