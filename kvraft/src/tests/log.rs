//! The log beyond openraft's suite: appends are readable as soon as `append` returns and each
//! is reported flushed once, however many are waiting on one persist (group commit); what
//! replication reads for one append is cut by bytes.

use std::sync::Arc;

use openraft::RaftLogReader;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::type_config::TypeConfigExt;

use super::target::TestTarget;
use super::{entry, log_id, open_db, open_storage, put};
use crate::types::ShardRaft;

#[tokio::test]
async fn many_appends_are_readable_at_once_and_each_reported_flushed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open_db(dir.path());
    let mut s = open_storage(&db, Arc::new(TestTarget::default()));
    let mut waiting = Vec::new();
    for i in 1..=200u64 {
        let (tx, rx) = ShardRaft::oneshot();
        s.log
            .append(
                [entry(i, put("k", &format!("{i}"), i))],
                IOFlushed::signal(tx),
            )
            .await
            .expect("appends");
        let mut reader = s.log.get_log_reader().await;
        let read = reader.try_get_log_entries(i..=i).await.expect("reads");
        assert_eq!(read.len(), 1, "entry {i} readable when append returns");
        waiting.push(rx);
    }
    for (i, rx) in waiting.into_iter().enumerate() {
        rx.await
            .unwrap_or_else(|_| panic!("append {} never reported", i + 1))
            .expect("flushed");
    }
    let state = s.log.get_log_state().await.expect("state");
    assert_eq!(state.last_log_id, Some(log_id(1, 200)));
}

#[tokio::test]
async fn empty_and_inverted_ranges_read_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open_db(dir.path());
    let mut s = open_storage(&db, Arc::new(TestTarget::default()));
    let (tx, rx) = ShardRaft::oneshot();
    let entries: Vec<_> = (1..=5).map(|i| entry(i, put("k", "v", i))).collect();
    s.log
        .append(entries, IOFlushed::signal(tx))
        .await
        .expect("appends");
    rx.await.expect("reported").expect("flushed");
    let mut r = s.log.get_log_reader().await;
    assert!(r.try_get_log_entries(3..3).await.expect("reads").is_empty());
    #[allow(clippy::reversed_empty_ranges)]
    let inverted = 4..2;
    assert!(
        r.try_get_log_entries(inverted)
            .await
            .expect("reads")
            .is_empty()
    );
    assert!(
        r.limited_get_log_entries(5, 5)
            .await
            .expect("reads")
            .is_empty()
    );
    assert_eq!(r.try_get_log_entries(4..).await.expect("reads").len(), 2);
    assert_eq!(r.try_get_log_entries(..=2).await.expect("reads").len(), 2);
}

#[tokio::test]
async fn appends_are_cut_by_bytes_so_a_body_stays_under_the_receivers_limit() {
    use crate::codec::{MAX_IMPORT_ENTRY_BYTES, MAX_VALUE_BYTES};
    use crate::entry_codec;
    use crate::log_store::APPEND_ENTRY_BYTES;
    use crate::network::MAX_APPEND_BODY;

    // With the largest single entry the codec takes on top, and the JSON frame.
    const { assert!(APPEND_ENTRY_BYTES + MAX_IMPORT_ENTRY_BYTES + (64 << 10) < MAX_APPEND_BODY) };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open_db(dir.path());
    let mut s = open_storage(&db, Arc::new(TestTarget::default()));
    // Five values at the codec's cap (what 64 of them would make: 1 GiB), then small ones.
    let big = "x".repeat(MAX_VALUE_BYTES);
    let entries: Vec<_> = (1..=8u64)
        .map(|i| entry(i, put("k", if i <= 5 { &big } else { "small" }, i)))
        .collect();
    let (tx, rx) = ShardRaft::oneshot();
    s.log
        .append(entries, IOFlushed::signal(tx))
        .await
        .expect("appends");
    rx.await.expect("reported").expect("flushed");
    let mut r = s.log.get_log_reader().await;
    // As replication reads: up to 64 entries from where the follower is, until the end.
    let (mut next, mut reads) = (1u64, Vec::new());
    while next <= 8 {
        let got = r
            .limited_get_log_entries(next, next + 64)
            .await
            .expect("reads");
        assert!(
            !got.is_empty(),
            "a read from {next} returns at least one entry"
        );
        let body: usize = got
            .iter()
            .map(|e| entry_codec::encode(e).expect("encodes").len() + 12)
            .sum();
        assert!(
            body + (64 << 10) <= MAX_APPEND_BODY,
            "{body} bytes from {next}"
        );
        assert_eq!(got[0].log_id.index, next);
        next = got.last().map(|e| e.log_id.index + 1).expect("an entry");
        reads.push(got.len());
    }
    assert_eq!(reads.iter().sum::<usize>(), 8);
    assert!(
        reads.len() > 1,
        "the values did not all go in one append: {reads:?}"
    );
    // Small entries all go at once.
    assert_eq!(
        r.limited_get_log_entries(6, 70).await.expect("reads").len(),
        3
    );
}
