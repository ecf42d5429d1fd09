//! Embedded Signup onboarding: exchanging the front end's code for a business
//! token, and introspecting tokens with `debug_token` to learn which WABAs
//! they reach.
use serde::{Deserialize, Serialize};

use super::{GraphClient, GraphError};
use crate::json::Extra;

/// Answer of the code exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessToken {
    pub access_token: String,
    /// `bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Seconds; absent for non-expiring business tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// Answer of `debug_token`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DebugToken {
    pub data: DebugTokenData,
    #[serde(flatten, default)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DebugTokenData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// `USER`, `SYSTEM_USER`, `APP`, ...
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// Unix seconds; 0 means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_access_expires_at: Option<i64>,
    /// Unix seconds; 0 means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_valid: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub granular_scopes: Vec<GranularScope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

impl DebugTokenData {
    /// The WABA ids the token may manage or message through
    /// (`granular_scopes[].target_ids` of the `whatsapp_business_*` scopes),
    /// deduplicated in first-seen order.
    pub fn waba_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = Vec::new();
        for scope in &self.granular_scopes {
            if !scope.scope.starts_with("whatsapp_business_") {
                continue;
            }
            for id in &scope.target_ids {
                if !ids.contains(&id.as_str()) {
                    ids.push(id);
                }
            }
        }
        ids
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GranularScope {
    pub scope: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_ids: Vec<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

impl GraphClient {
    /// `GET /{v}/oauth/access_token?client_id&client_secret&code`: the
    /// Embedded Signup code (valid 30 s) for a business token. Errors never
    /// include the URL, which carries the app secret.
    pub async fn exchange_code(
        &self,
        app_id: &str,
        app_secret: &str,
        code: &str,
    ) -> Result<AccessToken, GraphError> {
        let q = [
            ("client_id", app_id.to_owned()),
            ("client_secret", app_secret.to_owned()),
            ("code", code.to_owned()),
        ];
        self.get(None, &["oauth", "access_token"], &q).await
    }

    /// `GET /{v}/debug_token?input_token=`: validity, expiry and granular
    /// scopes of `input_token`. `app_token` (`"<app_id>|<app_secret>"` or a
    /// system-user token) goes in the `Authorization` header rather than the
    /// URL so it stays out of logs.
    pub async fn debug_token(
        &self,
        app_token: &str,
        input_token: &str,
    ) -> Result<DebugToken, GraphError> {
        self.get(
            Some(app_token),
            &["debug_token"],
            &[("input_token", input_token.to_owned())],
        )
        .await
    }
}
