#![cfg(feature = "ssr")]
//! The WebSocket transport against the real binary: binary frames in,
//! durable offsets out, the close codes, and byte-identical results.

use crate::common;

use common::server::Server;
use common::{bytes, path_of, sha256_hex};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const MIB: usize = 1024 * 1024;

async fn create(server: &Server, length: usize) -> String {
    let resp = common::http_async()
        .post(server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", length.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    path_of(resp.headers()["location"].to_str().unwrap())
}

/// The real binary over a data folder in `dir` (started off the runtime).
async fn start(dir: &tempfile::TempDir) -> Server {
    let data = dir.path().join("data");
    tokio::task::spawn_blocking(move || Server::start(&data, &[]))
        .await
        .unwrap()
}

fn ws_url(server: &Server, path: &str, offset: usize) -> String {
    format!("ws://{}{path}/ws?offset={offset}", server.addr())
}

/// Sends frames and `end`; answers (offsets acknowledged, close code, reason).
async fn send_all(
    url: &str,
    frames: Vec<Vec<u8>>,
    end: bool,
) -> (Vec<u64>, Option<CloseCode>, String) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    for f in frames {
        if ws.send(Message::Binary(f.into())).await.is_err() {
            break;
        }
    }
    if end {
        let _ = ws.send(Message::Text("end".into())).await;
    }
    let mut acks = Vec::new();
    let mut close = (None, String::new());
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                acks.push(v["offset"].as_u64().unwrap());
            }
            Message::Close(Some(frame)) => {
                close = (Some(frame.code), frame.reason.to_string());
                break;
            }
            Message::Close(None) => break,
            _ => {}
        }
    }
    (acks, close.0, close.1)
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_upload_resumes_and_ends_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir).await;
    let size = 10 * MIB + 123;
    let content = bytes(size, 7);
    let path = create(&server, size).await;

    // First half, then the connection ends without `end`: kept.
    let half = 5 * MIB;
    let frames: Vec<Vec<u8>> = content[..half].chunks(MIB).map(|c| c.to_vec()).collect();
    let (acks, code, _) = send_all(&ws_url(&server, &path, 0), frames, true).await;
    assert_eq!(code, Some(CloseCode::Normal));
    assert_eq!(
        acks.last().copied(),
        Some(half as u64),
        "the durable offset is acknowledged"
    );
    assert!(acks.windows(2).all(|w| w[0] <= w[1]));

    // A wrong offset is refused with 1008 and a reason clients can read.
    let (_, code, reason) = send_all(&ws_url(&server, &path, 0), vec![vec![1; 10]], true).await;
    assert_eq!(code, Some(CloseCode::Policy));
    assert!(reason.starts_with("offset_mismatch"), "{reason}");

    // The rest, ending by reaching the length.
    let frames: Vec<Vec<u8>> = content[half..].chunks(MIB).map(|c| c.to_vec()).collect();
    let (acks, code, _) = send_all(&ws_url(&server, &path, half), frames, false).await;
    assert_eq!(code, Some(CloseCode::Normal));
    assert_eq!(acks.last().copied(), Some(size as u64));

    let got = common::http_async()
        .get(server.url(&path))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let body = got.bytes().await.unwrap();
    assert_eq!(sha256_hex(&body), sha256_hex(&content));
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_frames_close_with_1009_and_unknown_uploads_are_404() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir).await;
    let path = create(&server, 40 * MIB).await;
    let (_, code, _) = send_all(&ws_url(&server, &path, 0), vec![vec![0; 17 * MIB]], true).await;
    assert_eq!(code, Some(CloseCode::Size));
    let head = common::http_async()
        .head(server.url(&path))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.headers()["upload-offset"],
        "0",
        "nothing of a refused frame is stored"
    );

    let err = tokio_tungstenite::connect_async(format!(
        "ws://{}/files/AAAAAAAAAAAAAAAAAAAAAA/ws",
        server.addr()
    ))
    .await;
    match err {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 404),
        other => panic!("expected a 404, got {other:?}"),
    }
}
