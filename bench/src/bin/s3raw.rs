//! The S3 limit: one multipart upload of the same bytes straight into the
//! store Ferry's S3 rows use, in parts of `<part>` bytes sent one after
//! another as one Ferry writer sends them, then completed. No protocol, no
//! hash, no record.
//!
//!   s3raw <endpoint> <bucket> <bytes> <part>
//!
//! Credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Prints one
//! JSON line: seconds and bytes.

use ferry_bench::{block, spans};
use object_store::aws::AmazonS3Builder;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::PutPayload;
use std::time::Instant;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (endpoint, bucket) = (&args[0], &args[1]);
    let total: u64 = args[2].parse().unwrap();
    let part: u64 = args[3].parse().unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store = AmazonS3Builder::from_env()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .build()
        .expect("store");
    let data = bytes::Bytes::from(block());
    let path = Path::from(format!("raw-{}", std::process::id()));
    let started = Instant::now();
    let upload = store.create_multipart(&path).await.expect("create");
    let mut parts: Vec<PartId> = Vec::new();
    let mut at = 0u64;
    while at < total {
        let n = part.min(total - at);
        // The part's bytes, from the repeated block, without copying.
        let payload: PutPayload = spans(at, n).map(|span| data.slice(span)).collect();
        let id = store
            .put_part(&path, &upload, parts.len(), payload)
            .await
            .expect("part");
        parts.push(id);
        at += n;
    }
    store
        .complete_multipart(&path, &upload, parts)
        .await
        .expect("complete");
    let seconds = started.elapsed().as_secs_f64();
    println!("{{\"seconds\":{seconds},\"bytes\":{total}}}");
}
