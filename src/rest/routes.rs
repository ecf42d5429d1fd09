//! The REST route table, read from the `google.api.http` rules of the
//! descriptor set at start-up. Anything we cannot serve faithfully is refused
//! with a message naming the method and the problem, so a bad annotation stops
//! the server (and the unit test that builds this table) instead of serving
//! something different from what the proto says.
use std::fmt;

use http::Method;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor,
    ReflectMessage, Value,
};

#[derive(Debug, thiserror::Error)]
#[error("cannot serve the REST rule of {method}: {problem}")]
pub struct RuleError {
    pub method: String,
    pub problem: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    /// A path variable bound to a (possibly dotted) field path of the request.
    Var(String),
}

/// Where the request message comes from besides the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyRule {
    /// No body: every other field comes from the query string.
    None,
    /// `body: "*"`: every field not bound by the path comes from the JSON body.
    All,
    /// `body: "field"`: that field is the body; others come from the query.
    Field(String),
}

#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    pub template: String,
    pub segments: Vec<Segment>,
    pub body: BodyRule,
    pub response_body: Option<String>,
    pub rpc: MethodDescriptor,
    /// `/package.Service/Method`, the gRPC path called in-process.
    pub grpc_path: String,
    pub success_status: u16,
    pub public: bool,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.template)
    }
}

/// Method options read from the descriptors: success status and public flag.
pub fn method_success_status(pool: &DescriptorPool, m: &MethodDescriptor) -> u16 {
    pool.get_extension_by_name("wagate.v1.http_success_status")
        .and_then(|ext| {
            let opts = m.options();
            opts.has_extension(&ext)
                .then(|| opts.get_extension(&ext).as_i32())
                .flatten()
        })
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| *s != 0)
        .unwrap_or(200)
}

pub fn method_is_public(pool: &DescriptorPool, m: &MethodDescriptor) -> bool {
    pool.get_extension_by_name("wagate.v1.public")
        .map(|ext| {
            let opts = m.options();
            opts.has_extension(&ext) && opts.get_extension(&ext).as_bool() == Some(true)
        })
        .unwrap_or(false)
}

/// The gRPC paths of every RPC marked `(wagate.v1.public) = true`.
pub fn public_methods(pool: &DescriptorPool) -> Vec<String> {
    pool.services()
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .filter(|m| method_is_public(pool, m))
        .map(|m| grpc_path(&m))
        .collect()
}

pub fn grpc_path(m: &MethodDescriptor) -> String {
    format!("/{}/{}", m.parent_service().full_name(), m.name())
}

/// Reads every `google.api.http` rule (including additional bindings) of the
/// `wagate.*` services.
pub fn build(pool: &DescriptorPool) -> Result<Vec<Route>, RuleError> {
    let Some(http_ext) = pool.get_extension_by_name("google.api.http") else {
        return Ok(Vec::new());
    };
    let mut routes = Vec::new();
    for service in pool
        .services()
        .filter(|s| s.package_name().starts_with("wagate."))
    {
        for m in service.methods() {
            let opts = m.options();
            if !opts.has_extension(&http_ext) {
                continue;
            }
            let err = |problem: String| RuleError {
                method: m.full_name().to_owned(),
                problem,
            };
            if m.is_client_streaming() || m.is_server_streaming() {
                return Err(err("streaming RPCs have no REST mapping".into()));
            }
            let Value::Message(rule) = &*opts.get_extension(&http_ext) else {
                return Err(err("the google.api.http option is not an HttpRule".into()));
            };
            routes.push(parse_rule(pool, &m, rule, true).map_err(err)?);
            if let Some(Value::List(extra)) =
                rule.get_field_by_name("additional_bindings").as_deref()
            {
                for binding in extra {
                    if let Value::Message(b) = binding {
                        routes.push(parse_rule(pool, &m, b, false).map_err(err)?);
                    }
                }
            }
        }
    }
    // Two rules for one method and path would make routing ambiguous.
    for (i, a) in routes.iter().enumerate() {
        for b in &routes[i + 1..] {
            if a.method == b.method && a.segments == b.segments {
                return Err(RuleError {
                    method: b.rpc.full_name().to_owned(),
                    problem: format!("{b} is already served by {}", a.rpc.full_name()),
                });
            }
        }
    }
    // Most specific first: at the first differing segment a literal wins.
    routes.sort_by_key(|r| std::cmp::Reverse(specificity(&r.segments)));
    Ok(routes)
}

fn specificity(segments: &[Segment]) -> Vec<u8> {
    segments
        .iter()
        .map(|s| matches!(s, Segment::Literal(_)) as u8)
        .collect()
}

fn str_field(msg: &DynamicMessage, name: &str) -> String {
    msg.get_field_by_name(name)
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn parse_rule(
    pool: &DescriptorPool,
    m: &MethodDescriptor,
    rule: &DynamicMessage,
    top: bool,
) -> Result<Route, String> {
    if !top
        && let Some(Value::List(nested)) = rule.get_field_by_name("additional_bindings").as_deref()
        && !nested.is_empty()
    {
        return Err("additional_bindings may not nest".into());
    }
    let mut found = None;
    for (name, method) in [
        ("get", Method::GET),
        ("put", Method::PUT),
        ("post", Method::POST),
        ("delete", Method::DELETE),
        ("patch", Method::PATCH),
    ] {
        let f = rule.descriptor().get_field_by_name(name);
        if f.as_ref().is_some_and(|f| rule.has_field(f)) {
            found = Some((method, str_field(rule, name)));
        }
    }
    if let Some(f) = rule.descriptor().get_field_by_name("custom")
        && rule.has_field(&f)
        && let Value::Message(custom) = &*rule.get_field(&f)
    {
        let kind = str_field(custom, "kind");
        let method = Method::from_bytes(kind.as_bytes())
            .map_err(|_| format!("invalid custom method {kind:?}"))?;
        found = Some((method, str_field(custom, "path")));
    }
    let (method, template) = found.ok_or("the rule has no HTTP method and path")?;
    let segments = parse_template(&template)?;
    let input = m.input();
    for seg in &segments {
        if let Segment::Var(path) = seg {
            let field = resolve_field_path(&input, path)?;
            if field.is_list() || field.is_map() || matches!(field.kind(), Kind::Message(_)) {
                return Err(format!(
                    "path variable {{{path}}} must name a singular scalar field"
                ));
            }
        }
    }
    let body = match str_field(rule, "body").as_str() {
        "" => BodyRule::None,
        "*" => BodyRule::All,
        name => {
            let field = input.get_field_by_name(name).ok_or_else(|| {
                format!(
                    "body field {name:?} is not a field of {}",
                    input.full_name()
                )
            })?;
            if field.is_list() || field.is_map() {
                return Err(format!("body field {name:?} must not be repeated"));
            }
            BodyRule::Field(name.to_owned())
        }
    };
    if body != BodyRule::None && method == Method::GET {
        return Err("a GET rule cannot take a body".into());
    }
    let response_body = match str_field(rule, "response_body") {
        s if s.is_empty() => None,
        s => {
            m.output().get_field_by_name(&s).ok_or_else(|| {
                format!(
                    "response_body {s:?} is not a field of {}",
                    m.output().full_name()
                )
            })?;
            Some(s)
        }
    };
    Ok(Route {
        method,
        template,
        segments,
        body,
        response_body,
        rpc: m.clone(),
        grpc_path: grpc_path(m),
        success_status: method_success_status(pool, m),
        public: method_is_public(pool, m),
    })
}

/// Parses `/a/{b}/c` templates. Multi-segment variables (`{name=shelves/*}`),
/// `**` and `:verb` suffixes are refused: no wagate rule needs them.
pub fn parse_template(template: &str) -> Result<Vec<Segment>, String> {
    let rest = template
        .strip_prefix('/')
        .ok_or_else(|| format!("path template {template:?} must start with '/'"))?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    rest.split('/')
        .map(|seg| {
            if let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let (name, pattern) = inner.split_once('=').unwrap_or((inner, "*"));
                if pattern != "*" {
                    return Err(format!(
                        "path variable {{{inner}}}: only single-segment variables are supported"
                    ));
                }
                if name.is_empty() || !name.split('.').all(is_ident) {
                    return Err(format!("path variable {{{inner}}} is not a field path"));
                }
                Ok(Segment::Var(name.to_owned()))
            } else if seg.is_empty() {
                Err(format!("path template {template:?} has an empty segment"))
            } else if seg.contains(['{', '}', '*', ':']) {
                Err(format!(
                    "path segment {seg:?}: wildcards and custom verbs are not supported"
                ))
            } else {
                Ok(Segment::Literal(seg.to_owned()))
            }
        })
        .collect()
}

fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn resolve_field_path(desc: &MessageDescriptor, path: &str) -> Result<FieldDescriptor, String> {
    let mut current = desc.clone();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let field = current.get_field_by_name(part).ok_or_else(|| {
            format!(
                "{part:?} (in {path:?}) is not a field of {}",
                current.full_name()
            )
        })?;
        if parts.peek().is_none() {
            return Ok(field);
        }
        match field.kind() {
            Kind::Message(m) if !field.is_list() && !field.is_map() => current = m,
            _ => return Err(format!("{part:?} (in {path:?}) is not a message field")),
        }
    }
    Err(format!("empty field path {path:?}"))
}

/// The outcome of matching a request path against the table.
pub enum Match<'a> {
    Found(&'a Route, Vec<(String, String)>),
    /// The path exists but not for this method; carries the allowed methods.
    WrongMethod(Vec<Method>),
    NotFound,
}

/// Matches a request. The path is the resource: when routes of different
/// specificity match it, only the most specific (a literal where the others
/// have a variable) counts, so `GET /messages/bulk` is a wrong method on the
/// bulk resource, not a message whose id is "bulk". HEAD is served by GET.
pub fn find<'a>(routes: &'a [Route], method: &Method, path: &str) -> Match<'a> {
    let Some(rest) = path.strip_prefix('/') else {
        return Match::NotFound;
    };
    let parts: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    let wanted = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    let mut allowed = Vec::new();
    let mut best: Option<Vec<u8>> = None;
    // `routes` is sorted most specific first (see `build`).
    for route in routes {
        let Some(vars) = match_segments(&route.segments, &parts) else {
            continue;
        };
        let spec = specificity(&route.segments);
        match &best {
            Some(b) if *b != spec => break,
            Some(_) => {}
            None => best = Some(spec),
        }
        if route.method == wanted {
            return Match::Found(route, vars);
        }
        if !allowed.contains(&route.method) {
            allowed.push(route.method.clone());
        }
    }
    if allowed.contains(&Method::GET) {
        allowed.push(Method::HEAD);
    }
    if allowed.is_empty() {
        Match::NotFound
    } else {
        Match::WrongMethod(allowed)
    }
}

fn match_segments(segments: &[Segment], parts: &[&str]) -> Option<Vec<(String, String)>> {
    if segments.len() != parts.len() {
        return None;
    }
    let mut vars = Vec::new();
    for (seg, part) in segments.iter().zip(parts) {
        match seg {
            Segment::Literal(lit) if lit == part => {}
            Segment::Literal(_) => return None,
            Segment::Var(name) => {
                let decoded = percent_encoding::percent_decode_str(part)
                    .decode_utf8()
                    .ok()?;
                if decoded.is_empty() {
                    return None;
                }
                vars.push((name.clone(), decoded.into_owned()));
            }
        }
    }
    Some(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_in_the_descriptor_set_is_servable() {
        let pool = DescriptorPool::decode(crate::pb::DESCRIPTOR).expect("descriptor set decodes");
        let routes = build(&pool).expect("all rules are servable");
        assert!(
            routes
                .iter()
                .any(|r| r.template == "/auth/register" && r.public && r.success_status == 201)
        );
        assert!(
            routes
                .iter()
                .any(|r| r.template == "/v1/api-keys/{key_id}" && r.method == Method::DELETE)
        );
    }

    #[test]
    fn templates_refuse_what_we_cannot_serve() {
        assert!(parse_template("/v1/{name=shelves/*}").is_err());
        assert!(parse_template("/v1/**").is_err());
        assert!(parse_template("/v1/things:verb").is_err());
        assert!(parse_template("v1/x").is_err());
        assert_eq!(
            parse_template("/v1/a/{b.c}").expect("parses"),
            vec![
                Segment::Literal("v1".into()),
                Segment::Literal("a".into()),
                Segment::Var("b.c".into())
            ]
        );
    }

    #[test]
    fn matching_prefers_literals_and_reports_wrong_methods() {
        let pool = DescriptorPool::decode(crate::pb::DESCRIPTOR).expect("descriptor set decodes");
        let routes = build(&pool).expect("routes");
        match find(&routes, &Method::GET, "/v1/api-keys/abc%20d") {
            Match::Found(r, vars) => {
                assert_eq!(r.rpc.name(), "GetApiKey");
                assert_eq!(vars, vec![("key_id".to_owned(), "abc d".to_owned())]);
            }
            _ => panic!("expected a match"),
        }
        match find(&routes, &Method::PUT, "/v1/api-keys") {
            Match::WrongMethod(allowed) => {
                assert!(allowed.contains(&Method::GET) && allowed.contains(&Method::POST))
            }
            _ => panic!("expected 405"),
        }
        assert!(matches!(
            find(&routes, &Method::GET, "/nope"),
            Match::NotFound
        ));
        // A literal segment names its own resource: no fallback to `{id}`.
        match find(&routes, &Method::GET, "/messages/bulk") {
            Match::WrongMethod(allowed) => assert_eq!(allowed, vec![Method::POST]),
            _ => panic!("expected 405"),
        }
        match find(&routes, &Method::HEAD, "/v1/api-keys") {
            Match::Found(r, _) => assert_eq!(r.rpc.name(), "ListApiKeys"),
            _ => panic!("HEAD is served by GET"),
        }
        match find(&routes, &Method::PUT, "/v1/api-keys") {
            Match::WrongMethod(allowed) => assert!(allowed.contains(&Method::HEAD)),
            _ => panic!("expected 405"),
        }
    }
}
