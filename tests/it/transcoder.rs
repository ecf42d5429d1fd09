//! The REST transcoder's contract: envelopes, errors, routing, limits and the
//! generated OpenAPI document.
use serde_json::json;

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_wrong_methods_bad_json_and_big_bodies() {
    let s = TestServer::start().await;
    let (key, _) = s.register("t@example.com").await;
    let rest = s.rest();

    let (status, err) = rest.get("/v1/nothing-here", Some(&key)).await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["code"], "NOT_FOUND");
    assert!(err["error"]["message"].is_string());

    let r = rest
        .send("PUT", "/v1/api-keys", Some(&key), Some(json!({})), &[])
        .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.body["error"]["code"], "METHOD_NOT_ALLOWED");
    let allow = r
        .headers
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");

    let r = rest
        .raw(
            "POST",
            "/v1/api-keys",
            Some(&key),
            b"{\"name\": ".to_vec(),
            "application/json",
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "VALIDATION_ERROR");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed JSON")
    );

    let r = rest
        .raw(
            "POST",
            "/v1/api-keys",
            Some(&key),
            b"[1, 2]".to_vec(),
            "application/json",
        )
        .await;
    assert_eq!(r.status, 400);

    let (status, err) = rest
        .post(
            "/v1/api-keys",
            Some(&key),
            json!({"name": "x", "colour": "red"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"].as_str().unwrap().contains("colour"),
        "{err}"
    );
    assert_eq!(err["error"]["details"]["field"], "colour");

    let (status, err) = rest.get("/v1/api-keys?bogus=1", Some(&key)).await;
    assert_eq!(status, 400);
    assert!(err["error"]["message"].as_str().unwrap().contains("bogus"));

    let big = vec![b' '; 70 * 1024];
    let r = rest
        .raw("POST", "/v1/api-keys", Some(&key), big, "application/json")
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.body["error"]["code"], "PAYLOAD_TOO_LARGE");

    // Nothing above created a key.
    let (_, list) = rest.get("/v1/api-keys", Some(&key)).await;
    assert_eq!(list["meta"]["pagination"]["total"], 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_document_describes_the_served_routes() {
    let s = TestServer::start().await;
    let (status, doc) = s.rest().get("/openapi.json", None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let register = &doc["paths"]["/auth/register"]["post"];
    assert_eq!(register["security"], json!([]));
    assert!(register["responses"]["201"].is_object());
    assert!(doc["paths"]["/v1/api-keys/{keyId}"]["delete"].is_object());
    let params = doc["paths"]["/v1/api-keys"]["get"]["parameters"]
        .as_array()
        .expect("params");
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "limit" && p["in"] == "query")
    );
    let key_schema = &doc["components"]["schemas"]["ApiKey"];
    assert!(key_schema["properties"]["lastUsedAt"]["anyOf"].is_array());
    assert_eq!(
        key_schema["properties"]["status"]["enum"],
        json!(["active", "revoked", null])
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_preflight_for_browser_dashboards() {
    let s = TestServer::start().await;
    let r = s
        .rest()
        .send(
            "OPTIONS",
            "/wagate.v1.AccountService/GetMe",
            None,
            None,
            &[
                ("origin", "http://dashboard.example"),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "content-type,x-grpc-web,authorization",
                ),
            ],
        )
        .await;
    assert!(r.status == 200 || r.status == 204, "{}", r.status);
    assert!(r.headers.get("access-control-allow-origin").is_some());
    let allowed = r
        .headers
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        allowed.contains("x-grpc-web") && allowed.contains("authorization"),
        "{allowed}"
    );
    s.stop().await;
}
