#![cfg(feature = "ssr")]
//! Property tests for every header parser and for the offset arithmetic of
//! the byte store: parsers never panic, accept what they print, and the
//! store's bytes always match a simple model whatever the order of writes,
//! commits, discards and re-openings.

use ferry::core::{
    BlobStore, ChecksumAlgorithm, Commit, Concat, Durability, ResumableSha256, UploadId,
};
use ferry::http::headers::{parse_concat, parse_u64};
use ferry::protocol::metadata::Metadata;
use ferry::store::FsBlobStore;
use proptest::prelude::*;
use sha2::Digest;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn integers_round_trip_and_garbage_is_refused(v in 0u64..=i64::MAX as u64, s in "\\PC{0,30}") {
        prop_assert_eq!(parse_u64("X", &v.to_string()).unwrap(), v);
        if let Ok(n) = parse_u64("X", &s) {
            prop_assert!(!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
            prop_assert_eq!(s.parse::<u64>().unwrap(), n);
        }
    }

    #[test]
    fn metadata_round_trips(pairs in proptest::collection::btree_map("[a-zA-Z0-9_.-]{1,12}", proptest::option::of(proptest::collection::vec(any::<u8>(), 1..40)), 0..8)) {
        let header = pairs
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k} {}", base64_encode(v)),
                None => k.clone(),
            })
            .collect::<Vec<_>>()
            .join(",");
        let parsed = Metadata::parse(&header).unwrap();
        for (k, v) in &pairs {
            prop_assert_eq!(parsed.get(k), v.as_deref());
        }
        prop_assert_eq!(Metadata::parse(&parsed.encode()).unwrap(), parsed);
    }

    #[test]
    fn metadata_parser_never_panics(s in "\\PC{0,200}") {
        if let Ok(m) = Metadata::parse(&s) {
            prop_assert_eq!(Metadata::parse(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn checksums_round_trip(digest in proptest::collection::vec(any::<u8>(), 20..=20), s in "\\PC{0,80}") {
        let c = ferry::http::headers::parse_checksum(&format!("sha1 {}", base64_encode(&digest))).unwrap();
        prop_assert_eq!(c.algorithm, ChecksumAlgorithm::Sha1);
        prop_assert_eq!(c.expected, digest);
        let _ = ferry::http::headers::parse_checksum(&s);
    }

    #[test]
    fn concat_headers_round_trip(n in 1usize..6, s in "\\PC{0,120}") {
        let ids: Vec<UploadId> = (0..n).map(|_| UploadId::random()).collect();
        let header = format!("final;{}", ids.iter().map(|i| format!("/files/{i}")).collect::<Vec<_>>().join(" "));
        prop_assert_eq!(parse_concat(&header).unwrap(), Concat::Final(ids));
        let _ = parse_concat(&s);
    }

    #[test]
    fn upload_ids_parse_only_what_they_print(s in "\\PC{0,40}") {
        let id = UploadId::random();
        prop_assert_eq!(UploadId::parse(id.as_str()), Some(id));
        if let Some(parsed) = UploadId::parse(&s) {
            prop_assert_eq!(parsed.as_str(), s.as_str());
            prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
    }

    #[test]
    fn the_running_hash_survives_any_split(data in proptest::collection::vec(any::<u8>(), 0..3000), cuts in proptest::collection::vec(0usize..3000, 0..6)) {
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
        cuts.sort();
        let mut h = ResumableSha256::new();
        let mut at = 0;
        for c in cuts.into_iter().chain([data.len()]) {
            h.update(&data[at..c]);
            h = ResumableSha256::from_bytes(&h.to_bytes()).unwrap();
            at = c;
        }
        let expected: String = sha2::Sha256::digest(&data).iter().map(|b| format!("{b:02x}")).collect();
        prop_assert_eq!(h.finalize_hex(), expected);
    }
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[derive(Debug, Clone)]
enum Op {
    Write(usize),
    Commit,
    Discard,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..300_000).prop_map(Op::Write),
        2 => Just(Op::Commit),
        1 => Just(Op::Discard),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// The store's offsets against a model: committed bytes are exactly
    /// what was written before each commit; discards and re-openings drop
    /// what was not committed, never more.
    #[test]
    fn blob_offsets_match_a_model(ops in proptest::collection::vec(op(), 1..25)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = FsBlobStore::new(dir.path(), false).unwrap();
            let key = UploadId::random().to_string();
            store.create(&key).await.unwrap();
            let mut committed: Vec<u8> = Vec::new();
            let mut pending: Vec<u8> = Vec::new();
            let mut w = store.append_at(&key, 0, None).await.unwrap();
            let mut seed = 0u8;
            for op in ops {
                match op {
                    Op::Write(n) => {
                        seed = seed.wrapping_add(1);
                        let data: Vec<u8> = (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
                        w.write(data.clone().into()).await.unwrap();
                        pending.extend_from_slice(&data);
                    }
                    Op::Commit => {
                        committed.append(&mut pending);
                        assert_eq!(w.commit(Commit::Checkpoint(Durability::Cached)).await.unwrap(), committed.len() as u64);
                    }
                    Op::Discard => {
                        w.discard().await.unwrap();
                        pending.clear();
                    }
                    Op::Reopen => {
                        drop(w);
                        pending.clear();
                        w = store.append_at(&key, committed.len() as u64, None).await.unwrap();
                    }
                }
                assert_eq!(w.committed(), committed.len() as u64);
            }
            w.commit(Commit::Checkpoint(Durability::Cached)).await.unwrap();
            committed.append(&mut pending);
            let mut stream = store.read(&key, 0..committed.len() as u64).await.unwrap();
            let mut got = Vec::new();
            use futures_util::StreamExt;
            while let Some(c) = stream.next().await {
                got.extend_from_slice(&c.unwrap());
            }
            assert_eq!(got.len(), committed.len());
            assert!(got == committed);
        });
    }
}
