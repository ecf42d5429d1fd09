//! The descriptor-driven REST transcoder.
//!
//! At start-up it reads every `google.api.http` rule of the embedded
//! descriptor set (refusing to start on one it cannot serve). Per request it
//! builds the request message from the path, query and JSON body, calls the
//! gRPC handler in-process through the same service stack (so authentication
//! and errors are identical on every protocol) and renders the reply, whose
//! message already carries the documented envelope.
pub mod bare_errors;
pub mod codec;
pub mod envelope;
pub mod json;
pub mod openapi;
pub mod routes;

use std::str::FromStr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor, Value};
use serde_json::Value as Json;

use crate::error_code::ErrorCode;
use crate::metrics::{NOT_FOUND_ROUTE, RouteLabel};
use codec::DynCodec;
use envelope::{error_response, json_response, status_response};
use json::{JsonError, JsonMapping};
use routes::{BodyRule, Match, Route, RuleError};

/// Request headers passed to the gRPC handler as metadata.
const FORWARDED_HEADERS: [&str; 6] = [
    "authorization",
    "idempotency-key",
    "cookie",
    "user-agent",
    "x-request-id",
    "x-forwarded-for",
];

/// Response metadata surfaced as REST headers.
const SURFACED_METADATA: [&str; 3] = ["idempotent-replayed", "set-cookie", "location"];

/// Response metadata by which a handler replaces its method's documented
/// success status for one answer (a dry run of a send stores nothing, so it
/// answers 200, not 202). Never surfaced as a header.
pub const HTTP_STATUS_METADATA: &str = "wagate-http-status";

pub struct Transcoder {
    routes: Vec<Route>,
    mapping: JsonMapping,
    grpc: axum::Router,
    max_body_bytes: usize,
}

impl Transcoder {
    /// `grpc` is the router that serves the gRPC services with their layers
    /// (authentication included); REST calls go through it.
    /// `served` names the gRPC services mounted on `grpc`: a rule whose
    /// service is missing would answer every call with a confusing 404.
    pub fn new(
        pool: &DescriptorPool,
        served: &[&str],
        grpc: axum::Router,
        max_body_bytes: usize,
    ) -> Result<Self, RuleError> {
        let routes = routes::build(pool)?;
        if let Some(r) = routes
            .iter()
            .find(|r| !served.contains(&r.rpc.parent_service().full_name()))
        {
            return Err(RuleError {
                method: r.rpc.full_name().to_owned(),
                problem: format!(
                    "its service {} is not mounted on the server",
                    r.rpc.parent_service().full_name()
                ),
            });
        }
        Ok(Self {
            routes,
            mapping: JsonMapping::new(pool),
            grpc,
            max_body_bytes,
        })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn mapping(&self) -> &JsonMapping {
        &self.mapping
    }

    /// Serves one REST request (the router's fallback).
    pub async fn handle(self: Arc<Self>, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        if is_grpc(&parts.headers) {
            // An unknown gRPC method: answer as a gRPC server would.
            return tonic::Status::unimplemented("unknown gRPC method").into_http();
        }
        let (route, vars) = match routes::find(&self.routes, &parts.method, parts.uri.path()) {
            Match::Found(route, vars) => (route, vars),
            Match::WrongMethod(allowed) => {
                let mut resp = error_response(
                    ErrorCode::MethodNotAllowed,
                    &format!(
                        "method {} is not allowed on {}",
                        parts.method,
                        parts.uri.path()
                    ),
                    None,
                );
                let allow = allowed
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                if let Ok(v) = HeaderValue::from_str(&allow) {
                    resp.headers_mut().insert(header::ALLOW, v);
                }
                resp.extensions_mut()
                    .insert(RouteLabel("method_not_allowed".into()));
                return resp;
            }
            Match::NotFound => {
                let mut resp = error_response(
                    ErrorCode::NotFound,
                    &format!("no route for {} {}", parts.method, parts.uri.path()),
                    None,
                );
                resp.extensions_mut()
                    .insert(RouteLabel(NOT_FOUND_ROUTE.into()));
                return resp;
            }
        };
        let head = parts.method == Method::HEAD;
        let mut resp = self.call(route, vars, parts, body).await;
        if head {
            // HEAD is GET without the body; Content-Length stays the GET's.
            if let Some(len) = http_body::Body::size_hint(resp.body()).exact() {
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            }
            *resp.body_mut() = Body::empty();
        }
        resp.extensions_mut().insert(RouteLabel(route.to_string()));
        resp
    }

    async fn call(
        &self,
        route: &Route,
        vars: Vec<(String, String)>,
        parts: http::request::Parts,
        body: Body,
    ) -> Response {
        let bytes = match Limited::new(body, self.max_body_bytes).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return error_response(
                    ErrorCode::PayloadTooLarge,
                    &format!("request body exceeds {} bytes", self.max_body_bytes),
                    None,
                );
            }
            Err(_) => {
                return error_response(
                    ErrorCode::ValidationError,
                    "could not read the request body",
                    None,
                );
            }
        };
        let input = route.rpc.input();
        let msg = match self.build_request(route, &input, &vars, parts.uri.query(), &bytes) {
            Ok(m) => m,
            Err(e) => {
                let details =
                    (!e.field.is_empty()).then(|| serde_json::json!({ "field": e.field }));
                return error_response(ErrorCode::ValidationError, &e.message, details);
            }
        };

        let mut request = tonic::Request::new(msg);
        for name in FORWARDED_HEADERS {
            if let Some(v) = parts.headers.get(name)
                && let Ok(v) = tonic::metadata::MetadataValue::try_from(v.as_bytes())
            {
                request.metadata_mut().insert(name, v);
            }
        }
        let Ok(path) = PathAndQuery::from_str(&route.grpc_path) else {
            return error_response(ErrorCode::InternalError, "internal error", None);
        };
        let mut client = tonic::client::Grpc::new(self.grpc.clone());
        if client.ready().await.is_err() {
            return error_response(
                ErrorCode::Unavailable,
                "service temporarily unavailable",
                None,
            );
        }
        let reply = client
            .unary(request, path, DynCodec::new(route.rpc.output()))
            .await;
        match reply {
            Ok(resp) => {
                let (metadata, message, _) = resp.into_parts();
                let mut out = if route.success_status == 204 {
                    StatusCode::NO_CONTENT.into_response()
                } else {
                    let mut json = self.mapping.encode(&message);
                    if let Some(field) = &route.response_body {
                        json = json.get(lower_camel(field)).cloned().unwrap_or(Json::Null);
                    }
                    let status = metadata
                        .get(HTTP_STATUS_METADATA)
                        .and_then(|v| v.to_str().ok()?.parse::<u16>().ok())
                        .and_then(|code| StatusCode::from_u16(code).ok())
                        .filter(StatusCode::is_success)
                        .or_else(|| StatusCode::from_u16(route.success_status).ok())
                        .unwrap_or(StatusCode::OK);
                    json_response(status, &json)
                };
                surface_metadata(&metadata, out.headers_mut());
                out
            }
            Err(status) => {
                let mut out = status_response(&status);
                surface_metadata(status.metadata(), out.headers_mut());
                out
            }
        }
    }

    fn build_request(
        &self,
        route: &Route,
        input: &MessageDescriptor,
        vars: &[(String, String)],
        query: Option<&str>,
        body: &[u8],
    ) -> Result<DynamicMessage, JsonError> {
        let body_json = || -> Result<Json, JsonError> {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Json::Object(Default::default()));
            }
            serde_json::from_slice(body).map_err(|e| JsonError {
                field: String::new(),
                message: format!("malformed JSON body: {e}"),
            })
        };
        let mut msg = match &route.body {
            BodyRule::All => self.mapping.decode(input, &body_json()?)?,
            BodyRule::Field(name) => {
                let mut msg = DynamicMessage::new(input.clone());
                if let Some(field) = input.get_field_by_name(name) {
                    let json = body_json()?;
                    let value = match field.kind() {
                        Kind::Message(m) => Value::Message(self.mapping.decode(&m, &json)?),
                        _ => {
                            let mut wrapper = serde_json::Map::new();
                            wrapper.insert(field.json_name().to_owned(), json);
                            let decoded = self.mapping.decode(input, &Json::Object(wrapper))?;
                            decoded.get_field(&field).into_owned()
                        }
                    };
                    msg.set_field(&field, value);
                }
                msg
            }
            BodyRule::None => {
                if !body.iter().all(u8::is_ascii_whitespace) {
                    return Err(JsonError {
                        field: String::new(),
                        message: format!("{route} takes no request body"),
                    });
                }
                DynamicMessage::new(input.clone())
            }
        };
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            for (key, value) in form_urlencoded::parse(q.as_bytes()) {
                if route.body == BodyRule::All {
                    return Err(JsonError {
                        field: key.to_string(),
                        message: format!(
                            "query parameter '{key}' is not accepted here; send it in the JSON body"
                        ),
                    });
                }
                if vars
                    .iter()
                    .any(|(v, _)| lower_camel(v) == key || v == &*key)
                {
                    continue;
                }
                self.mapping.set_from_text(&mut msg, &key, &value)?;
            }
        }
        for (field, value) in vars {
            self.mapping.set_from_text(&mut msg, field, value)?;
        }
        Ok(msg)
    }
}

fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

fn surface_metadata(metadata: &tonic::metadata::MetadataMap, headers: &mut http::HeaderMap) {
    for name in SURFACED_METADATA {
        for v in metadata.get_all(name).iter() {
            if let (Ok(name), Ok(v)) = (
                HeaderName::from_str(name),
                HeaderValue::from_bytes(v.as_bytes()),
            ) {
                headers.append(name, v);
            }
        }
    }
}

/// proto field name -> its JSON name (`key_id` -> `keyId`).
pub fn lower_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}
