//! The copy engine (`rebalance::copy`) against the fake shards: how many keys a growth moves
//! with each shard function, and that every moved key lands on its new owner.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod support;

use kvproto::bulk::BulkRecord;
use kvproto::topology::Migration;
use kvproto::{Key, MigrationPhase, Sharding, Topology};
use operator::rebalance::copy::{CopyOptions, CopyProgress, copy_moving};
use operator::shards::ShardAdmin;
use support::shards::FakeShards;
use tokio::sync::watch;

/// Fraction of `keys` keys the copy moves when growing from `n` to `m` shards.
async fn moved_fraction(sharding: Sharding, n: u32, m: u32, keys: u32) -> f64 {
    let target = Topology {
        epoch: 2,
        sharding,
        shards: m,
        peers: (0..n.max(m)).map(|i| format!("s{i}")).collect(),
        migration: Some(Migration {
            from_shards: n,
            phase: MigrationPhase::Copy,
        }),
    };
    let stores = FakeShards::default();
    for i in 0..keys {
        let key = Key::new(format!("user:{i}")).unwrap();
        let record = BulkRecord {
            key: key.clone(),
            version: 1,
            value: Some(bytes::Bytes::from_static(b"v")),
        };
        let owner = sharding.shard_of(key.as_bytes(), n) as usize;
        stores.insert(&target.peers[owner], record);
    }
    // The old shards serve the target map, so their moving records are those it moves.
    for url in &target.peers {
        stores.put_topology(url, "", &target).await.unwrap();
    }
    let (progress, _) = watch::channel(CopyProgress::default());
    let moved = copy_moving(&stores, "", &target, n, CopyOptions::default(), &progress)
        .await
        .unwrap();
    // Every moved key landed on its new owner.
    for (i, url) in target.peers.iter().enumerate() {
        for key in stores.keys(url) {
            let owner = target.owner(key.as_bytes()) as usize;
            let old = sharding.shard_of(key.as_bytes(), n) as usize;
            assert!(owner == i || old == i, "{key:?} on {i}");
        }
    }
    assert_eq!(moved.keys, moved.applied);
    moved.keys as f64 / f64::from(keys)
}

#[tokio::test]
async fn growth_moves_about_m_minus_n_over_m_with_jump_and_m_minus_1_over_m_with_modulo() {
    for (n, m) in [(3, 4), (4, 5), (5, 8)] {
        let expect_jump = f64::from(m - n) / f64::from(m);
        let expect_modulo = f64::from(m - 1) / f64::from(m);
        let jump = moved_fraction(Sharding::Jump, n, m, 20_000).await;
        let modulo = moved_fraction(Sharding::Modulo, n, m, 20_000).await;
        eprintln!(
            "{n}→{m}: jump moved {jump:.3} (≈{expect_jump:.3}), modulo {modulo:.3} (≈{expect_modulo:.3})"
        );
        assert!((jump - expect_jump).abs() < 0.03, "jump {n}→{m}: {jump}");
        assert!(
            (modulo - expect_modulo).abs() < 0.05,
            "modulo {n}→{m}: {modulo}"
        );
    }
}
