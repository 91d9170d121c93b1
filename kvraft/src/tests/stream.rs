//! The snapshot stream on its own: what one store sends, another stages and installs with
//! equal contents and applied state, whatever the chunking; a stream cut anywhere is refused
//! and leaves no staged generation behind.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use openraft::RaftSnapshotBuilder;
use openraft::storage::RaftStateMachine;

use super::target::TestTarget;
use super::{dump, entry, open_db, open_storage, put};
use crate::network::snapshot_stream::{receive, send};
use crate::records;
use crate::types::Vote;

const IDLE: Duration = Duration::from_secs(5);

fn generations(db: &fjall::Database) -> Vec<String> {
    let mut names: Vec<String> = db
        .list_keyspace_names()
        .iter()
        .map(|n| n.to_string())
        .filter(|n| n == records::RECORDS_KEYSPACE || n.starts_with("kv."))
        .collect();
    names.sort();
    names
}

/// A's snapshot as one body.
async fn body_of(
    a: &mut crate::storage::Storage<TestTarget>,
) -> (crate::types::SnapshotMeta, Bytes) {
    let snap =
        a.sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("builds");
    let meta = snap.meta.clone();
    let chunks: Vec<Bytes> = send(Vote::new_committed(2, 1), snap.meta, snap.snapshot)
        .expect("starts")
        .map(|c| c.expect("a chunk"))
        .collect()
        .await;
    (meta, Bytes::from(chunks.concat()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_snapshot_installs_equal_contents() {
    let (da, dbb) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let db_a = open_db(da.path());
    let mut a = open_storage(&db_a, Arc::new(TestTarget::default()));
    // Enough records for several chunks, one value near the cap of a kvserver value.
    let big = "x".repeat(1 << 20);
    for i in 0..3000u64 {
        let v = if i == 1234 {
            big.clone()
        } else {
            format!("value {i}")
        };
        a.sm.apply_entry(&entry(i + 1, put(&format!("key-{i:05}"), &v, i + 10)))
            .expect("applies");
    }
    let (meta, body) = body_of(&mut a).await;

    // Delivered in odd-sized pieces, as a socket would.
    let pieces: Vec<Result<Bytes, std::io::Error>> = body
        .chunks(7919)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let db_b = open_db(dbb.path());
    let mut b = open_storage(&db_b, Arc::new(TestTarget::default()));
    let mut last = 0;
    let generation = records::next_generation(&db_b, &mut last);
    let received = receive(&db_b, generation, futures::stream::iter(pieces), IDLE)
        .await
        .expect("receives");
    assert_eq!(received.vote, Vote::new_committed(2, 1));
    assert_eq!(received.meta, meta);
    b.sm.install_snapshot(&received.meta, received.data)
        .await
        .expect("installs");
    assert_eq!(dump(&a), dump(&b));
    assert_eq!(
        a.state_machine().version_floor(),
        b.state_machine().version_floor()
    );
    assert_eq!(
        a.sm.applied_state().await.expect("state"),
        b.sm.applied_state().await.expect("state")
    );
    assert_eq!(
        generations(&db_b),
        vec![format!("kv.{generation}")],
        "staged, then flipped to"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_stream_is_refused_and_leaves_no_staged_records() {
    let (da, dbb) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let db_a = open_db(da.path());
    let mut a = open_storage(&db_a, Arc::new(TestTarget::default()));
    for i in 0..2500u64 {
        a.sm.apply_entry(&entry(i + 1, put(&format!("k{i}"), "v", i + 1)))
            .expect("applies");
    }
    let (_, body) = body_of(&mut a).await;
    let db_b = open_db(dbb.path());
    let b = open_storage(&db_b, Arc::new(TestTarget::default()));
    let before = dump(&b);
    let mut last = 0;
    for cut in [0, 3, 40, body.len() / 2, body.len() - 1] {
        let generation = records::next_generation(&db_b, &mut last);
        let piece: Vec<Result<Bytes, std::io::Error>> = vec![Ok(body.slice(..cut))];
        let refused = receive(&db_b, generation, futures::stream::iter(piece), IDLE).await;
        assert!(refused.is_err(), "a stream cut at {cut} was accepted");
        assert_eq!(generations(&db_b), vec!["kv".to_owned()], "cut at {cut}");
    }
    // Bytes after the trailer are refused too.
    let generation = records::next_generation(&db_b, &mut last);
    let longer = vec![
        Ok::<_, std::io::Error>(body.clone()),
        Ok(Bytes::from_static(b"!")),
    ];
    assert!(
        receive(&db_b, generation, futures::stream::iter(longer), IDLE)
            .await
            .is_err()
    );
    assert_eq!(dump(&b), before, "the serving records never changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_is_refused() {
    let dbb = tempfile::tempdir().expect("tempdir");
    let db_b = open_db(dbb.path());
    let _b = open_storage(&db_b, Arc::new(TestTarget::default()));
    let stalls = futures::stream::pending::<Result<Bytes, std::io::Error>>();
    let mut last = 0;
    let generation = records::next_generation(&db_b, &mut last);
    let refused = receive(&db_b, generation, stalls, Duration::from_millis(50)).await;
    assert!(
        matches!(
            refused,
            Err(crate::network::snapshot_stream::SnapshotStreamError::Idle(
                _
            ))
        ),
        "{:?}",
        refused.err()
    );
}
