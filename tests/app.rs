#![cfg(feature = "ssr")]
//! The application driven through `router()` without a socket: health,
//! the server-rendered page, static assets and a server function.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};

mod common;
use common::TestApp;

async fn app() -> TestApp {
    TestApp::new().await
}

async fn send(app: &TestApp, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let a = app.send(req).await;
    (
        a.status,
        a.headers,
        String::from_utf8_lossy(&a.body).into_owned(),
    )
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn healthz_reports_ok_and_version() {
    let app = app().await;
    let (status, headers, body) = send(&app, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn page_renders_a_working_form_before_any_script() {
    let app = app().await;
    let (status, headers, body) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(body.contains("<title>Ferry</title>"), "no title in {body}");
    let form_start = body.find("<form").expect("a <form>");
    let form_end = body[form_start..].find("</form>").expect("a closed form") + form_start;
    let form = &body[form_start..form_end];
    assert!(form.contains(r#"method="post""#), "{form}");
    assert!(form.contains(r#"enctype="multipart/form-data""#), "{form}");
    assert!(form.contains(r#"type="file""#), "{form}");
    assert!(form.contains("multiple"), "{form}");
    // The page loads its WebAssembly bundle.
    assert!(body.contains("/pkg/ferry"), "no hydration script in {body}");
}

#[tokio::test]
async fn unknown_page_is_404() {
    let app = app().await;
    let (status, _, body) = send(&app, get("/no/such/page")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("Not found"));
}

#[tokio::test]
async fn wasm_bundle_is_served_as_application_wasm() {
    let app = app().await;
    let (status, headers, body) = send(&app, get("/pkg/ferry.wasm")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/wasm");
    assert!(body.as_bytes().starts_with(b"\0asm"));
}

#[tokio::test]
async fn server_function_answers_with_the_version() {
    let app = app().await;
    let req = Request::post("/api/describe_server")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert!(json["uptime_secs"].is_u64());
}
