//! Health, readiness, the OpenAPI description and unknown routes.

use crate::support::app::spawn_app;
use reqwest::Method;

#[tokio::test]
async fn health_readiness_and_openapi() {
    let app = spawn_app().await;
    let (status, health) = app.send(Method::GET, "/healthz", None).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (status, ready) = app.send(Method::GET, "/readyz", None).await;
    assert_eq!((status, ready["store"].as_str()), (200, Some("embedded")));

    let (status, spec) = app.send(Method::GET, "/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );
    let paths = spec["paths"].as_object().unwrap();
    for path in [
        "/v1/identities/{identity}/registrations/{device_id}",
        "/v1/identities/{identity}/registrations",
        "/v1/identities/{identity}",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys()
        );
    }
    let put = &paths["/v1/identities/{identity}/registrations/{device_id}"]["put"];
    assert!(put["responses"]["201"].is_object() && put["responses"]["422"].is_object());
    // The registration forms name this node's apps (tenants a and b configure the same four).
    let forms = spec["components"]["schemas"]["RegistrationRequest"]["oneOf"]
        .as_array()
        .unwrap();
    let apns = forms.iter().find(|form| form["title"] == "apns").unwrap();
    assert_eq!(
        apns["properties"]["app"]["enum"],
        serde_json::json!(["ios"])
    );
    assert!(
        forms
            .iter()
            .any(|form| form["title"] == "apns (RFC 8599), app ios"),
        "{forms:?}"
    );
    // The channel's upgrade, with its documented success.
    let channel = &paths["/v1/channel"]["get"];
    assert!(channel["responses"]["101"].is_object(), "{channel}");
    assert!(
        channel["responses"]["422"]["content"].is_object(),
        "{channel}"
    );

    let (status, problem) = app.send(Method::GET, "/v2/nothing", None).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (404, Some("urn:ringcast:problem:not-found"))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_method_a_path_does_not_take_gets_405_with_allow() {
    let app = spawn_app().await;
    let trace = Method::from_bytes(b"TRACE").unwrap();
    for (method, path, allow) in [
        (trace.clone(), "/healthz", "GET"),
        (trace.clone(), "/readyz", "GET"),
        (trace.clone(), "/metrics", "GET"),
        (Method::POST, "/openapi.json", "GET"),
        (Method::GET, "/v1/calls", "POST"),
        (Method::PUT, "/v1/calls/c-1/end", "POST"),
        (Method::POST, "/v1/identities/alice", "DELETE"),
        (Method::DELETE, "/v1/identities/alice/registrations", "GET"),
        (
            Method::PATCH,
            "/v1/identities/alice/registrations/phone",
            "PUT, DELETE",
        ),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        let (_, problem) = crate::support::app::status_and_json(response).await;
        assert_eq!(problem["type"], "urn:ringcast:problem:method-not-allowed");
    }
    // The methods a path takes still work, and an unknown path is still 404.
    let (status, _) = app.send(Method::GET, "/healthz", None).await;
    assert_eq!(status, 200);
    let (status, _) = app.send(trace, "/nowhere", None).await;
    assert_eq!(status, 404);
    app.stop().await;
}
