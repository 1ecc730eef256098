#![cfg(feature = "ssr")]
//! Conformance of the storage seams: the same suites run against the
//! embedded implementations (local disk, SQLite, in-process locks) and the
//! distributed ones (S3 through a real s3s-fs server, PostgreSQL through a
//! real server, advisory locks), then the whole tus service over each pair.

use crate::common;

use axum::body::Body;
use axum::http::StatusCode;
use bytes::Bytes;
use common::services::{Postgres, S3, S3_ACCESS_KEY, S3_SECRET_KEY};
use common::{bytes, sha256_hex, TestApp, OCTET, TUS};
use ferry::core::hooks::{Delivery, HookPoint, OutboxStore};
use ferry::core::{
    BlobStore, Commit, Concat, Durability, EventStore, Locker, MetaStore, Owner, UploadId,
    UploadRecord, UploadState,
};
use ferry::protocol::error::ErrorCode;
use ferry::protocol::events::EventKind;
use ferry::protocol::metadata::Metadata;
use ferry::server::config::Config;
use ferry::store::blob::s3::{S3BlobStore, S3Location, TailStore, MIN_PART_SIZE};
use ferry::store::{FsBlobStore, LocalLocker, SqlStore};
use futures_util::TryStreamExt;
use std::sync::Arc;
use std::time::Duration;

const PART: usize = MIN_PART_SIZE;

async fn read_all(store: &dyn BlobStore, key: &str, range: std::ops::Range<u64>) -> Vec<u8> {
    let chunks: Vec<Bytes> = store
        .read(key, range)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    chunks.concat()
}

/// The blob store contract: appends that cross part boundaries, commits
/// that hand out state, reopening from recorded state (also after a writer
/// that never committed), discarding, finishing, ranged reads, deletion.
async fn blob_suite(store: &dyn BlobStore) {
    let data = bytes(2 * PART + PART / 2 + 123, 7);
    let key = "BlobSuiteKey00000001";
    store.create(key).await.unwrap();

    // A first small commit: less than a part.
    let mut w = store.append_at(key, 0, None).await.unwrap();
    w.write(Bytes::copy_from_slice(&data[..1000]))
        .await
        .unwrap();
    assert_eq!(
        w.commit(Commit::Checkpoint(Durability::Synced))
            .await
            .unwrap(),
        1000
    );
    let state = w.state();
    w.settle().await.unwrap();
    drop(w);
    assert_eq!(store.len(key, state.as_deref()).await.unwrap(), Some(1000));

    // Reopened from the recorded state, on "another instance": past a part.
    let mut w = store.append_at(key, 1000, state.as_deref()).await.unwrap();
    assert_eq!(w.committed(), 1000);
    w.write(Bytes::copy_from_slice(&data[1000..PART + 500]))
        .await
        .unwrap();
    assert_eq!(
        w.commit(Commit::Checkpoint(Durability::Synced))
            .await
            .unwrap(),
        (PART + 500) as u64
    );
    let state = w.state();
    w.settle().await.unwrap();

    // Bytes written and discarded count for nothing.
    w.write(bytes(PART + 10, 99).into()).await.unwrap();
    w.discard().await.unwrap();
    drop(w);

    // A writer that sends a whole part and dies before committing: the
    // next one starts from the recorded state and sends that part again.
    let mut w = store
        .append_at(key, (PART + 500) as u64, state.as_deref())
        .await
        .unwrap();
    w.write(bytes(PART, 42).into()).await.unwrap();
    drop(w);
    // At least what was committed is stored (a file may hold more, which
    // the next writer drops).
    let stored = store.len(key, state.as_deref()).await.unwrap().unwrap();
    assert!(stored >= (PART + 500) as u64);
    let mut w = store
        .append_at(key, (PART + 500) as u64, state.as_deref())
        .await
        .unwrap();
    for chunk in data[PART + 500..].chunks(300_007) {
        w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    assert_eq!(
        w.commit(Commit::Finish(Durability::Synced)).await.unwrap(),
        data.len() as u64
    );
    assert_eq!(w.state(), None, "a finished blob needs no state");
    w.settle().await.unwrap();
    drop(w);

    let n = data.len() as u64;
    assert_eq!(store.len(key, None).await.unwrap(), Some(n));
    assert_eq!(
        read_all(store, key, 0..n).await,
        data,
        "every byte, in order"
    );
    let (a, b) = (PART as u64 - 3, PART as u64 + 5);
    assert_eq!(
        read_all(store, key, a..b).await,
        &data[a as usize..b as usize]
    );
    assert!(read_all(store, key, 5..5).await.is_empty());
    store.delete(key, None).await.unwrap();
    store.delete(key, None).await.unwrap();
    assert_eq!(store.len(key, None).await.unwrap(), None);

    // Small and empty blobs.
    for (key, size) in [
        ("BlobSuiteSmall000001", 10_000),
        ("BlobSuiteEmpty000001", 0),
    ] {
        let small = bytes(size, 3);
        store.create(key).await.unwrap();
        let mut w = store.append_at(key, 0, None).await.unwrap();
        w.write(Bytes::copy_from_slice(&small)).await.unwrap();
        assert_eq!(
            w.commit(Commit::Finish(Durability::Synced)).await.unwrap(),
            size as u64
        );
        w.settle().await.unwrap();
        assert_eq!(store.len(key, None).await.unwrap(), Some(size as u64));
        assert_eq!(read_all(store, key, 0..size as u64).await, small);
        store.delete(key, None).await.unwrap();
    }

    // An abandoned blob (parts and a tail stored) is removed whole.
    let key = "BlobSuiteAbandoned01";
    store.create(key).await.unwrap();
    let mut w = store.append_at(key, 0, None).await.unwrap();
    w.write(Bytes::copy_from_slice(&data[..PART + 77]))
        .await
        .unwrap();
    w.commit(Commit::Checkpoint(Durability::Synced))
        .await
        .unwrap();
    let state = w.state();
    w.settle().await.unwrap();
    drop(w);
    store.delete(key, state.as_deref()).await.unwrap();
    assert_eq!(store.len(key, None).await.unwrap(), None);

    // The store lists the keys it holds bytes for, finished or not, each
    // once (the keys above are not ones Ferry makes, and are not listed).
    let finished = UploadId::random().to_string();
    let unfinished = UploadId::random().to_string();
    let mut states = Vec::new();
    for (key, size, end) in [
        (&finished, 10, Commit::Finish(Durability::Synced)),
        (
            &unfinished,
            PART + 10,
            Commit::Checkpoint(Durability::Synced),
        ),
    ] {
        store.create(key).await.unwrap();
        let mut w = store.append_at(key, 0, None).await.unwrap();
        w.write(bytes(size, 5).into()).await.unwrap();
        w.commit(end).await.unwrap();
        states.push(w.state());
        w.settle().await.unwrap();
    }
    let mut expected = vec![finished.clone(), unfinished.clone()];
    expected.sort();
    assert_eq!(all_keys(store).await, expected);
    store.delete(&finished, None).await.unwrap();
    store
        .delete(&unfinished, states[1].as_deref())
        .await
        .unwrap();
    assert_eq!(all_keys(store).await, Vec::<String>::new());
}

/// Every key a store lists, in order.
async fn all_keys(store: &dyn BlobStore) -> Vec<String> {
    let batches: Vec<Vec<String>> = store.keys().try_collect().await.unwrap();
    let mut keys = batches.concat();
    keys.sort();
    keys
}

fn record(owner: &Owner, offset: u64, created_at: i64) -> UploadRecord {
    let id = UploadId::random();
    UploadRecord {
        blob_key: id.to_string(),
        id,
        owner: owner.clone(),
        length: Some(1000),
        offset,
        metadata: Metadata::parse("filename bmFtZS50eHQ=").unwrap(),
        concat: Concat::None,
        state: UploadState::Active,
        sha256: None,
        hash_state: Some(vec![1, 2, 3]),
        blob_state: None,
        created_at,
        updated_at: created_at,
        expires_at: Some(created_at + 60_000),
        completed_at: None,
        idempotency_key: None,
    }
}

/// Expiry: what the sweep finds and may expire is an unfinished upload or
/// a finished part past its time, never a finished file (even one with a
/// stale expiry); and the upgrade gives parts finished before it an
/// expiry a day after they finished (`run_sql` runs the migration's
/// statement on the store's database).
async fn expiry_suite<F, Fut>(store: &SqlStore, run_sql: F)
where
    F: FnOnce(&'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let owner = Owner::token("expiry-suite");
    let at = |state: UploadState, concat: Concat, expires_at: Option<i64>| {
        let mut r = record(&owner, 1000, 1_000);
        r.state = state;
        r.concat = concat;
        r.expires_at = expires_at;
        if state == UploadState::Complete {
            r.completed_at = Some(5_000);
            r.hash_state = None;
        }
        r
    };
    let active = at(UploadState::Active, Concat::None, Some(10_000));
    let part = at(UploadState::Complete, Concat::Partial, Some(10_000));
    let file = at(UploadState::Complete, Concat::None, Some(10_000));
    let old_part = at(UploadState::Complete, Concat::Partial, None);
    for r in [&active, &part, &file, &old_part] {
        store.insert(r, &[]).await.unwrap();
    }
    let due: Vec<UploadId> = store
        .expired(20_000, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .filter(|id| [&active.id, &part.id, &file.id, &old_part.id].contains(&id))
        .collect();
    assert_eq!(due.len(), 2, "{due:?}");
    assert!(due.contains(&active.id) && due.contains(&part.id));
    assert!(store.expire(&file.id, 20_000, &[]).await.unwrap().is_none());
    assert_eq!(
        store.get(&file.id).await.unwrap().unwrap().state,
        UploadState::Complete
    );
    assert!(store.expire(&part.id, 20_000, &[]).await.unwrap().is_some());
    assert_eq!(
        store.get(&part.id).await.unwrap().unwrap().state,
        UploadState::Expired
    );

    run_sql(include_str!(
        "../../migrations/sqlite/0008_finished_parts_expire.sql"
    ))
    .await;
    let upgraded = store.get(&old_part.id).await.unwrap().unwrap();
    assert_eq!(upgraded.expires_at, Some(5_000 + 86_400_000));
    assert_eq!(
        store.get(&file.id).await.unwrap().unwrap().expires_at,
        Some(10_000)
    );
}

/// What the per-owner limits read, kept by triggers, follows every kind
/// of change to an owner's uploads (inserts of every state, appends, a
/// length learnt late, completion, instant uploads, expiry of unfinished
/// uploads and finished parts, deletion, pruning, changes refused or rolled
/// back), always equal to the sum over the records the test itself keeps;
/// instant uploads and deletions racing on one blob neither deadlock nor
/// miscount; and the migration, run again on a spoiled table, counts
/// afresh from the records (`run_sql` runs SQL on the store's database).
async fn usage_suite<F, Fut>(store: &SqlStore, migration: &'static str, run_sql: F)
where
    F: Fn(&'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use ferry::core::meta::Usage;
    use std::collections::HashMap;
    let owners = [Owner::token("usage-a"), Owner::token("usage-b")];
    // The test's own account of every record: what the usage must be.
    let mut kept: HashMap<UploadId, UploadRecord> = HashMap::new();
    let expected = |kept: &HashMap<UploadId, UploadRecord>, owner: &Owner| {
        let mut u = Usage::default();
        for r in kept.values().filter(|r| &r.owner == owner) {
            if r.state == UploadState::Expired {
                continue;
            }
            if r.blob_key == r.id.as_str() {
                u.bytes += r.length.unwrap_or(r.offset);
            }
            u.unfinished += u64::from(r.state == UploadState::Active);
        }
        u
    };
    async fn check(
        store: &SqlStore,
        owners: &[Owner],
        want: impl Fn(&Owner) -> ferry::core::meta::Usage,
        step: &str,
    ) {
        for owner in owners {
            assert_eq!(
                store.usage(owner).await.unwrap(),
                want(owner),
                "{owner:?} after {step}"
            );
        }
    }
    assert_eq!(store.usage(&owners[0]).await.unwrap(), Usage::default());

    // A random walk over every kind of change, the same each run.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut now = 10_000;
    let mut done = [0u32; 11];
    for round in 0..400 {
        now += 1;
        let owner = owners[next(2) as usize].clone();
        // In the order they were made (IDs are random, and so is a hash
        // map's order), so that the walk is the same each run.
        let mut mine: Vec<&UploadRecord> = kept.values().filter(|r| r.owner == owner).collect();
        mine.sort_by_key(|r| r.created_at);
        let mine: Vec<UploadId> = mine.into_iter().map(|r| r.id.clone()).collect();
        let pick = |k: u64| mine.get(k as usize % mine.len().max(1)).cloned();
        let op = next(10) as usize;
        let step = format!("round {round}, change {op}");
        match op {
            // A new upload: of a known length, or of a length given later,
            // some of them parts of a file sent in parts.
            0 | 1 => {
                let mut r = record(&owner, 0, now);
                if op == 1 {
                    r.length = None;
                }
                if next(3) == 0 {
                    r.concat = Concat::Partial;
                }
                assert!(store.insert(&r, &[]).await.unwrap());
                kept.insert(r.id.clone(), r);
            }
            // Bytes arrive: a writer's commit from the offset it found,
            // and a stale one that must change nothing.
            2 => {
                let Some(id) = pick(next(1000)) else { continue };
                let mut r = kept[&id].clone();
                if r.state != UploadState::Active {
                    continue;
                }
                let from = r.offset;
                r.offset = (from + 1 + next(300)).min(r.length.unwrap_or(u64::MAX));
                r.updated_at = now;
                let mut stale = r.clone();
                stale.offset += 1;
                assert!(store.advance_with(&stale, from + 1, &[]).await.is_err());
                store.advance_with(&r, from, &[]).await.unwrap();
                kept.insert(id, r);
            }
            // A deferred length becomes known, or the upload completes.
            3 => {
                let Some(id) = pick(next(1000)) else { continue };
                let mut r = kept[&id].clone();
                if r.state != UploadState::Active {
                    continue;
                }
                match r.length {
                    None => r.length = Some(r.offset + next(500)),
                    Some(length) => {
                        r.offset = length;
                        r.state = UploadState::Complete;
                        r.sha256 = Some(format!("{:064x}", next(1 << 40)));
                        r.hash_state = None;
                        r.completed_at = Some(now);
                    }
                }
                store.update(&r).await.unwrap();
                kept.insert(id, r);
            }
            // An instant upload shares another's blob: it counts nothing;
            // sharing a blob already gone stores nothing (the record it
            // inserted first is rolled back).
            4 => {
                // Half the time from an expired upload, if there is one.
                let gone: Vec<&UploadId> = mine
                    .iter()
                    .filter(|id| kept[*id].state == UploadState::Expired)
                    .collect();
                let id = match (next(2), gone.is_empty()) {
                    (0, false) => gone[next(gone.len() as u64) as usize].clone(),
                    _ => match pick(next(1000)) {
                        Some(id) => id,
                        None => continue,
                    },
                };
                let source = kept[&id].clone();
                let mut r = record(&owner, 0, now);
                r.blob_key = source.blob_key.clone();
                r.length = source.length;
                r.offset = source.offset;
                r.state = UploadState::Complete;
                r.completed_at = Some(now);
                let stored = store.insert(&r, &[]).await.unwrap();
                let gone = !kept
                    .values()
                    .any(|k| k.blob_key == source.blob_key && k.state != UploadState::Expired);
                assert_eq!(stored, !gone, "{step}");
                if stored {
                    kept.insert(r.id.clone(), r);
                } else {
                    done[10] += 1;
                }
            }
            // Expiry takes unfinished uploads and finished parts.
            5 => {
                let Some(id) = pick(next(1000)) else { continue };
                let expired = store.expire(&id, now, &[]).await.unwrap().is_some();
                let r = kept.get_mut(&id).unwrap();
                let may = r.state == UploadState::Active
                    || (r.state == UploadState::Complete && r.concat == Concat::Partial);
                assert_eq!(expired, may, "{step}");
                if expired {
                    r.state = UploadState::Expired;
                }
            }
            6 => {
                let Some(id) = pick(next(1000)) else { continue };
                assert!(store.delete(&id, &[]).await.unwrap().is_some());
                kept.remove(&id);
            }
            7 => {
                store.prune_expired(now + 1).await.unwrap();
                kept.retain(|_, r| r.state != UploadState::Expired);
            }
            // Records that arrive finished, or part-way with no length.
            8 => {
                let mut r = record(&owner, 0, now);
                if next(2) == 0 {
                    r.offset = 1000;
                    r.state = UploadState::Complete;
                    r.completed_at = Some(now);
                    r.hash_state = None;
                } else {
                    r.length = None;
                    r.offset = 1 + next(700);
                }
                assert!(store.insert(&r, &[]).await.unwrap());
                kept.insert(r.id.clone(), r);
            }
            // A record that is already there is refused, changing nothing.
            _ => {
                let Some(id) = pick(next(1000)) else { continue };
                assert!(store.insert(&kept[&id], &[]).await.is_err());
            }
        }
        done[op] += 1;
        check(store, &owners, |o| expected(&kept, o), &step).await;
    }
    assert!(
        done.iter().all(|&n| n > 0),
        "every kind of change happened, and a share of a gone blob: {done:?}"
    );

    // Instant uploads and deletions of one blob's records, at once: each
    // takes the owner's count and the blob's reference in one order, so
    // none waits on the other for ever (PostgreSQL would end one with a
    // deadlock error).
    let owner = Owner::token("usage-racing");
    let mut source = record(&owner, 1000, now);
    source.state = UploadState::Complete;
    source.completed_at = Some(now);
    assert!(store.insert(&source, &[]).await.unwrap());
    let racers = (0..8).map(|_| {
        let source = source.clone();
        async move {
            for _ in 0..15 {
                let mut r = record(&source.owner, 1000, source.created_at);
                r.blob_key = source.blob_key.clone();
                r.state = UploadState::Complete;
                assert!(store.insert(&r, &[]).await.unwrap());
                let deleted = store.delete(&r.id, &[]).await.unwrap().unwrap();
                assert!(deleted.blob_in_use, "the source still holds the blob");
            }
        }
    });
    futures_util::future::join_all(racers).await;
    assert_eq!(
        store.usage(&owner).await.unwrap(),
        Usage {
            bytes: 1000,
            unfinished: 0
        }
    );
    let last = store.delete(&source.id, &[]).await.unwrap().unwrap();
    assert!(!last.blob_in_use, "every shared reference was given back");
    assert_eq!(store.usage(&owner).await.unwrap(), Usage::default());

    // Spoiled, then the migration again: it counts afresh.
    run_sql("UPDATE owner_usage SET bytes = bytes + 7, unfinished = unfinished + 1").await;
    let spoiled = store.usage(&owners[0]).await.unwrap();
    assert_eq!(spoiled.bytes, expected(&kept, &owners[0]).bytes + 7);
    run_sql(migration).await;
    check(
        store,
        &owners,
        |o| expected(&kept, o),
        "the migration again",
    )
    .await;
    assert_eq!(store.usage(&owner).await.unwrap(), Usage::default());
}

/// Idempotency keys: one upload per owner and key while it is not
/// expired; another owner's key is another key.
async fn idempotency_suite(store: &SqlStore) {
    let alice = Owner::token("alice-keys");
    let bob = Owner::token("bob-keys");
    let keyed = |owner: &Owner| UploadRecord {
        idempotency_key: Some("k-1".into()),
        ..record(owner, 0, 5_000)
    };
    let first = keyed(&alice);
    store.insert(&first, &[]).await.unwrap();
    let again = keyed(&alice);
    assert!(
        store.insert(&again, &[]).await.is_err(),
        "a second upload with the same owner and key"
    );
    assert_eq!(
        store.get(&again.id).await.unwrap(),
        None,
        "nothing of it kept"
    );
    store.insert(&keyed(&bob), &[]).await.unwrap();
    let found = store.find_by_idempotency_key(&alice, "k-1").await.unwrap();
    assert_eq!(found.as_ref(), Some(&first));
    assert_eq!(
        store.find_by_idempotency_key(&alice, "k-2").await.unwrap(),
        None
    );
    // Expired, its key is free again.
    store.expire(&first.id, 6_000, &[]).await.unwrap();
    assert_eq!(
        store.find_by_idempotency_key(&alice, "k-1").await.unwrap(),
        None
    );
    let next = keyed(&alice);
    store.insert(&next, &[]).await.unwrap();
    let found = store.find_by_idempotency_key(&alice, "k-1").await.unwrap();
    assert_eq!(found.map(|r| r.id), Some(next.id));
}

/// Paging through an owner's list with its cursor gives every upload but
/// the expired once, newest first and ties (the same millisecond) by ID,
/// whatever the page size.
async fn list_walk(store: &SqlStore) {
    use ferry::core::meta::ListCursor;
    let owner = Owner::token("pager");
    let mut made = Vec::new();
    for i in 0..40 {
        let mut r = record(&owner, 0, 10_000 + i / 3);
        if i % 7 == 0 {
            r.state = UploadState::Expired;
        }
        store.insert(&r, &[]).await.unwrap();
        made.push(r);
    }
    made.retain(|r| r.state != UploadState::Expired);
    // The whole list in one page: the database orders ties by its own
    // collation, which the cursor's `id > ?` follows too.
    let whole = store.list_by_owner(&owner, None, 1000).await.unwrap();
    let mut ids: Vec<_> = whole.iter().map(|r| r.id.to_string()).collect();
    ids.sort();
    let mut want: Vec<_> = made.iter().map(|r| r.id.to_string()).collect();
    want.sort();
    assert_eq!(ids, want);
    assert!(whole.windows(2).all(|w| w[0].created_at >= w[1].created_at));
    let wanted: Vec<_> = whole.into_iter().map(|r| r.id).collect();
    for page in [1, 4, 5, 100] {
        let mut seen = Vec::new();
        let mut after: Option<ListCursor> = None;
        loop {
            let got = store
                .list_by_owner(&owner, after.as_ref(), page)
                .await
                .unwrap();
            assert!(got.len() <= page as usize);
            let Some(last) = got.last() else { break };
            after = Some(ListCursor {
                created_at: last.created_at,
                id: last.id.clone(),
            });
            seen.extend(got.into_iter().map(|r| r.id));
        }
        assert_eq!(seen, wanted, "pages of {page}");
    }
}

/// The record and event store contract.
async fn record_suite(store: &SqlStore) {
    let alice = Owner::token("alice");
    let bob = Owner::token("bob");
    let mut a = record(&alice, 0, 1_000);
    let b = record(&alice, 0, 2_000);
    let c = record(&bob, 0, 3_000);
    for r in [&a, &b, &c] {
        store.insert(r, &[]).await.unwrap();
    }
    assert!(store.insert(&a, &[]).await.is_err(), "IDs are unique");
    assert_eq!(store.get(&a.id).await.unwrap().as_ref(), Some(&a));
    assert_eq!(store.get(&UploadId::random()).await.unwrap(), None);

    // Offsets, hash and blob state change together.
    a.offset = 600;
    a.hash_state = Some(vec![9; 120]);
    a.blob_state = Some(r#"{"u":"upload-1","p":[["etag",5242880]]}"#.into());
    a.updated_at = 1_500;
    store.update(&a).await.unwrap();
    assert_eq!(store.get(&a.id).await.unwrap().as_ref(), Some(&a));

    // A writer's commit moves the record on only from where it found it.
    let mut stale = a.clone();
    a.offset = 800;
    store.advance_with(&a, 600, &[]).await.unwrap();
    stale.offset = 700;
    let refused = store.advance_with(&stale, 600, &[]).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::OffsetMismatch);
    let news = [delivery(HookPoint::PostReceive, &stale, 1_700)];
    assert!(store.advance_with(&stale, 600, &news).await.is_err());
    assert_eq!(
        store.get(&a.id).await.unwrap().as_ref(),
        Some(&a),
        "untouched"
    );
    a.offset = 600;
    store.update(&a).await.unwrap();

    // Complete: found for instant upload by owner, hash and length only.
    a.offset = 1000;
    a.state = UploadState::Complete;
    a.sha256 = Some("ab".repeat(32));
    a.hash_state = None;
    a.blob_state = None;
    a.expires_at = None;
    a.completed_at = Some(1_600);
    store.update(&a).await.unwrap();
    let twin = store
        .find_complete(&alice, &"ab".repeat(32), 1000)
        .await
        .unwrap();
    assert_eq!(twin.map(|t| t.id), Some(a.id.clone()));
    assert!(store
        .find_complete(&bob, &"ab".repeat(32), 1000)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .find_complete(&alice, &"ab".repeat(32), 999)
        .await
        .unwrap()
        .is_none());

    // Listing: the owner's, newest first.
    let listed: Vec<_> = store
        .list_by_owner(&alice, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, vec![b.id.clone(), a.id.clone()]);
    list_walk(store).await;
    // The active ones, a page of one at a time, in order of ID.
    let mut active = Vec::new();
    while let Some(r) = store.active(active.last(), 1).await.unwrap().pop() {
        active.push(r.id);
    }
    assert!(active.contains(&b.id) && active.contains(&c.id) && !active.contains(&a.id));
    assert!(active.windows(2).all(|w| w[0].as_str() < w[1].as_str()));
    let expired = store.expired(2_000 + 60_000, 10).await.unwrap();
    assert_eq!(
        expired.iter().map(|r| &r.id).collect::<Vec<_>>(),
        vec![&b.id]
    );

    // An instant upload shares a blob: deleting one keeps it in use.
    let mut shared = record(&alice, 1000, 4_000);
    shared.blob_key = a.blob_key.clone();
    store.insert(&shared, &[]).await.unwrap();
    let gone = store.delete(&a.id, &[]).await.unwrap().unwrap();
    assert!(gone.blob_in_use);
    let gone = store.delete(&shared.id, &[]).await.unwrap().unwrap();
    assert!(!gone.blob_in_use);
    assert_eq!(gone.blob_key, a.blob_key);
    assert!(store.delete(&a.id, &[]).await.unwrap().is_none());

    // Expired records are pruned after their retention.
    let mut e = b.clone();
    e.state = UploadState::Expired;
    e.updated_at = 5_000;
    store.update(&e).await.unwrap();
    assert_eq!(store.prune_expired(4_000).await.unwrap(), 0);
    assert_eq!(store.prune_expired(6_000).await.unwrap(), 1);
    assert!(store.get(&b.id).await.unwrap().is_none());

    // Events: increasing IDs, scoped to their owner.
    let before = store.latest().await.unwrap();
    let summary = ferry::core::events::summary(&c);
    let e1 = store
        .append(&alice, EventKind::Created, &summary, 10)
        .await
        .unwrap();
    let e2 = store
        .append(&bob, EventKind::Progress, &summary, 20)
        .await
        .unwrap();
    let e3 = store
        .append(&alice, EventKind::Completed, &summary, 30)
        .await
        .unwrap();
    assert!(before < e1 && e1 < e2 && e2 < e3);
    assert_eq!(store.latest().await.unwrap(), e3);
    let seen = store.after(&alice, before, 10).await.unwrap();
    assert_eq!(seen.iter().map(|e| e.id).collect::<Vec<_>>(), vec![e1, e3]);
    assert_eq!(seen[1].kind.as_str(), "upload.completed");
    assert_eq!(seen[0].upload.id, c.id.to_string());
    assert_eq!(store.after(&alice, e1, 10).await.unwrap().len(), 1);
    assert_eq!(store.prune(25).await.unwrap(), 2);
    assert_eq!(store.after(&alice, before, 10).await.unwrap().len(), 1);

    // An upload's progress replaces its last progress; owners' latest IDs
    // are their own.
    let p1 = store
        .append(&alice, EventKind::Progress, &summary, 40)
        .await
        .unwrap();
    let p2 = store
        .append(&alice, EventKind::Progress, &summary, 41)
        .await
        .unwrap();
    let progress: Vec<_> = store
        .after(&alice, e3, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(progress, vec![p2], "{p1} was replaced");
    assert_eq!(store.latest_of(&alice).await.unwrap(), p2);
    assert_eq!(store.latest_of(&Owner::token("nobody")).await.unwrap(), 0);
}

/// Event IDs from several writers at once (several instances on one
/// database) become visible in order: a reader following the log by ID
/// never skips one.
async fn event_order_suite(stores: &[Arc<SqlStore>]) {
    let owner = Owner::token("order");
    let rec = record(&owner, 0, 1);
    let summary = ferry::core::events::summary(&rec);
    let start = stores[0].latest().await.unwrap();
    let writers: Vec<_> = stores
        .iter()
        .cloned()
        .map(|s| {
            let summary = summary.clone();
            let owner = owner.clone();
            tokio::spawn(async move {
                // Kinds that are kept (progress replaces an upload's last).
                for i in 0..40 {
                    s.append(&owner, EventKind::Completed, &summary, i)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    // Follow the log while it is written.
    let mut cursor = start;
    let mut seen = Vec::new();
    let total = 40 * stores.len();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < total && std::time::Instant::now() < deadline {
        for e in stores[0].after(&owner, cursor, 7).await.unwrap() {
            cursor = e.id;
            seen.push(e.id);
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    for e in stores[0].after(&owner, cursor, 1000).await.unwrap() {
        seen.push(e.id);
    }
    assert_eq!(
        seen.len(),
        total,
        "a reader following the log missed events"
    );
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
}

fn delivery(point: HookPoint, upload: &UploadRecord, now: i64) -> Delivery {
    Delivery {
        id: format!("d_{}", UploadId::random()),
        point,
        upload_id: upload.id.to_string(),
        body: format!(r#"{{"type":"{point}"}}"#),
        created_at: now,
        give_up_at: now + 60_000,
    }
}

/// The outbox contract between two stores on one database (two instances
/// when distributed): deliveries are written with the change they report
/// or not at all; one claimer holds a delivery at a time, and of each
/// upload only the oldest; failures wait, die, and can be revived.
async fn outbox_suite(a: &SqlStore, b: &SqlStore) {
    let owner = Owner::token("outbox");
    let now = ferry::core::record::now_millis();
    let (one, two) = (record(&owner, 0, now), record(&owner, 0, now));
    let created = delivery(HookPoint::PostCreate, &one, now);
    let finished = delivery(HookPoint::PostFinish, &one, now);
    a.insert(&one, &[created.clone(), finished.clone()])
        .await
        .unwrap();
    a.insert(&two, &[delivery(HookPoint::PostCreate, &two, now)])
        .await
        .unwrap();
    // A change that fails writes none of its deliveries.
    let lost = delivery(HookPoint::PostCreate, &one, now);
    assert!(a.insert(&one, std::slice::from_ref(&lost)).await.is_err());
    assert_eq!(a.counts().await.unwrap(), (3, 0));
    assert_eq!(a.untried_of(one.id.as_str()).await.unwrap(), 2);

    let lease = now + 60_000;
    let got = a.claim("A", now, lease, 10).await.unwrap();
    let ids: Vec<_> = got.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), 2, "the oldest of each upload: {ids:?}");
    assert!(ids.contains(&created.id.as_str()) && !ids.contains(&finished.id.as_str()));
    assert!(
        b.claim("B", now, lease, 10).await.unwrap().is_empty(),
        "held by A"
    );
    // Only the holder settles a delivery.
    let first = got.iter().find(|c| c.id == created.id).unwrap();
    b.delivered(first.seq, "B").await.unwrap();
    assert_eq!(a.counts().await.unwrap(), (3, 0));
    a.delivered(first.seq, "A").await.unwrap();
    let next = b.claim("B", now, lease, 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(
        next[0].id, finished.id,
        "the upload's next one, once the first is done"
    );

    // A failure waits until its time, then comes back counted.
    let other = got.iter().find(|c| c.id != created.id).unwrap();
    a.retry(other.seq, "A", now + 1_000, "HTTP 503")
        .await
        .unwrap();
    assert!(a.claim("A", now + 999, lease, 10).await.unwrap().is_empty());
    let again = a.claim("A", now + 1_000, lease, 10).await.unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 1));
    // A holder that went silent loses its claim when the lease ends.
    assert!(b
        .claim("B", now + 1_000, lease, 10)
        .await
        .unwrap()
        .is_empty());
    let taken = b.claim("B", lease + 1, lease + 60_000, 10).await.unwrap();
    assert_eq!(taken.len(), 2, "both leases ran out");

    // Past its window it is kept as dead, listed, and can be revived.
    let dead = taken.iter().find(|c| c.id == other.id).unwrap();
    b.bury(dead.seq, "B", now + 2_000, "HTTP 503 for a day")
        .await
        .unwrap();
    assert_eq!(a.counts().await.unwrap(), (1, 1));
    let listed = a.dead(0, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, other.id);
    assert_eq!(listed[0].last_error.as_deref(), Some("HTTP 503 for a day"));
    assert!(a.revive(&other.id, now, lease).await.unwrap());
    assert!(
        !a.revive(&other.id, now, lease).await.unwrap(),
        "not dead any more"
    );
    assert_eq!(a.counts().await.unwrap(), (2, 0));

    // An upload's newer progress replaces the one that waits.
    let mut three = record(&owner, 0, now);
    a.insert(&three, &[]).await.unwrap();
    for offset in [100, 200, 300] {
        three.offset = offset;
        let progress = delivery(HookPoint::PostReceive, &three, now);
        a.update_with(&three, &[progress]).await.unwrap();
    }
    assert_eq!(a.untried_of(three.id.as_str()).await.unwrap(), 1);

    // Dead deliveries are kept up to a number.
    for c in a.claim("A", lease * 2, lease * 3, 100).await.unwrap() {
        a.bury(c.seq, "A", lease * 2, "gone").await.unwrap();
    }
    assert_eq!(a.counts().await.unwrap().1, 3);
    assert_eq!(a.prune_dead(1).await.unwrap(), 2);
    assert_eq!(a.dead(0, 10).await.unwrap().len(), 1);
}

/// The lock contract between two lockers (two instances when distributed).
async fn lock_suite(a: &dyn Locker, b: &dyn Locker, shared: bool) {
    let held = a.try_lock("lock-suite-1").await.expect("free");
    assert!(
        a.try_lock("lock-suite-1").await.is_none(),
        "one holder at a time"
    );
    if shared {
        assert!(
            b.try_lock("lock-suite-1").await.is_none(),
            "also across instances"
        );
    }
    assert!(
        b.try_lock("lock-suite-2").await.is_some(),
        "other uploads are free"
    );
    drop(held);
    let again = b.try_lock("lock-suite-1").await;
    assert!(again.is_some(), "free again once let go");
    drop(again);

    // Many held at once (as by stalled requests) use up nothing that
    // another lock needs.
    let keys: Vec<String> = (0..200).map(|i| format!("lock-suite-many-{i}")).collect();
    let many = futures_util::future::join_all(keys.iter().map(|k| a.try_lock(k))).await;
    assert!(many.iter().all(Option::is_some), "200 locks at once");
    let more = b.try_lock("lock-suite-4").await;
    assert!(more.is_some(), "and one more");
    if shared {
        assert!(b.try_lock("lock-suite-many-7").await.is_none());
    }
    drop((many, more));

    // A preempting request on the other side makes the holder give way.
    let holder = a.try_lock("lock-suite-3").await.expect("free");
    let gave_way = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_secs(10), holder.preempted())
            .await
            .expect("the holder is asked to give way");
        drop(holder);
    });
    let taken = b
        .lock_preempting("lock-suite-3", Duration::from_secs(10))
        .await;
    assert!(taken.is_some(), "the preempting side gets the lock");
    gave_way.await.unwrap();
}

/// A real PostgreSQL server (whose database "tails" keeps S3 tails) and a
/// real S3 server with the bucket `bucket`, and where that bucket is (the
/// servers stop when their values are dropped: keep them to the end).
async fn s3_with_tails(bucket: &str) -> (Postgres, S3, Arc<SqlStore>, S3Location) {
    let pg = Postgres::start();
    let s3 = S3::start();
    let tails = Arc::new(SqlStore::open(&pg.database("tails"), true).await.unwrap());
    let location = S3Location::parse(&s3.bucket(bucket)).unwrap();
    (pg, s3, tails, location)
}

fn s3_store(location: &S3Location, tails: Arc<SqlStore>) -> S3BlobStore {
    S3BlobStore::with_keys(location, PART, S3_ACCESS_KEY, S3_SECRET_KEY, tails).unwrap()
}

#[tokio::test]
async fn embedded_stores_conform() {
    let dir = tempfile::tempdir().unwrap();
    blob_suite(&FsBlobStore::new(dir.path(), true).unwrap()).await;
    let db = SqlStore::open_sqlite(&dir.path().join("records.db"), true)
        .await
        .unwrap();
    record_suite(&db).await;
    idempotency_suite(&db).await;
    let path = dir.path().join("records.db");
    // Runs SQL statements on the store's database, for both suites.
    let run_sql = |sql: &'static str| {
        let url = ferry::store::sql::sqlite_url(&path);
        async move {
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        }
    };
    usage_suite(
        &db,
        include_str!("../../migrations/sqlite/0009_owner_usage.sql"),
        run_sql,
    )
    .await;
    expiry_suite(&db, run_sql).await;
    outbox_suite(&db, &db).await;
    let db = Arc::new(db);
    event_order_suite(&[db.clone(), db]).await;
    let locker = LocalLocker::new();
    lock_suite(&locker, &locker, false).await;
}

#[tokio::test]
async fn distributed_stores_conform() {
    let (pg, s3, tails, location) = s3_with_tails("blobs").await;
    let store = s3_store(&location, tails.clone());
    store.check().await.unwrap();
    blob_suite(&store).await;
    // Every abandoned or finished blob left nothing behind but what the
    // S3 server keeps of its own, and no piece of a tail.
    let left = s3.files("blobs");
    assert!(left.is_empty(), "left behind in the bucket: {left:?}");
    assert_eq!(
        tails.keys_with_pieces("", 100).await.unwrap(),
        Vec::<String>::new()
    );
    // The keys with pieces come a page at a time, each key once.
    for (key, name) in [
        ("pages-b", "1"),
        ("pages-a", "1"),
        ("pages-a", "2"),
        ("pages-c", "1"),
    ] {
        tails.put_piece(key, name, vec![1]).await.unwrap();
    }
    assert_eq!(
        tails.keys_with_pieces("", 2).await.unwrap(),
        ["pages-a", "pages-b"]
    );
    assert_eq!(
        tails.keys_with_pieces("pages-b", 2).await.unwrap(),
        ["pages-c"]
    );
    for key in ["pages-a", "pages-b", "pages-c"] {
        tails.delete_blob_pieces(key).await.unwrap();
    }
    // A piece is stored as it is, however well it would compress
    // (compressing cost a request more than it saved).
    let text = b"2026-11-27 INFO request status=204\n".repeat(30_000);
    tails.put_piece("text", "one", text.clone()).await.unwrap();
    let pool = sqlx::PgPool::connect(&pg.url("tails")).await.unwrap();
    let stored: i32 =
        sqlx::query_scalar("SELECT pg_column_size(bytes) FROM s3_tails WHERE blob_key = 'text'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        stored as usize >= text.len(),
        "{stored} bytes stored for {}",
        text.len()
    );
    assert_eq!(tails.piece("text", "one").await.unwrap(), Some(text));
    tails.delete_blob_pieces("text").await.unwrap();

    let url = pg.database("records");
    let db = SqlStore::open(&url, true).await.unwrap();
    record_suite(&db).await;
    idempotency_suite(&db).await;
    // Runs SQL statements on the store's database, for both suites.
    let run_sql = |sql: &'static str| {
        let url = url.clone();
        async move {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        }
    };
    usage_suite(
        &db,
        include_str!("../../migrations/postgres/0007_owner_usage.sql"),
        run_sql,
    )
    .await;
    expiry_suite(&db, run_sql).await;
    // A page deep in a long list reads the index from its cursor on: the
    // plan PostgreSQL makes once it knows the table is large.
    run_sql(
        "INSERT INTO uploads (id, owner, blob_key, state, created_at, updated_at)
           SELECT 'long' || g, 'token:long', 'long' || g, 'complete', 1000 + g / 3, 1
           FROM generate_series(1, 20000) g;
         ANALYZE uploads",
    )
    .await;
    let cursor = ferry::core::meta::ListCursor {
        created_at: 2_000,
        id: UploadId::random(),
    };
    let owner = Owner::from_stored("token:long".into());
    let plan = db.list_plan(&owner, Some(&cursor), 100).await.unwrap();
    assert!(
        plan.iter().any(|l| l.contains("uploads_listed")),
        "{plan:#?}"
    );
    assert!(
        plan.iter()
            .any(|l| l.contains("Index Cond") && l.contains("created_at <=")),
        "{plan:#?}"
    );
    assert!(!plan.iter().any(|l| l.contains("Sort")), "{plan:#?}");
    let outbox = pg.database("outbox");
    let (a, b) = (
        SqlStore::open(&outbox, true).await.unwrap(),
        SqlStore::open(&outbox, true).await.unwrap(),
    );
    outbox_suite(&a, &b).await;
    let url = pg.database("events");
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(Arc::new(SqlStore::open(&url, true).await.unwrap()));
    }
    event_order_suite(&stores).await;

    let url = pg.database("locks");
    let events = |s: Arc<SqlStore>| async move {
        ferry::core::Events::new(s, Duration::from_millis(1), Duration::from_secs(60))
            .await
            .unwrap()
    };
    let a = ferry::store::PgLocker::connect(&url).await.unwrap();
    let b = ferry::store::PgLocker::connect(&url).await.unwrap();
    let store = Arc::new(SqlStore::open(&url, true).await.unwrap());
    ferry::store::cluster::spawn_listener(url.clone(), a.clone(), events(store.clone()).await);
    ferry::store::cluster::spawn_listener(url.clone(), b.clone(), events(store).await);
    tokio::time::sleep(Duration::from_millis(300)).await; // listeners connect
    lock_suite(&a, &b, true).await;
}

/// The whole service over HTTP: uneven PATCHes across part boundaries, an
/// interrupted PATCH that keeps what arrived, instant upload, concatenation,
/// ranged download, deletion and expiry.
async fn service_suite(app: &TestApp) {
    let token = "Bearer service-suite";
    let auth = ("authorization", token);
    let data = bytes(2 * PART + 12_345, 11);
    let sha = sha256_hex(&data);
    let meta = format!(
        "filename {},sha256 {}",
        common::b64(b"big.bin"),
        common::b64(sha.as_bytes())
    );
    let path = app
        .create(
            data.len() as u64,
            &[auth, ("upload-metadata", meta.as_str())],
        )
        .await;

    let mut offset = 0usize;
    for (i, size) in [1usize, 777_777, PART, 3 * 1024 * 1024].iter().enumerate() {
        let end = (offset + size).min(data.len());
        let a = app
            .patch(&path, offset as u64, data[offset..end].to_vec(), &[auth])
            .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "PATCH {i}: {:?}", a.body);
        offset = end;
        assert_eq!(app.offset(&path).await, offset as u64);
    }

    // A PATCH whose connection breaks after 1 MiB: that MiB is kept.
    let kept = 1024 * 1024;
    let first = Bytes::copy_from_slice(&data[offset..offset + kept]);
    let body = futures_util::stream::iter(vec![
        Ok::<_, std::io::Error>(first),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "cut",
        )),
    ]);
    let off = offset.to_string();
    let a = app
        .call(
            "PATCH",
            &path,
            &[TUS, OCTET, auth, ("upload-offset", off.as_str())],
            Body::from_stream(body),
        )
        .await;
    assert!(a.status.is_client_error() || a.status.is_server_error());
    offset += kept;
    assert_eq!(
        app.offset(&path).await,
        offset as u64,
        "the bytes before the break were kept"
    );

    let a = app
        .patch(&path, offset as u64, data[offset..].to_vec(), &[auth])
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    let got = app.download(&path).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(sha256_hex(&got.body), sha, "byte-identical");
    assert_eq!(got.header("etag"), Some(format!("\"{sha}\"").as_str()));
    let ranged = app
        .call(
            "GET",
            &path,
            &[("range", "bytes=5242870-5242889")],
            Body::empty(),
        )
        .await;
    assert_eq!(ranged.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&ranged.body[..], &data[5_242_870..5_242_890]);

    // Instant upload: the same owner and bytes, complete at once.
    let twin = app
        .create(
            data.len() as u64,
            &[auth, ("upload-metadata", meta.as_str())],
        )
        .await;
    assert_eq!(app.offset(&twin).await, data.len() as u64);
    let a = app.call("DELETE", &path, &[TUS, auth], Body::empty()).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let got = app.download(&twin).await;
    assert_eq!(
        sha256_hex(&got.body),
        sha,
        "the twin keeps the shared bytes"
    );

    // Concatenation of two partial uploads.
    let (p1, p2) = (bytes(PART + 1, 1), bytes(4321, 2));
    let mut parts = Vec::new();
    for part in [&p1, &p2] {
        let u = app
            .create(part.len() as u64, &[auth, ("upload-concat", "partial")])
            .await;
        let a = app.patch(&u, 0, part.to_vec(), &[auth]).await;
        assert_eq!(a.status, StatusCode::NO_CONTENT);
        parts.push(u);
    }
    let concat = format!("final;{} {}", parts[0], parts[1]);
    let a = app
        .call(
            "POST",
            "/files/",
            &[TUS, auth, ("upload-concat", concat.as_str())],
            Body::empty(),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let joined = a.location();
    let got = app.download(&joined).await;
    assert_eq!(got.body.len(), p1.len() + p2.len());
    assert_eq!(&got.body[..p1.len()], &p1[..]);
    assert_eq!(&got.body[p1.len()..], &p2[..]);

    // Deferred length, declared by the last PATCH.
    let a = app
        .call(
            "POST",
            "/files/",
            &[TUS, auth, ("upload-defer-length", "1")],
            Body::empty(),
        )
        .await;
    let deferred = a.location();
    let tail = bytes(PART + 99, 5);
    let a = app.patch(&deferred, 0, tail[..100].to_vec(), &[auth]).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let len = tail.len().to_string();
    let a = app
        .patch(
            &deferred,
            100,
            tail[100..].to_vec(),
            &[auth, ("upload-length", len.as_str())],
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    assert_eq!(
        sha256_hex(&app.download(&deferred).await.body),
        sha256_hex(&tail)
    );

    // A last PATCH that ends exactly on a checkpoint: one completion.
    let exact = bytes(2 * 1024 * 1024, 6);
    let u = app.create(exact.len() as u64, &[auth]).await;
    let a = app.patch(&u, 0, exact.clone(), &[auth]).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    assert_eq!(sha256_hex(&app.download(&u).await.body), sha256_hex(&exact));
    let owner = Owner::token("service-suite");
    let completions = app
        .state
        .uploads
        .events()
        .after(&owner, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| u.ends_with(&e.upload.id) && e.kind.as_str() == "upload.completed")
        .count();
    assert_eq!(completions, 1);
    let a = app.call("DELETE", &u, &[TUS, auth], Body::empty()).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);

    // Expiry: an abandoned upload's bytes go, and it answers 410; so do
    // finished parts (a part is not a file), and the file joined from
    // them stays whole.
    let left = app.create(PART as u64 * 3, &[auth]).await;
    let a = app.patch(&left, 0, bytes(PART + 5, 9), &[auth]).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(3_300)).await;
    let expired = app.state.uploads.sweep_expired().await.unwrap();
    assert!(expired >= 3, "{expired}");
    for gone in [&left, &parts[0], &parts[1]] {
        let a = app.call("HEAD", gone, &[TUS], Body::empty()).await;
        assert_eq!(a.status, StatusCode::GONE, "{gone}");
    }
    let got = app.download(&joined).await;
    assert_eq!(got.body.len(), p1.len() + p2.len());
    assert_eq!(&got.body[p1.len()..], &p2[..]);
}

/// Expiry within the test's time, and checkpoints every MiB (so long
/// PATCHes commit, and store tails, several times).
fn short_expiry(c: &mut Config) {
    c.expire_after = Duration::from_secs(3);
    c.checkpoint_every = 1024 * 1024;
}

#[tokio::test]
async fn embedded_service_conforms() {
    let app = TestApp::with(short_expiry).await;
    service_suite(&app).await;
}

#[tokio::test]
async fn distributed_service_conforms() {
    let pg = Postgres::start();
    let s3 = S3::start();
    // The process's S3 credentials, as an operator would set them.
    std::env::set_var("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY);
    let database = pg.database("service");
    let storage = s3.bucket("service");
    let app = TestApp::with(|c| {
        short_expiry(c);
        c.database = Some(database.parse().unwrap());
        c.storage = Some(storage);
        c.s3_part_size = PART as u64;
    })
    .await;
    service_suite(&app).await;
    drop(app);
    let left = s3.files("service");
    // What remains: the finished files' objects, nothing else (no tails,
    // no parts of the expired or deleted uploads, no expired partial
    // uploads).
    assert!(
        left.iter().all(|p| !p.to_string_lossy().contains(".tail")),
        "tail objects left behind: {left:?}"
    );
    assert_eq!(left.len(), 3, "twin (shared), final, deferred: {left:?}");
}

/// Forwards connections to `to`, counting the bytes clients send.
async fn counting_proxy(to: String) -> (String, Arc<std::sync::atomic::AtomicU64>) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(&to).await.unwrap();
            let (mut client_in, mut client_out) = client.into_split();
            let (mut server_in, mut server_out) = server.into_split();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = client_in.read(&mut buf).await {
                    if n == 0 || server_out.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                }
                let _ = server_out.shutdown().await;
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_in, &mut client_out).await;
            });
        }
    });
    (addr, sent)
}

/// An upload sent in 1 MiB requests, alternating between two instances
/// (so tails are read back from the database, not a cache), reaches the
/// bucket once: the bytes sent to S3 stay within 1.1 times the upload's
/// size, where storing the tail again at every request sent about three
/// times as much. A writer reopened inside its tail drops the rest.
#[tokio::test]
async fn s3_tails_reach_the_bucket_once() {
    use std::sync::atomic::Ordering;
    let (_pg, _s3, tails, mut location) = s3_with_tails("once").await;
    let endpoint = location.endpoint.clone().unwrap();
    let (proxy, sent) = counting_proxy(endpoint.trim_start_matches("http://").to_string()).await;
    location.endpoint = Some(format!("http://{proxy}"));
    let stores = [
        s3_store(&location, tails.clone()),
        s3_store(&location, tails.clone()),
    ];
    let key = "OnceKey0000000000001";
    let data = bytes(8 * PART + 12_345, 5);
    let step = 1 << 20;
    let mut state: Option<String> = None;
    let mut at = 0;
    let mut turn = 0;
    while at < data.len() {
        let store = &stores[turn % 2];
        turn += 1;
        let mut w = store
            .append_at(key, at as u64, state.as_deref())
            .await
            .unwrap();
        let end = (at + step).min(data.len());
        w.write(Bytes::copy_from_slice(&data[at..end]))
            .await
            .unwrap();
        let how = if end == data.len() {
            Commit::Finish(Durability::Synced)
        } else {
            Commit::Checkpoint(Durability::Synced)
        };
        assert_eq!(w.commit(how).await.unwrap(), end as u64);
        state = w.state();
        w.settle().await.unwrap();
        at = end;
        if turn == 3 {
            // Reopened inside the tail (as after a record that fell back):
            // what follows the offset is forgotten and sent again.
            at -= 300_000;
        }
    }
    let n = data.len() as u64;
    assert_eq!(read_all(&stores[0], key, 0..n).await, data);
    let written = sent.load(Ordering::Relaxed);
    let ratio = written as f64 / n as f64;
    println!("bytes sent to S3: {written} for {n} ({ratio:.3} times)");
    assert!(ratio < 1.1, "sent {ratio:.3} times the upload to S3");
    assert_eq!(
        tails.keys_with_pieces("", 100).await.unwrap(),
        Vec::<String>::new()
    );
    stores[1].delete(key, None).await.unwrap();
}

/// Parts are gathered in bounded memory over all writers: past it a writer
/// waits, then fails as busy (503 `server_busy` to its client) while the
/// writers with room carry on, and room comes back when a writer ends.
#[tokio::test]
async fn s3_writers_share_bounded_memory() {
    let (_pg, _s3, tails, location) = s3_with_tails("memory").await;
    let store = s3_store(&location, tails).with_memory(2 * PART as u64, Duration::from_millis(300));
    let keys = [
        "MemoryKey00000000001",
        "MemoryKey00000000002",
        "MemoryKey00000000003",
    ];
    let mut writers = Vec::new();
    for key in &keys[..2] {
        store.create(key).await.unwrap();
        let mut w = store.append_at(key, 0, None).await.unwrap();
        w.write(Bytes::from_static(b"x")).await.unwrap();
        writers.push(w);
    }
    // Two parts' room is taken: a third writer waits, then gives up.
    store.create(keys[2]).await.unwrap();
    let mut third = store.append_at(keys[2], 0, None).await.unwrap();
    let busy = third.write(Bytes::from_static(b"y")).await.unwrap_err();
    assert_eq!(busy.kind(), std::io::ErrorKind::ResourceBusy, "{busy}");
    drop(third);
    // The writers with room fill whole parts meanwhile.
    writers[0].write(bytes(PART, 1).into()).await.unwrap();
    assert_eq!(
        writers[0]
            .commit(Commit::Finish(Durability::Synced))
            .await
            .unwrap(),
        PART as u64 + 1
    );
    writers[0].settle().await.unwrap();
    // A writer that ends gives its room back.
    drop(writers.remove(0));
    let mut third = store.append_at(keys[2], 0, None).await.unwrap();
    third.write(Bytes::from_static(b"y")).await.unwrap();
    assert_eq!(
        third
            .commit(Commit::Finish(Durability::Synced))
            .await
            .unwrap(),
        1
    );
    third.settle().await.unwrap();
    drop(third);
    drop(writers);
    for key in keys {
        store.delete(key, None).await.unwrap();
    }
}

/// A client that trickles (a commit every second, a few bytes each) makes
/// a tail of at most 64 pieces: past that the tail is stored again whole.
#[tokio::test]
async fn a_trickled_tail_stays_in_few_pieces() {
    let (_pg, _s3, tails, location) = s3_with_tails("trickle").await;
    let store = s3_store(&location, tails.clone());
    let key = "TrickleKey0000000001";
    let data = bytes(300 * 1000, 9);
    let mut state: Option<String> = None;
    let mut most = 0;
    for (i, chunk) in data.chunks(1000).enumerate() {
        let at = (i * 1000) as u64;
        let mut w = store.append_at(key, at, state.as_deref()).await.unwrap();
        w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
        w.commit(Commit::Checkpoint(Durability::Synced))
            .await
            .unwrap();
        state = w.state();
        w.settle().await.unwrap();
        let recorded: serde_json::Value = serde_json::from_str(state.as_deref().unwrap()).unwrap();
        most = most.max(recorded["s"].as_array().unwrap().len());
    }
    assert!(most <= 64, "{most} pieces");
    let mut w = store
        .append_at(key, data.len() as u64, state.as_deref())
        .await
        .unwrap();
    w.commit(Commit::Finish(Durability::Synced)).await.unwrap();
    w.settle().await.unwrap();
    drop(w);
    assert_eq!(read_all(&store, key, 0..data.len() as u64).await, data);
    assert_eq!(
        tails.keys_with_pieces("", 100).await.unwrap(),
        Vec::<String>::new()
    );
    store.delete(key, None).await.unwrap();
}
