//! Credentials and isolation: no credential, a wrong one, another tenant's data, another
//! identity's data, a token issued before its identity was revoked.

use crate::support::app::{
    APNS_TOKEN, KEY_A, KEY_B, TOKEN_SECRET_A, apns_body, identity_token, identity_token_issued,
    next_second, spawn_app, unix_seconds,
};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn missing_or_wrong_credentials_get_401() {
    let app = spawn_app().await;
    for credential in [
        None,
        Some("not-a-key"),
        Some("tenant-a-server-key-0001x"),
        Some("a.b.c"),
    ] {
        let (status, problem) = app
            .send(
                Method::GET,
                "/v1/identities/alice/registrations",
                credential,
            )
            .await;
        assert_eq!(status, 401, "{credential:?}");
        assert_eq!(problem["type"], "urn:ringcast:problem:unauthorized");
    }
    let response = app
        .client
        .get(app.url("/v1/identities/alice/registrations"))
        .header("authorization", format!("Basic {KEY_A}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    app.stop().await;
}

#[tokio::test]
async fn tenant_a_cannot_read_change_or_detect_tenant_b() {
    let app = spawn_app().await;
    assert_eq!(
        app.register(KEY_B, "bob", "phone", &apns_body(APNS_TOKEN))
            .await
            .0,
        201
    );

    // Tenant A sees an empty "bob": its own namespace, indistinguishable from an unknown identity.
    let (status, listed) = app.list(KEY_A, "bob").await;
    assert_eq!(
        (status, listed),
        (200, json!({"identity": "bob", "registrations": []}))
    );
    let (_, never_existed) = app.list(KEY_A, "nobody-at-all").await;
    assert_eq!(never_existed["registrations"], json!([]));
    let (status, _) = app
        .send(
            Method::DELETE,
            "/v1/identities/bob/registrations/phone",
            Some(KEY_A),
        )
        .await;
    assert_eq!(
        status, 404,
        "same answer as for a device that never existed"
    );
    let (_, revoked) = app
        .send(Method::DELETE, "/v1/identities/bob", Some(KEY_A))
        .await;
    assert_eq!(revoked, json!({"deleted": 0}));
    // The same token in tenant A does not take it from tenant B.
    assert_eq!(
        app.register(KEY_A, "bob", "phone", &apns_body(APNS_TOKEN))
            .await
            .0,
        201
    );

    assert_eq!(
        app.devices(KEY_B, "bob").await,
        ["phone"],
        "tenant B's data is untouched"
    );
    app.stop().await;
}

#[tokio::test]
async fn identity_tokens_manage_only_their_own_identity() {
    let app = spawn_app().await;
    let alice = identity_token("alice", 300, TOKEN_SECRET_A);
    let (status, answer) = app
        .register(&alice, "alice", "phone", &apns_body(APNS_TOKEN))
        .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(app.devices(&alice, "alice").await, ["phone"]);

    let (status, problem) = app
        .register(&alice, "mallory", "phone", &apns_body(&"c".repeat(64)))
        .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (403, Some("urn:ringcast:problem:forbidden"))
    );
    assert_eq!(app.list(&alice, "mallory").await.0, 403);
    assert_eq!(
        app.send(Method::DELETE, "/v1/identities/mallory", Some(&alice))
            .await
            .0,
        403
    );

    let expired = identity_token("alice", -60, TOKEN_SECRET_A);
    assert_eq!(app.list(&expired, "alice").await.0, 401, "expired token");
    let forged = identity_token("alice", 300, "some-other-secret-that-is-long-enough-0000");
    assert_eq!(app.list(&forged, "alice").await.0, 401, "wrong signature");

    let (status, revoked) = app
        .send(Method::DELETE, "/v1/identities/alice", Some(&alice))
        .await;
    assert_eq!(
        (status, revoked),
        (200, json!({"deleted": 1})),
        "signing out everywhere is one's own business"
    );
    app.stop().await;
}

/// Revoke means revoke: a token issued before `DELETE /v1/identities/{identity}` no longer
/// registers (401 `token-revoked`), one issued after it does; server keys are unaffected.
#[tokio::test]
async fn a_token_issued_before_a_revocation_is_refused_and_a_later_one_works() {
    let app = spawn_app().await;
    let issued = unix_seconds() - 10;
    let old = identity_token_issued("rita", issued, issued + 300, TOKEN_SECRET_A);
    let (status, answer) = app
        .register(&old, "rita", "phone", &apns_body(APNS_TOKEN))
        .await;
    assert_eq!(status, 201, "{answer}");

    let (status, _) = app
        .send(Method::DELETE, "/v1/identities/rita", Some(KEY_A))
        .await;
    assert_eq!(status, 200);
    let (status, problem) = app
        .register(&old, "rita", "phone", &apns_body(APNS_TOKEN))
        .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (401, Some("urn:ringcast:problem:token-revoked")),
        "{problem}"
    );
    assert_eq!(
        app.list(&old, "rita").await.0,
        401,
        "every identity-token call"
    );
    assert_eq!(app.devices(KEY_A, "rita").await, Vec::<String>::new());

    // The revocation's second is refused too (`iat` has whole seconds): a new token is one
    // issued in a later second.
    let next_second = next_second().await;
    let fresh = identity_token_issued("rita", next_second, next_second + 300, TOKEN_SECRET_A);
    let (status, answer) = app
        .register(&fresh, "rita", "phone", &apns_body(APNS_TOKEN))
        .await;
    assert_eq!(status, 201, "{answer}");
    // Another identity of the tenant is not touched by rita's revocation.
    let other = identity_token_issued("sam", issued, issued + 300, TOKEN_SECRET_A);
    assert_eq!(app.list(&other, "sam").await.0, 200);
    app.stop().await;
}
