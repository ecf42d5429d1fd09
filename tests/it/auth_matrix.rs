//! Who may call what: no key, bad key, revoked key, another organization's
//! key and ids — over REST, gRPC and grpc-web.
use serde_json::json;
use wagate::pb;
use wagate::pb::api_key_service_client::ApiKeyServiceClient;

use crate::harness::{TestServer, authed, grpc_reason};

#[tokio::test(flavor = "multi_thread")]
async fn missing_bad_and_revoked_keys_get_401_on_every_protocol() {
    let s = TestServer::start().await;
    let (key, _) = s.register("owner@example.com").await;
    let (_, created) = s
        .rest()
        .post("/v1/api-keys", Some(&key), json!({"name": "temp"}))
        .await;
    let revoked = created["data"]["apiKey"].as_str().expect("key").to_owned();
    let id = created["data"]["id"].as_str().expect("id").to_owned();
    s.rest()
        .delete(&format!("/v1/api-keys/{id}"), Some(&key))
        .await;

    let cases: [(&str, Option<&str>); 4] = [
        ("no key", None),
        ("garbage", Some("hello")),
        (
            "well-formed unknown",
            Some("sk_org_0000000000000000000000000000000000000000000"),
        ),
        ("revoked", Some(revoked.as_str())),
    ];
    for (what, k) in cases {
        for path in ["/auth/me", "/v1/api-keys"] {
            let r = s.rest().send("GET", path, k, None, &[]).await;
            assert_eq!(r.status, 401, "{what} {path}");
            assert_eq!(r.body["error"]["code"], "UNAUTHORIZED", "{what}");
            assert!(r.body["error"]["message"].is_string());
        }
        let mut grpc = ApiKeyServiceClient::new(s.channel().await);
        let mut req = tonic::Request::new(pb::ListApiKeysRequest::default());
        if let Some(k) = k {
            req.metadata_mut().insert(
                "authorization",
                format!("Bearer {k}").parse().expect("meta"),
            );
        }
        let err = grpc.list_api_keys(req).await.expect_err(what);
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{what}");
        assert_eq!(grpc_reason(&err), "UNAUTHORIZED");
        let web = s
            .grpc_web()
            .call::<_, pb::ListApiKeysResponse>(
                "/wagate.v1.ApiKeyService/ListApiKeys",
                k,
                &pb::ListApiKeysRequest::default(),
            )
            .await;
        assert_eq!(web.expect_err(what).0, tonic::Code::Unauthenticated as i32);
    }
    // A wrong scheme is not accepted either.
    let r = s
        .rest()
        .send(
            "GET",
            "/auth/me",
            None,
            None,
            &[("authorization", &format!("Basic {key}"))],
        )
        .await;
    assert_eq!(r.status, 401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_organizations_ids_are_not_found() {
    let s = TestServer::start().await;
    let (a, _) = s.register("a@example.com").await;
    let (b, _) = s.register("b@example.com").await;
    let (_, created) = s
        .rest()
        .post("/v1/api-keys", Some(&a), json!({"name": "A's key"}))
        .await;
    let a_key_id = created["data"]["id"].as_str().expect("id").to_owned();

    let (status, err) = s
        .rest()
        .get(&format!("/v1/api-keys/{a_key_id}"), Some(&b))
        .await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["code"], "NOT_FOUND");
    let (status, _) = s
        .rest()
        .delete(&format!("/v1/api-keys/{a_key_id}"), Some(&b))
        .await;
    assert_eq!(status, 404);
    let (_, b_list) = s.rest().get("/v1/api-keys", Some(&b)).await;
    assert_eq!(b_list["meta"]["pagination"]["total"], 1);
    assert!(!b_list.to_string().contains(&a_key_id));

    let mut grpc = ApiKeyServiceClient::new(s.channel().await);
    let err = grpc
        .get_api_key(authed(
            pb::GetApiKeyRequest {
                key_id: a_key_id.clone(),
            },
            &b,
        ))
        .await
        .expect_err("foreign id");
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert_eq!(grpc_reason(&err), "NOT_FOUND");
    // A's key still works: B's attempt changed nothing.
    let (status, got) = s
        .rest()
        .get(&format!("/v1/api-keys/{a_key_id}"), Some(&a))
        .await;
    assert_eq!(status, 200);
    assert_eq!(got["data"]["status"], "active");
    s.stop().await;
}
