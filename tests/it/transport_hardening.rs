//! What clients see when the transport, not the API, goes wrong: malformed
//! protobuf and gRPC frames, made-up gRPC paths (and what they do to
//! /metrics), wrong HTTP methods and HEAD, the spelling of the Bearer scheme,
//! and refusals written by the frameworks rather than by our handlers.
use base64::Engine as _;
use bytes::{Buf, Bytes};
use prost::Message as _;
use reqwest::header::HeaderMap;
use wagate::pb;
use wagate::pb::account_service_client::AccountServiceClient;

use crate::harness::{TestServer, grpc_reason};

/// A raw answer to a hand-made gRPC or grpc-web request.
struct Raw {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Raw {
    /// The gRPC status: from the headers (a trailers-only answer) or else
    /// from the grpc-web trailer frame of the body.
    fn grpc(&self) -> tonic::Status {
        if self.headers.contains_key("grpc-status") {
            return tonic::Status::from_header_map(&self.headers).expect("grpc-status");
        }
        let text = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/grpc-web-text"));
        let mut body = if text {
            Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(&self.body)
                    .expect("grpc-web-text body is base64"),
            )
        } else {
            self.body.clone()
        };
        let mut trailers = HeaderMap::new();
        while body.remaining() >= 5 {
            let flag = body.get_u8();
            let len = body.get_u32() as usize;
            let chunk = body.split_to(len);
            if flag & 0x80 == 0 {
                continue;
            }
            for line in String::from_utf8_lossy(&chunk).lines() {
                if let Some((k, v)) = line.split_once(':') {
                    trailers.insert(
                        reqwest::header::HeaderName::from_bytes(k.trim().as_bytes())
                            .expect("trailer name"),
                        v.trim().parse().expect("trailer value"),
                    );
                }
            }
        }
        tonic::Status::from_header_map(&trailers).expect("a grpc-status trailer")
    }
}

/// How a hand-made request travels.
#[derive(Clone, Copy, Debug)]
enum Wire {
    /// gRPC: HTTP/2 with prior knowledge, `application/grpc`.
    Grpc,
    /// grpc-web over HTTP/1.1, binary.
    GrpcWeb,
    /// grpc-web over HTTP/1.1, base64 (the body is sent as given).
    GrpcWebText,
}

async fn post(s: &TestServer, wire: Wire, path: &str, auth: Option<&str>, body: Vec<u8>) -> Raw {
    let (client, content_type) = match wire {
        Wire::Grpc => (
            reqwest::Client::builder().http2_prior_knowledge(),
            "application/grpc",
        ),
        Wire::GrpcWeb => (
            reqwest::Client::builder().http1_only(),
            "application/grpc-web+proto",
        ),
        Wire::GrpcWebText => (
            reqwest::Client::builder().http1_only(),
            "application/grpc-web-text",
        ),
    };
    send(s, client, "POST", path, content_type, auth, body).await
}

async fn send(
    s: &TestServer,
    client: reqwest::ClientBuilder,
    method: &str,
    path: &str,
    content_type: &str,
    auth: Option<&str>,
    body: Vec<u8>,
) -> Raw {
    wagate::install_crypto_provider();
    let client = client.build().expect("client");
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client
        .request(method, format!("{}{path}", s.base))
        .header("content-type", content_type)
        .header("te", "trailers")
        .body(body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.expect("request");
    Raw {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.bytes().await.expect("body"),
    }
}

/// A gRPC length-prefixed message frame, uncompressed.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Text no client should ever read in an error message.
fn assert_no_internals(what: &str, message: &str) {
    for word in [
        "prost",
        "tonic",
        "protocol error",
        "decode",
        "compression",
        "UTF-8",
        "underflow",
        "::",
        "message_id",
    ] {
        assert!(
            !message.contains(word),
            "{what}: {word:?} leaks in {message:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_protobuf_and_frames_are_validation_errors_on_grpc_and_grpc_web() {
    let s = TestServer::start().await;
    let (key, _) = s.register("frames@example.com").await;
    let auth = format!("Bearer {key}");
    let path = "/wagate.v1.MessageService/GetMessage";
    let not_a_message = "the request body is not a valid GetMessageRequest message";
    let not_grpc = wagate::api::unreadable::MESSAGE;

    let cases: [(&str, Vec<u8>, &str); 6] = [
        // An end-group tag with no group.
        ("not protobuf", frame(b"hello"), not_a_message),
        (
            "a string that is not UTF-8",
            frame(&[0x0a, 0x02, 0xff, 0xfe]),
            not_a_message,
        ),
        (
            "a truncated field",
            frame(&[0x0a, 0x05, b'a']),
            not_a_message,
        ),
        (
            "no gRPC frame",
            b"garbage that is not framed".to_vec(),
            not_grpc,
        ),
        ("a frame cut short", vec![0, 0, 0, 0, 10, 1, 2], not_grpc),
        ("no message at all", Vec::new(), not_grpc),
    ];
    for wire in [Wire::Grpc, Wire::GrpcWeb] {
        for (what, body, message) in &cases {
            let what = format!("{what} over {wire:?}");
            let r = post(&s, wire, path, Some(&auth), body.clone()).await;
            assert_eq!(r.status, 200, "{what}: gRPC answers are HTTP 200");
            let st = r.grpc();
            assert_eq!(st.code(), tonic::Code::InvalidArgument, "{what}: {st:?}");
            assert_eq!(grpc_reason(&st), "VALIDATION_ERROR", "{what}");
            assert_eq!(st.message(), *message, "{what}");
            assert_no_internals(&what, st.message());
        }
    }

    // grpc-web-text whose body is not base64.
    let r = post(
        &s,
        Wire::GrpcWebText,
        path,
        Some(&auth),
        b"!!!notbase64".to_vec(),
    )
    .await;
    let st = r.grpc();
    assert_eq!(st.code(), tonic::Code::InvalidArgument, "{st:?}");
    assert_eq!(grpc_reason(&st), "VALIDATION_ERROR");
    assert_eq!(st.message(), not_grpc);
    assert_no_internals("grpc-web-text", st.message());

    // The same transports still carry well-formed calls to the handler: a
    // made-up id is the handler's own NOT_FOUND.
    let ok = pb::GetMessageRequest {
        message_id: uuid::Uuid::new_v4().to_string(),
    }
    .encode_to_vec();
    for wire in [Wire::Grpc, Wire::GrpcWeb] {
        let st = post(&s, wire, path, Some(&auth), frame(&ok)).await.grpc();
        assert_eq!(st.code(), tonic::Code::NotFound, "{wire:?}: {st:?}");
        assert_eq!(grpc_reason(&st), "NOT_FOUND");
    }
    let text = base64::engine::general_purpose::STANDARD.encode(frame(&ok));
    let st = post(&s, Wire::GrpcWebText, path, Some(&auth), text.into_bytes())
        .await
        .grpc();
    assert_eq!(st.code(), tonic::Code::NotFound, "{st:?}");

    // A message over the server's limit (the REST body limit, 64 KiB here):
    // PAYLOAD_TOO_LARGE on every transport, as over REST.
    let big = pb::GetMessageRequest {
        message_id: "x".repeat(100 * 1024),
    }
    .encode_to_vec();
    for wire in [Wire::Grpc, Wire::GrpcWeb] {
        let st = post(&s, wire, path, Some(&auth), frame(&big)).await.grpc();
        assert_eq!(
            st.code(),
            tonic::Code::ResourceExhausted,
            "{wire:?}: {st:?}"
        );
        assert_eq!(grpc_reason(&st), "PAYLOAD_TOO_LARGE", "{wire:?}");
        assert_no_internals("too large", st.message());
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_grpc_paths_share_one_metrics_series() {
    let s = TestServer::start().await;
    let (key, _) = s.register("paths@example.com").await;
    let auth = format!("Bearer {key}");
    let mut made_up = Vec::new();
    for i in 0..4 {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        made_up.push(tag.clone());
        let wire = if i % 2 == 0 {
            Wire::GrpcWeb
        } else {
            Wire::Grpc
        };
        let path = format!("/x{tag}.Svc/M{tag}");
        let st = post(&s, wire, &path, None, frame(b"")).await.grpc();
        assert_eq!(st.code(), tonic::Code::Unimplemented, "{path}");
        // An unknown method of a real service.
        let path = format!("/wagate.v1.MessageService/M{tag}");
        let st = post(&s, wire, &path, Some(&auth), frame(b"")).await.grpc();
        assert_eq!(st.code(), tonic::Code::Unimplemented, "{path}");
    }
    // A real RPC keeps its own label.
    let get_me = frame(&pb::GetMeRequest {}.encode_to_vec());
    let st = post(
        &s,
        Wire::GrpcWeb,
        "/wagate.v1.AccountService/GetMe",
        Some(&auth),
        get_me,
    )
    .await
    .grpc();
    assert_eq!(st.code(), tonic::Code::Ok);

    let metrics = s.rest().send("GET", "/metrics", None, None, &[]).await.text;
    for tag in &made_up {
        assert!(
            !metrics.contains(tag.as_str()),
            "{tag} has a series:\n{metrics}"
        );
    }
    assert!(
        metrics.contains(r#"wagate_http_requests_total{route="not_found",code="grpc_12"} 8"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"wagate_http_requests_total{route="/wagate.v1.AccountService/GetMe","#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"wagate_http_request_duration_seconds_count{route="not_found"}"#),
        "{metrics}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_methods_are_method_not_allowed_and_head_works_like_get() {
    let s = TestServer::start().await;
    let (key, _) = s.register("methods@example.com").await;
    let rest = s.rest();
    let allow = |r: &crate::harness::clients::RestReply| {
        r.headers
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };

    for path in ["/send-message", "/messages/bulk"] {
        let r = rest.send("GET", path, Some(&key), None, &[]).await;
        assert_eq!(r.status, 405, "{path}: {}", r.text);
        assert_eq!(allow(&r), "POST", "{path}");
        assert_eq!(r.body["error"]["code"], "METHOD_NOT_ALLOWED", "{path}");
        assert_eq!(
            r.body["error"]["message"],
            format!("method GET is not allowed on {path}")
        );
    }
    // A message id is still a message id.
    let id = uuid::Uuid::new_v4();
    let (status, body) = rest.get(&format!("/messages/{id}"), Some(&key)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "NOT_FOUND");

    let r = rest
        .send("PUT", "/v1/api-keys", Some(&key), None, &[])
        .await;
    assert_eq!(r.status, 405);
    assert_eq!(allow(&r), "GET, POST, HEAD");

    // HEAD: GET's status and headers, no body.
    let get = rest
        .send("GET", "/v1/api-keys", Some(&key), None, &[])
        .await;
    let head = rest
        .send("HEAD", "/v1/api-keys", Some(&key), None, &[])
        .await;
    assert_eq!(head.status, 200);
    assert!(head.text.is_empty());
    assert_eq!(
        head.headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some(get.text.len().to_string().as_str())
    );
    assert_eq!(
        head.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let head = rest.send("HEAD", "/v1/api-keys", None, None, &[]).await;
    assert_eq!(head.status, 401);
    assert!(head.text.is_empty());
    let head = rest.send("HEAD", "/health", None, None, &[]).await;
    assert_eq!(head.status, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bearer_scheme_is_case_insensitive_on_every_protocol() {
    let s = TestServer::start().await;
    let (key, _) = s.register("scheme@example.com").await;
    let get_me = frame(&pb::GetMeRequest {}.encode_to_vec());
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let auth = format!("{scheme} {key}");
        let r = s
            .rest()
            .send("GET", "/auth/me", None, None, &[("authorization", &auth)])
            .await;
        assert_eq!(r.status, 200, "{scheme}: {}", r.text);

        let mut grpc = AccountServiceClient::new(s.channel().await);
        let mut req = tonic::Request::new(pb::GetMeRequest {});
        req.metadata_mut()
            .insert("authorization", auth.parse().expect("metadata"));
        grpc.get_me(req).await.expect(scheme);

        let st = post(
            &s,
            Wire::GrpcWeb,
            "/wagate.v1.AccountService/GetMe",
            Some(&auth),
            get_me.clone(),
        )
        .await
        .grpc();
        assert_eq!(st.code(), tonic::Code::Ok, "{scheme}: {st:?}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn framework_refusals_carry_the_error_envelope() {
    let s = TestServer::start().await;
    let (key, _) = s.register("bare@example.com").await;
    let rest = s.rest();

    // Meta's webhook receiver: over its 3 MB limit.
    let big = vec![b' '; wagate::inbound::MAX_BODY_BYTES + 1];
    let r = rest
        .raw("POST", "/webhooks/whatsapp", None, big, "application/json")
        .await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    assert_eq!(r.body["error"]["code"], "PAYLOAD_TOO_LARGE");
    assert_eq!(
        r.body["error"]["message"],
        format!(
            "request body exceeds {} bytes",
            wagate::inbound::MAX_BODY_BYTES
        )
    );
    // A transcoded route over the server's limit (64 KiB in tests).
    let r = rest
        .raw(
            "POST",
            "/v1/api-keys",
            Some(&key),
            vec![b' '; 65 * 1024],
            "application/json",
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.body["error"]["code"], "PAYLOAD_TOO_LARGE");

    // What tonic-web cannot translate: gRPC over HTTP/1.1, grpc-web+json
    // (not a grpc-web encoding tonic-web knows), a grpc-web GET.
    let path = "/wagate.v1.AccountService/GetMe";
    let get_me = frame(&pb::GetMeRequest {}.encode_to_vec());
    for content_type in ["application/grpc", "application/grpc-web+json"] {
        let r = send(
            &s,
            reqwest::Client::builder().http1_only(),
            "POST",
            path,
            content_type,
            None,
            get_me.clone(),
        )
        .await;
        assert_eq!(r.status, 400, "{content_type}");
        let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_eq!(body["error"]["code"], "VALIDATION_ERROR", "{content_type}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("grpc-web")),
            "{body}"
        );
    }
    let r = send(
        &s,
        reqwest::Client::builder().http1_only(),
        "GET",
        path,
        "application/grpc-web+proto",
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(
        r.headers.get("allow").and_then(|v| v.to_str().ok()),
        Some("POST")
    );
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED");
    s.stop().await;
}
