//! Several named keys per organization: create, list, get, revoke.
use serde_json::json;

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_created_listed_used_and_revoked() {
    let s = TestServer::start().await;
    let (key, _) = s.register("keys@example.com").await;
    let rest = s.rest();

    let (status, created) = rest
        .post("/v1/api-keys", Some(&key), json!({"name": "CI"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["data"]["apiKey"]
        .as_str()
        .expect("secret")
        .to_owned();
    let id = created["data"]["id"].as_str().expect("id").to_owned();
    assert!(secret.starts_with(created["data"]["prefix"].as_str().expect("prefix")));

    let (status, list) = rest.get("/v1/api-keys", Some(&key)).await;
    assert_eq!(status, 200);
    assert_eq!(
        list["meta"]["pagination"],
        json!({"page": 1, "limit": 50, "total": 2, "hasMore": false})
    );
    let ci = list["data"]
        .as_array()
        .expect("array")
        .iter()
        .find(|k| k["id"] == id.as_str())
        .expect("listed")
        .clone();
    assert_eq!(ci["name"], "CI");
    assert_eq!(ci["status"], "active");
    assert_eq!(ci["lastUsedAt"], serde_json::Value::Null);
    assert_eq!(ci["revokedAt"], serde_json::Value::Null);
    assert!(ci.get("apiKey").is_none());

    // Using the key records its last use.
    let (status, _) = rest.get("/auth/me", Some(&secret)).await;
    assert_eq!(status, 200);
    let (_, got) = rest.get(&format!("/v1/api-keys/{id}"), Some(&key)).await;
    assert!(got["data"]["lastUsedAt"].is_string(), "{got}");

    let (status, revoked) = rest.delete(&format!("/v1/api-keys/{id}"), Some(&key)).await;
    assert_eq!(status, 200);
    assert_eq!(revoked["data"]["status"], "revoked");
    assert!(revoked["data"]["revokedAt"].is_string());
    let (status, err) = rest.get("/auth/me", Some(&secret)).await;
    assert_eq!(status, 401);
    assert_eq!(err["error"]["code"], "UNAUTHORIZED");

    // Pagination.
    let (_, page) = rest.get("/v1/api-keys?page=2&limit=1", Some(&key)).await;
    assert_eq!(
        page["meta"]["pagination"],
        json!({"page": 2, "limit": 1, "total": 2, "hasMore": false})
    );
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
    let (status, err) = rest.get("/v1/api-keys?limit=101", Some(&key)).await;
    assert_eq!(status, 400);
    assert!(err["error"]["message"].as_str().unwrap().contains("limit"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_key_input_is_rejected_by_field() {
    let s = TestServer::start().await;
    let (key, _) = s.register("kbad@example.com").await;
    let (status, err) = s
        .rest()
        .post("/v1/api-keys", Some(&key), json!({"name": ""}))
        .await;
    assert_eq!(status, 400);
    assert!(err["error"]["message"].as_str().unwrap().contains("name"));
    let (status, err) = s.rest().get("/v1/api-keys/not-a-uuid", Some(&key)).await;
    assert_eq!(status, 400);
    assert!(err["error"]["message"].as_str().unwrap().contains("keyId"));
    let (status, err) = s
        .rest()
        .get(
            &format!("/v1/api-keys/{}", uuid::Uuid::new_v4()),
            Some(&key),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["code"], "NOT_FOUND");
    s.stop().await;
}

/// Keys are an organization's only way in: its last active key cannot be
/// revoked (it would lock the organization out for good), not even by two
/// revocations racing for its last two keys.
#[tokio::test(flavor = "multi_thread")]
async fn the_last_active_key_cannot_be_revoked() {
    let s = TestServer::start().await;
    let (first, _) = s.register("last-key@example.com").await;
    let rest = s.rest();
    let (_, keys) = rest.get("/v1/api-keys", Some(&first)).await;
    let first_id = keys["data"][0]["id"].as_str().expect("id").to_owned();

    let (status, err) = rest
        .delete(&format!("/v1/api-keys/{first_id}"), Some(&first))
        .await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["code"], "CONFLICT");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("last active API key")),
        "{err}"
    );
    let (status, _) = rest.get("/auth/me", Some(&first)).await;
    assert_eq!(status, 200, "the key still works");

    // With a second key, the first can go; then the second is the last.
    let (_, created) = rest
        .post("/v1/api-keys", Some(&first), json!({"name": "second"}))
        .await;
    let second = created["data"]["apiKey"]
        .as_str()
        .expect("secret")
        .to_owned();
    let second_id = created["data"]["id"].as_str().expect("id").to_owned();
    let (status, _) = rest
        .delete(&format!("/v1/api-keys/{first_id}"), Some(&second))
        .await;
    assert_eq!(status, 200);
    let (status, _) = rest
        .delete(&format!("/v1/api-keys/{second_id}"), Some(&second))
        .await;
    assert_eq!(status, 409);

    // Two keys revoked at once, each request signed with the third: one
    // revocation wins and one key stays. The other is refused as the last
    // key, or (when the third went first) its signature no longer counts.
    let (_, created) = rest
        .post("/v1/api-keys", Some(&second), json!({"name": "third"}))
        .await;
    let third = created["data"]["apiKey"]
        .as_str()
        .expect("secret")
        .to_owned();
    let third_id = created["data"]["id"].as_str().expect("id").to_owned();
    let (path_second, path_third) = (
        format!("/v1/api-keys/{second_id}"),
        format!("/v1/api-keys/{third_id}"),
    );
    let (a, b) = tokio::join!(
        rest.delete(&path_second, Some(&third)),
        rest.delete(&path_third, Some(&third))
    );
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert!(
        statuses == [200, 409] || statuses == [200, 401],
        "{statuses:?}: {} / {}",
        a.1,
        b.1
    );
    let survivor = if a.0 == 200 { &third } else { &second };
    let (_, keys) = rest.get("/v1/api-keys", Some(survivor)).await;
    let active = keys["data"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| k["status"] == "active")
        .count();
    assert_eq!(active, 1, "{keys}");
}
