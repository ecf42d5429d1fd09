//! Template management: `/{waba-id}/message_templates` and `/{template-id}`.
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{GraphClient, GraphError, Page, PageRequest, Success, push_fields};
use crate::json::{Extra, open_enum};

open_enum!(
    /// Template category. Legacy values (`TRANSACTIONAL`, `ACCOUNT_UPDATE`,
    /// `ISSUE_RESOLUTION`) appear in `previous_category` and land in `Other`.
    pub enum TemplateCategory {
        Marketing = "MARKETING",
        Utility = "UTILITY",
        Authentication = "AUTHENTICATION",
    }
);

open_enum!(
    /// Review / lifecycle state of a template.
    pub enum TemplateStatus {
        Approved = "APPROVED",
        Pending = "PENDING",
        Rejected = "REJECTED",
        Paused = "PAUSED",
        Disabled = "DISABLED",
        InAppeal = "IN_APPEAL",
        PendingDeletion = "PENDING_DELETION",
        Deleted = "DELETED",
        Archived = "ARCHIVED",
        LimitExceeded = "LIMIT_EXCEEDED",
        Locked = "LOCKED",
    }
);

/// A template as Graph returns it (list and get).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageTemplate {
    /// A numeric string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TemplateStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<TemplateCategory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_category: Option<TemplateCategory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_category: Option<String>,
    /// `POSITIONAL` or `NAMED` (uppercase in responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_format: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<TemplateComponentDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_score: Option<Value>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// A template component definition (`HEADER`, `BODY`, `FOOTER`, `BUTTONS`),
/// used both to create/edit templates and in Graph's answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TemplateComponentDef {
    #[serde(rename = "type")]
    pub kind: String,
    /// Header: `TEXT`, `IMAGE`, `VIDEO`, `DOCUMENT`, `LOCATION`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<TemplateExample>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<TemplateButtonDef>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// Example values reviewers see; required when the text has variables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TemplateExample {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_text: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_text_named_params: Option<Vec<NamedParamExample>>,
    /// Resumable-upload handles of a media header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_handle: Option<Vec<String>>,
    /// Positional body examples: one inner list per example set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_text: Option<Vec<Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_text_named_params: Option<Vec<NamedParamExample>>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedParamExample {
    pub param_name: String,
    pub example: String,
}

/// A button definition (`QUICK_REPLY`, `URL`, `PHONE_NUMBER`, `COPY_CODE`,
/// `OTP`, `FLOW`, ...); type-specific keys beyond the common ones stay in
/// `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TemplateButtonDef {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// URL suffix or coupon example; a string or a list depending on type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Value>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// `parameter_format` of a new template (lowercase on the way in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParameterFormat {
    Positional,
    Named,
}

/// Body of `POST /{waba-id}/message_templates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateTemplate {
    pub name: String,
    pub category: TemplateCategory,
    pub language: String,
    pub components: Vec<TemplateComponentDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_format: Option<ParameterFormat>,
    /// Let Meta re-categorise instead of rejecting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_category_change: Option<bool>,
    /// Auth 30–900 s, utility 30–43200 s, `-1` = 30 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_send_ttl_seconds: Option<i64>,
}

/// Answer of template creation: the new id and its first review state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateTemplateResponse {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TemplateStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<TemplateCategory>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// Body of `POST /{template-id}`. `components` replaces all components.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EditTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<TemplateCategory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<TemplateComponentDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_send_ttl_seconds: Option<i64>,
}

/// Filters and paging for listing templates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateQuery {
    /// Empty: Meta's default fields.
    pub fields: Vec<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub category: Option<String>,
    pub language: Option<String>,
    pub page: PageRequest,
}

impl GraphClient {
    /// `GET /{waba_id}/message_templates`, one page. Follow
    /// [`Page::next_cursor`] with `query.page.after` for the rest; an invalid
    /// cursor fails with 131059 (v24+).
    pub async fn list_templates(
        &self,
        token: &str,
        waba_id: &str,
        query: &TemplateQuery,
    ) -> Result<Page<MessageTemplate>, GraphError> {
        let mut q = Vec::new();
        let fields: Vec<&str> = query.fields.iter().map(String::as_str).collect();
        push_fields(&mut q, &fields);
        for (key, value) in [
            ("name", &query.name),
            ("status", &query.status),
            ("category", &query.category),
            ("language", &query.language),
        ] {
            if let Some(v) = value {
                q.push((key, v.clone()));
            }
        }
        query.page.push_query(&mut q);
        self.get(Some(token), &[waba_id, "message_templates"], &q)
            .await
    }

    /// `GET /{template_id}`.
    pub async fn get_template(
        &self,
        token: &str,
        template_id: &str,
        fields: &[&str],
    ) -> Result<MessageTemplate, GraphError> {
        let mut q = Vec::new();
        push_fields(&mut q, fields);
        self.get(Some(token), &[template_id], &q).await
    }

    /// `POST /{waba_id}/message_templates`.
    pub async fn create_template(
        &self,
        token: &str,
        waba_id: &str,
        template: &CreateTemplate,
    ) -> Result<CreateTemplateResponse, GraphError> {
        self.post(Some(token), &[waba_id, "message_templates"], template)
            .await
    }

    /// `POST /{template_id}` (approved templates: ≤ 1 edit/24 h, 10/30 days).
    pub async fn edit_template(
        &self,
        token: &str,
        template_id: &str,
        edit: &EditTemplate,
    ) -> Result<Success, GraphError> {
        self.post(Some(token), &[template_id], edit).await
    }

    /// `DELETE /{waba_id}/message_templates?name=` — every language of it.
    /// Not found: code 100, subcode 2593002.
    pub async fn delete_template_by_name(
        &self,
        token: &str,
        waba_id: &str,
        name: &str,
    ) -> Result<Success, GraphError> {
        self.delete(
            Some(token),
            &[waba_id, "message_templates"],
            &[("name", name.to_owned())],
        )
        .await
    }

    /// `DELETE /{waba_id}/message_templates?hsm_id=&name=` — one translation.
    pub async fn delete_template_by_id(
        &self,
        token: &str,
        waba_id: &str,
        template_id: &str,
        name: &str,
    ) -> Result<Success, GraphError> {
        self.delete(
            Some(token),
            &[waba_id, "message_templates"],
            &[
                ("hsm_id", template_id.to_owned()),
                ("name", name.to_owned()),
            ],
        )
        .await
    }
}
