//! Registration, /auth/me and key rotation over REST, gRPC and grpc-web.
use serde_json::json;
use wagate::pb;
use wagate::pb::account_service_client::AccountServiceClient;

use crate::harness::{TestServer, authed, grpc_reason};

#[tokio::test(flavor = "multi_thread")]
async fn register_returns_the_documented_envelope_once() {
    let s = TestServer::start().await;
    let (key, body) = s.register("ann@example.com").await;
    assert!(key.starts_with("sk_org_") && key.len() > 40, "{key}");
    let data = &body["data"];
    assert_eq!(data["organization"]["name"], "Acme Corp");
    assert_eq!(data["organization"]["plan"], "basic");
    assert!(uuid::Uuid::parse_str(data["organization"]["id"].as_str().unwrap()).is_ok());
    assert_eq!(data["user"]["email"], "ann@example.com");
    assert_eq!(data["user"]["role"], "owner");
    assert!(data["user"].get("passwordHash").is_none() && data["user"].get("password").is_none());
    assert!(
        data["organization"]["createdAt"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    // The key is never shown again: not in /auth/me nor in the key list.
    let (status, me) = s.rest().get("/auth/me", Some(&key)).await;
    assert_eq!(status, 200);
    assert!(!me.to_string().contains(&key));
    let (_, keys) = s.rest().get("/v1/api-keys", Some(&key)).await;
    assert!(!keys.to_string().contains(&key));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn register_rejects_bad_input_naming_the_field_and_changes_nothing() {
    let s = TestServer::start().await;
    let rest = s.rest();
    for (body, field) in [
        (
            json!({"email": "not-an-email", "password": "long enough pw", "name": "X"}),
            "email",
        ),
        (
            json!({"email": "a@b.io", "password": "short", "name": "X"}),
            "password",
        ),
        (
            json!({"email": "a@b.io", "password": "long enough pw", "name": "  "}),
            "name",
        ),
        (
            json!({"email": "a@b.io", "password": "long enough pw", "name": "X", "plan": "mega"}),
            "plan",
        ),
        (
            json!({"email": 42, "password": "long enough pw", "name": "X"}),
            "email",
        ),
    ] {
        let (status, err) = rest.post("/auth/register", None, body).await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["error"]["code"], "VALIDATION_ERROR");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(field),
            "{err}"
        );
    }
    // None of the rejected requests created an account: the address is still free.
    let (status, _) = rest
        .post(
            "/auth/register",
            None,
            json!({"email": "a@b.io", "password": "long enough pw", "name": "X"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, err) = rest
        .post(
            "/auth/register",
            None,
            json!({"email": "A@B.io", "password": "long enough pw", "name": "Y"}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(err["error"]["code"], "CONFLICT");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn me_is_the_same_over_rest_grpc_and_grpc_web() {
    let s = TestServer::start().await;
    let (key, reg) = s.register("me@example.com").await;
    let (status, me) = s.rest().get("/auth/me", Some(&key)).await;
    assert_eq!(status, 200);
    let data = &me["data"];
    assert_eq!(data["organization"], reg["data"]["organization"]);
    assert_eq!(data["user"]["email"], "me@example.com");
    assert_eq!(data["plan"]["plan"], "basic");
    assert_eq!(data["plan"]["bulkMax"], 0);
    assert_eq!(data["usage"]["messagesThisMonth"], 0);
    assert_eq!(data["onboarding"], json!({}));
    assert_eq!(data["config"]["sandbox"], true);
    assert_eq!(data["config"]["credentialsConfigured"], false);
    assert_eq!(data["config"]["phoneNumberId"], serde_json::Value::Null);

    let mut grpc = AccountServiceClient::new(s.channel().await);
    let g = grpc
        .get_me(authed(pb::GetMeRequest {}, &key))
        .await
        .expect("gRPC GetMe")
        .into_inner();
    let g = g.data.expect("data");
    assert_eq!(
        g.organization.as_ref().map(|o| o.id.as_str()),
        data["organization"]["id"].as_str()
    );
    assert_eq!(
        g.user.as_ref().map(|u| u.email.as_str()),
        Some("me@example.com")
    );
    assert_eq!(
        g.plan.as_ref().map(|p| p.plan),
        Some(pb::Plan::Basic as i32)
    );

    let w: pb::GetMeResponse = s
        .grpc_web()
        .call(
            "/wagate.v1.AccountService/GetMe",
            Some(&key),
            &pb::GetMeRequest {},
        )
        .await
        .expect("grpc-web GetMe");
    assert_eq!(w.data, Some(g));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn register_works_over_grpc_and_grpc_web_too() {
    let s = TestServer::start().await;
    let mut grpc = AccountServiceClient::new(s.channel().await);
    let r = grpc
        .register(pb::RegisterRequest {
            email: "grpc@example.com".into(),
            password: "correct horse battery".into(),
            name: "Grpc Org".into(),
        })
        .await
        .expect("register")
        .into_inner()
        .data
        .expect("data");
    assert!(r.api_key.starts_with("sk_org_"));
    let bad = grpc
        .register(pb::RegisterRequest {
            email: "x".into(),
            password: "correct horse battery".into(),
            name: "X".into(),
        })
        .await
        .expect_err("invalid email");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert_eq!(grpc_reason(&bad), "VALIDATION_ERROR");

    let w: pb::RegisterResponse = s
        .grpc_web()
        .call(
            "/wagate.v1.AccountService/Register",
            None,
            &pb::RegisterRequest {
                email: "web@example.com".into(),
                password: "correct horse battery".into(),
                name: "Web Org".into(),
            },
        )
        .await
        .expect("grpc-web register");
    let web_key = w.data.expect("data").api_key;
    let (status, _) = s.rest().get("/auth/me", Some(&web_key)).await;
    assert_eq!(status, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_key_returns_a_new_key_once_and_kills_the_old_one_at_once() {
    let s = TestServer::start().await;
    let (old, _) = s.register("rot@example.com").await;
    let (status, body) = s
        .rest()
        .post("/auth/me/rotate-key", Some(&old), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let new = body["data"]["apiKey"].as_str().expect("new key").to_owned();
    assert!(new.starts_with("sk_org_") && new != old);
    let (status, err) = s.rest().get("/auth/me", Some(&old)).await;
    assert_eq!(status, 401);
    assert_eq!(err["error"]["code"], "UNAUTHORIZED");
    let (status, _) = s.rest().get("/auth/me", Some(&new)).await;
    assert_eq!(status, 200);
    // The same over gRPC: rotating with the new key kills it too.
    let mut grpc = AccountServiceClient::new(s.channel().await);
    let third = grpc
        .rotate_key(authed(pb::RotateKeyRequest {}, &new))
        .await
        .expect("rotate")
        .into_inner()
        .data
        .expect("data")
        .api_key;
    let err = grpc
        .get_me(authed(pb::GetMeRequest {}, &new))
        .await
        .expect_err("old key");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert!(
        grpc.get_me(authed(pb::GetMeRequest {}, &third))
            .await
            .is_ok()
    );
    s.stop().await;
}
