//! REST and grpc-web clients as browsers and scripts use them.
use bytes::{Buf, BufMut, Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;

pub struct Rest {
    base: String,
    http: reqwest::Client,
}

/// Status, headers and JSON body (Null when the body is empty or not JSON).
pub struct RestReply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Rest {
    pub fn new(base: &str) -> Self {
        wagate::install_crypto_provider();
        Self {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .http1_only()
                .build()
                .expect("client"),
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> RestReply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        RestReply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Vec<u8>,
        content_type: &str,
    ) -> RestReply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header("content-type", content_type)
            .body(body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        RestReply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        let r = self.send("GET", path, key, None, &[]).await;
        (r.status, r.body)
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: Value) -> (u16, Value) {
        let r = self.send("POST", path, key, Some(body), &[]).await;
        (r.status, r.body)
    }

    pub async fn delete(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        let r = self.send("DELETE", path, key, None, &[]).await;
        (r.status, r.body)
    }
}

/// A minimal grpc-web client (application/grpc-web+proto over HTTP/1.1), as
/// a browser dashboard speaks it.
pub struct GrpcWeb {
    base: String,
    http: reqwest::Client,
}

/// The outcome of a grpc-web call: the message or (grpc-status, message).
pub type GrpcWebResult<T> = Result<T, (i32, String)>;

impl GrpcWeb {
    pub fn new(base: &str) -> Self {
        wagate::install_crypto_provider();
        Self {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .http1_only()
                .build()
                .expect("client"),
        }
    }

    pub async fn call<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        path: &str,
        key: Option<&str>,
        msg: &Req,
    ) -> GrpcWebResult<Resp> {
        let payload = msg.encode_to_vec();
        let mut frame = BytesMut::with_capacity(payload.len() + 5);
        frame.put_u8(0);
        frame.put_u32(u32::try_from(payload.len()).expect("small"));
        frame.put_slice(&payload);
        let mut req = self
            .http
            .post(format!("{}{}", self.base, path))
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1")
            .header("origin", "http://dashboard.example")
            .body(frame.freeze());
        if let Some(k) = key {
            req = req.header(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {k}")).expect("header"),
            );
        }
        let resp = req.send().await.expect("grpc-web request");
        assert_eq!(resp.status().as_u16(), 200, "grpc-web answers HTTP 200");
        let header_status = resp
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let header_message = resp
            .headers()
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body: Bytes = resp.bytes().await.expect("body");
        let mut message = None;
        let mut trailers = String::new();
        while body.remaining() >= 5 {
            let flag = body.get_u8();
            let len = body.get_u32() as usize;
            let chunk = body.split_to(len);
            if flag & 0x80 != 0 {
                trailers.push_str(&String::from_utf8_lossy(&chunk));
            } else {
                message = Some(Resp::decode(chunk).expect("decodes"));
            }
        }
        let trailer = |name: &str| {
            trailers.lines().find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_owned())
            })
        };
        let status: i32 = trailer("grpc-status")
            .or(header_status)
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1);
        if status == 0 {
            Ok(message.expect("a message with status 0"))
        } else {
            let msg = trailer("grpc-message")
                .or(header_message)
                .unwrap_or_default();
            Err((
                status,
                percent_encoding::percent_decode_str(&msg)
                    .decode_utf8_lossy()
                    .into_owned(),
            ))
        }
    }
}
