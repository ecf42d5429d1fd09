//! API keys and sending phones are served from memory; a change made through
//! one instance must reach every instance (the change trigger's NOTIFY), and
//! the instance that made it must see it at once.
use std::time::Duration;

use serde_json::json;

use crate::harness::TestServer;
use crate::harness::outbound::connect_at;
use crate::harness::sandbox::poll;

const PHONE: &str = "106540352242922";

#[tokio::test(flavor = "multi_thread")]
async fn revoked_keys_and_removed_credentials_reach_every_instance() {
    let database_url = crate::harness::pg::fresh_database().await;
    let master_key = wagate::crypto::SecretBox::generate_key();
    let options = || {
        let mut o = TestServer::options(database_url.clone());
        o.master_key = master_key.clone();
        o
    };
    let a = TestServer::start_with(options()).await;
    let b = TestServer::start_with(options()).await;
    let org = connect_at(&a.base, "twice@example.com", PHONE).await;

    // A second key, used on both instances until each has it in memory.
    let (st, created) = a
        .rest()
        .post("/v1/api-keys", Some(&org.key), json!({"name": "ci"}))
        .await;
    assert_eq!(st, 201, "{created}");
    let secret = created["data"]["apiKey"]
        .as_str()
        .expect("apiKey")
        .to_owned();
    let id = created["data"]["id"].as_str().expect("id").to_owned();
    for s in [&a, &b, &a, &b] {
        assert_eq!(s.rest().get("/auth/me", Some(&secret)).await.0, 200);
    }
    let (st, _) = a
        .rest()
        .delete(&format!("/v1/api-keys/{id}"), Some(&org.key))
        .await;
    assert_eq!(st, 200);
    // The instance that revoked it refuses it at once ...
    assert_eq!(a.rest().get("/auth/me", Some(&secret)).await.0, 401);
    // ... and the other as soon as the notification arrives.
    let b_rest = b.rest();
    poll(
        "the other instance to refuse the revoked key",
        Duration::from_secs(5),
        || async {
            match b_rest.get("/auth/me", Some(&secret)).await.0 {
                401 => Ok(()),
                other => Err(format!("answered {other}")),
            }
        },
    )
    .await;

    // Sending from the default phone through both instances (each caches it).
    let send = |s: &TestServer| {
        let (rest, key) = (s.rest(), org.key.clone());
        async move {
            rest.send(
                "POST",
                "/send-message",
                Some(&key),
                Some(json!({"type": "text", "to": "5491155551234", "text": "Hello!"})),
                &[],
            )
            .await
        }
    };
    for s in [&a, &b, &a, &b] {
        let r = send(s).await;
        assert_eq!(r.status, 202, "{}", r.text);
    }
    let (st, _) = a
        .rest()
        .delete("/auth/me/credentials", Some(&org.key))
        .await;
    assert_eq!(st, 200);
    let r = send(&a).await;
    assert_eq!(r.status, 409, "refused at once where removed: {}", r.text);
    assert!(r.text.contains("credentials were removed"), "{}", r.text);
    poll(
        "the other instance to refuse sends",
        Duration::from_secs(5),
        || async {
            let r = send(&b).await;
            match r.status {
                409 => Ok(()),
                other => Err(format!("answered {other}: {}", r.text)),
            }
        },
    )
    .await;
    a.stop().await;
    b.stop().await;
}
