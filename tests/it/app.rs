#![cfg(feature = "ssr")]
//! The application driven through `router()` without a socket: health,
//! the server-rendered page, static assets and a server function.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};

use crate::common;
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

/// The `list_uploads` server function, called with these headers.
async fn list_uploads(app: &TestApp, headers: &[(&str, &str)]) -> common::Answer {
    let mut h = vec![("content-type", "application/x-www-form-urlencoded")];
    h.extend_from_slice(headers);
    app.call("POST", "/api/list_uploads", &h, Body::empty())
        .await
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

/// A page of another site embedding the uploader (`public/embed.js`) loads
/// its code without the access token, with CORS for the origins the
/// server names, gzipped and revalidated; everything else still needs the
/// token, and only named origins may call the server functions or open a
/// WebSocket with the browser's cookie.
#[tokio::test]
async fn the_embeddable_uploader_loads_for_named_origins_and_nothing_else_opens() {
    let app = TestApp::with(|c| {
        c.cors_origin = vec!["https://shop.example".into()];
        c.access_token = Some(ferry::server::config::Secret::new("s3cret"));
    })
    .await;
    let script = b"export function mount() {}\n".repeat(50);
    std::fs::write(app.site.path().join("embed.js"), &script).unwrap();
    let gz = b"\x1f\x8b pretend gzip".to_vec();
    std::fs::write(app.site.path().join("embed.js.gz"), &gz).unwrap();
    let shop = ("origin", "https://shop.example");

    let a = app
        .call(
            "GET",
            "/embed.js",
            &[shop, ("accept-encoding", "gzip, br")],
            Body::empty(),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "no token needed for the code");
    assert_eq!(a.header("content-encoding"), Some("gzip"));
    assert_eq!(a.body.as_ref(), gz.as_slice(), "the .gz beside it");
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("https://shop.example")
    );
    assert_eq!(a.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(a.header("cache-control"), Some("no-cache"));
    let modified = a.header("last-modified").expect("a validator").to_string();
    let plain = app.call("GET", "/embed.js", &[shop], Body::empty()).await;
    assert_eq!(
        plain.body.as_ref(),
        script.as_slice(),
        "as is, to who takes no gzip"
    );
    assert!(plain.header("content-type").unwrap().contains("javascript"));
    let again = app
        .call(
            "GET",
            "/embed.js",
            &[shop, ("if-modified-since", &modified)],
            Body::empty(),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED, "downloaded once");
    let wasm = app
        .call("GET", "/pkg/ferry.wasm", &[shop], Body::empty())
        .await;
    assert_eq!(wasm.status, StatusCode::OK);
    assert_eq!(wasm.header("content-type"), Some("application/wasm"));
    let missing = app.call("GET", "/pkg/nothing.js", &[], Body::empty()).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let escape = app
        .call("GET", "/pkg/../../etc/passwd", &[], Body::empty())
        .await;
    assert_ne!(escape.status, StatusCode::OK);

    // The rest still needs the token, from the named page too.
    let list = |headers: Vec<(&'static str, &'static str)>| {
        let app = &app;
        async move { list_uploads(app, &headers).await.status }
    };

    let cross = ("sec-fetch-site", "cross-site");
    assert_eq!(list(vec![shop, cross]).await, StatusCode::UNAUTHORIZED);
    let bearer = ("authorization", "Bearer s3cret");
    assert_eq!(
        list(vec![shop, cross, bearer]).await,
        StatusCode::OK,
        "a named page, even cross-site"
    );
    assert_eq!(
        list(vec![("origin", "https://evil.example"), cross, bearer]).await,
        StatusCode::FORBIDDEN,
        "another site's page may not call the server functions"
    );
    let preflight = app
        .call(
            "OPTIONS",
            "/api/list_uploads",
            &[
                shop,
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization,content-type",
                ),
            ],
            Body::empty(),
        )
        .await;
    assert!(preflight.status.is_success());
    assert_eq!(
        preflight.header("access-control-allow-credentials"),
        Some("true")
    );

    // A WebSocket carries the browser's cookie from any page: only the
    // server's own and the named ones may open one.
    let id = app.create(10, &[bearer]).await;
    let ws = |origin: &'static str| {
        let (app, id) = (&app, id.clone());
        async move {
            app.call(
                "GET",
                &format!("{id}/ws"),
                &[
                    ("origin", origin),
                    bearer,
                    ("connection", "upgrade"),
                    ("upgrade", "websocket"),
                    ("sec-websocket-version", "13"),
                    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ],
                Body::empty(),
            )
            .await
            .status
        }
    };
    assert_eq!(ws("https://evil.example").await, StatusCode::FORBIDDEN);
    assert_ne!(ws("https://shop.example").await, StatusCode::FORBIDDEN);
}

/// `*` opens the tus API to every page, but never with the browser's
/// credentials: CORS forbids credentials for any origin.
#[tokio::test]
async fn any_origin_means_no_credentials() {
    let app = TestApp::with(|c| c.cors_origin = vec!["*".into()]).await;
    let a = app
        .call(
            "GET",
            "/pkg/ferry.wasm",
            &[("origin", "https://x.example")],
            Body::empty(),
        )
        .await;
    assert_eq!(a.header("access-control-allow-origin"), Some("*"));
    assert_eq!(a.header("access-control-allow-credentials"), None);
}

/// Embed tokens: minted by the host's back end with `--embed-secret`, each
/// names a person as an owner of their own (whichever of their tokens is
/// used), stands for the access token, never opens `/admin`, and is
/// refused once expired or when not signed with the server's key.
#[tokio::test]
async fn embed_tokens_name_owners_and_open_nothing_more() {
    use ferry::http::embed_token::mint;
    let app = TestApp::with(|c| {
        c.access_token = Some(ferry::server::config::Secret::new("admin-secret"));
        c.embed_secret = Some(ferry::server::config::Secret::new("embed-key"));
    })
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let alice = format!("Bearer {}", mint("embed-key", "alice", now + 3600).unwrap());
    let alice_later = format!("Bearer {}", mint("embed-key", "alice", now + 7200).unwrap());
    let bob = format!("Bearer {}", mint("embed-key", "bob", now + 3600).unwrap());
    let names = |auth: String| {
        let app = &app;
        async move {
            let a = list_uploads(app, &[("authorization", &auth)]).await;
            assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
            a.json()["uploads"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    let meta = format!("filename {}", common::b64(b"alice.txt"));
    let path = app
        .create(3, &[("authorization", &alice), ("upload-metadata", &meta)])
        .await;
    let done = app
        .patch(&path, 0, b"abc".to_vec(), &[("authorization", &alice)])
        .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT);
    // The answer to the last bytes says the SHA-256, so the page verifies
    // without asking again.
    // The SHA-256 of "abc", written out (not computed as the server does).
    const ABC: &str = "sha-256=:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=:";
    assert_eq!(
        done.header("repr-digest"),
        Some(ABC),
        "from the PATCH that finished it"
    );
    // A finished upload's HEAD tells its SHA-256 (RFC 9530), for a page
    // whose owner the listing does not know.
    let head = app
        .call(
            "HEAD",
            &path,
            &[common::TUS, ("authorization", &bob)],
            Body::empty(),
        )
        .await;
    assert_eq!(head.header("repr-digest"), Some(ABC), "from its HEAD");
    assert_eq!(names(alice.clone()).await, ["alice.txt"]);
    assert_eq!(
        names(alice_later).await,
        ["alice.txt"],
        "the same person, a fresh token"
    );
    assert!(
        names(bob.clone()).await.is_empty(),
        "another person sees nothing"
    );

    let admin = app
        .call(
            "GET",
            "/admin/hooks/dead",
            &[("authorization", &alice)],
            Body::empty(),
        )
        .await;
    assert_eq!(
        admin.status,
        StatusCode::UNAUTHORIZED,
        "never the operator's routes"
    );

    let expired = format!("Bearer {}", mint("embed-key", "alice", now - 1).unwrap());
    let forged = format!(
        "Bearer {}",
        mint("another-key", "alice", now + 3600).unwrap()
    );
    for (auth, says) in [(expired, "expired"), (forged, "not valid")] {
        let a = app
            .call(
                "HEAD",
                &path,
                &[common::TUS, ("authorization", &auth)],
                Body::empty(),
            )
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        let a = list_uploads(&app, &[("authorization", &auth)]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert!(
            String::from_utf8_lossy(&a.body).contains(says),
            "{:?}",
            a.body
        );
    }

    // A server without the key takes none of them for the access token.
    let closed = TestApp::with(|c| {
        c.access_token = Some(ferry::server::config::Secret::new("admin-secret"));
    })
    .await;
    let a = closed
        .call(
            "HEAD",
            &path,
            &[common::TUS, ("authorization", &bob)],
            Body::empty(),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

/// `*` and named origins together would leave cookies off for the named
/// ones while the guards let them in: refused at start-up.
#[tokio::test]
async fn any_origin_and_named_origins_are_not_mixed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ferry::server::config::Config::for_data_dir(dir.path());
    config.cors_origin = vec!["*".into(), "https://shop.example".into()];
    let err = ferry::server::bootstrap::state(config)
        .await
        .err()
        .expect("refused");
    assert!(err.message.contains("--cors-origin"), "{}", err.message);
}

use ferry::protocol::sample::of_bytes as sample;

/// The `likely_stored` server function asked about these (size, sample)
/// pairs with these headers: its status and its answer.
async fn likely_stored(
    app: &TestApp,
    files: &[(u64, &str)],
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let form: Vec<String> = files
        .iter()
        .enumerate()
        .map(|(i, (size, sample))| format!("files[{i}][size]={size}&files[{i}][sample]={sample}"))
        .collect();
    let mut h = vec![
        ("content-type", "application/x-www-form-urlencoded"),
        ("accept", "application/json"),
    ];
    h.extend_from_slice(headers);
    let a = app
        .call("POST", "/api/likely_stored", &h, form.join("&"))
        .await;
    (a.status, String::from_utf8_lossy(&a.body).into_owned())
}

#[tokio::test]
async fn a_large_files_sample_says_whether_hashing_it_first_may_spare_sending_it() {
    use common::{b64, bytes, sha256_hex};
    let app = app().await;
    let me = ("authorization", "Bearer SAMPLESAMPLESAMPLESAMPLE");
    let size = 3 << 20;
    // A finished upload with its SHA-256, as instant uploads need.
    let stored = bytes(size, 7);
    let store = |data: Vec<u8>, finish: bool| {
        let app = &app;
        async move {
            let meta = format!("sha256 {}", b64(sha256_hex(&data).as_bytes()));
            let path = app
                .create(data.len() as u64, &[("upload-metadata", &meta), me])
                .await;
            let n = if finish { data.len() } else { data.len() / 2 };
            app.patch(&path, 0, data[..n].to_vec(), &[me]).await;
            path
        }
    };
    let kept = store(stored.clone(), true).await;
    let s = sample(&stored);
    let yes = (StatusCode::OK, "[true]".to_string());
    let no = (StatusCode::OK, "[false]".to_string());
    assert_eq!(likely_stored(&app, &[(size as u64, &s)], &[me]).await, yes);

    // A byte changed in a sampled range, or another size: not stored.
    let mut changed = stored.clone();
    let r = &ferry::protocol::sample::ranges(size as u64)[9];
    changed[r.start as usize + 100] ^= 0x40;
    let other = sample(&changed);
    assert_eq!(
        likely_stored(&app, &[(size as u64, &other)], &[me]).await,
        no
    );
    assert_eq!(
        likely_stored(&app, &[(size as u64 + 1, &s)], &[me]).await,
        no
    );
    // A byte changed between the ranges is not seen: "maybe" (the whole
    // SHA-256 then decides, and tus.rs shows a wrong one matches nothing).
    let mut between = stored.clone();
    between[r.end as usize + 100] ^= 0x40;
    assert_eq!(
        likely_stored(&app, &[(size as u64, &sample(&between))], &[me]).await,
        yes
    );

    // Another owner, or nobody, is never told of it.
    let them = ("authorization", "Bearer OTHEROTHEROTHEROTHEROTHER");
    assert_eq!(likely_stored(&app, &[(size as u64, &s)], &[them]).await, no);
    assert_eq!(likely_stored(&app, &[(size as u64, &s)], &[]).await, no);

    // Several at once, each answered.
    let (status, body) =
        likely_stored(&app, &[(size as u64, &other), (size as u64, &s)], &[me]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "[false,true]"));

    // Unfinished uploads of the bytes are not copies.
    let unfinished = bytes(size, 8);
    store(unfinished.clone(), false).await;
    assert_eq!(
        likely_stored(&app, &[(size as u64, &sample(&unfinished))], &[me]).await,
        no
    );

    // A bounded number of uploads of one size is sampled, the newest: an
    // old copy behind as many newer finished uploads of its size is not
    // found.
    for seed in 0..ferry::core::SAMPLED_PER_SIZE as u8 {
        store(bytes(size, 100 + seed), true).await;
    }
    assert_eq!(likely_stored(&app, &[(size as u64, &s)], &[me]).await, no);
    let newest = store(stored.clone(), true).await;
    assert_eq!(likely_stored(&app, &[(size as u64, &s)], &[me]).await, yes);

    // Deleted: gone.
    for path in [&kept, &newest] {
        let r = app
            .call("DELETE", path, &[common::TUS], Body::empty())
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    assert_eq!(likely_stored(&app, &[(size as u64, &s)], &[me]).await, no);

    // Hostile questions: clear refusals with stable codes.
    let (status, body) = likely_stored(&app, &[(size as u64, "zz")], &[me]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("invalid_arguments"), "{body}");
    let upper = s.to_uppercase();
    let (status, _) = likely_stored(&app, &[(size as u64, &upper)], &[me]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let many: Vec<(u64, &str)> = (0..=ferry::api::MAX_SAMPLED_FILES as u64)
        .map(|i| (i, s.as_str()))
        .collect();
    let (status, body) = likely_stored(&app, &many, &[me]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("too_many_files"), "{body}");
    let (status, _) = likely_stored(&app, &[(u64::MAX, &s)], &[me]).await;
    assert_eq!(status, StatusCode::OK);
}
