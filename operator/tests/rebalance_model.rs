//! Property test of the rebalance steps against an in-memory model of the servers: each model
//! server applies the real `Topology::route` (serve, forward, read-through), keeps versions and
//! tombstones, imports if-absent and cleans up like a kvserver. Random client writes, deletes and
//! reads run between and *inside* steps (before each admin call), admin calls fail at random
//! points (before or after taking effect: a crash or a lost answer), and the driver re-runs a
//! failed step as the controller does after a restart. For arbitrary N→M→… (1..=8 shards) with
//! modulo and jump: no read ever misses or sees a wrong value, every key ends on its owner
//! exactly once with its last written value, and re-running a completed step changes nothing.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use futures::StreamExt;
use kvproto::bulk::BulkRecord;
use kvproto::topology::{ForwardedBy, Route};
use kvproto::{Fence, Key, Sharding, Topology};
use operator::rebalance::copy::CopyOptions;
use operator::rebalance::machine::next_phase;
use operator::rebalance::maps::MoveMaps;
use operator::rebalance::steps::Shards;
use operator::shards::{CallResult, RecordStream, ShardAdmin};
use operator::status::{RebalancePhase, RebalanceStatus};
use proptest::prelude::*;
use tokio::sync::watch;

/// One record: version and value (`None`: tombstone).
type Record = (u64, Option<String>);

#[derive(Debug, Clone, Default, PartialEq)]
struct Server {
    topology: Option<Topology>,
    store: BTreeMap<String, Record>,
    alive: bool,
}

/// A client operation: put (kind 0..=5), delete (6..=7) or get (8..=9) of key `k{key}`,
/// entering at the `entry`-th server that has a map.
#[derive(Debug, Clone, Copy)]
struct Op {
    kind: u8,
    key: u8,
    entry: u8,
}

#[derive(Debug, Default)]
struct Cluster {
    servers: Vec<Server>,
    version: u64,
    calls: u64,
    ops: Vec<Op>,
    next_op: usize,
    expected: BTreeMap<String, Option<String>>,
    anomalies: Vec<String>,
}

struct Model {
    cluster: Mutex<Cluster>,
    /// Admin call numbers that fail before taking effect.
    fail_before: BTreeSet<u64>,
    /// Admin call numbers that take effect, then fail (the answer is lost).
    fail_after: BTreeSet<u64>,
    ops_per_call: usize,
    /// Off while checking that a step re-run changes nothing.
    chaos: Mutex<bool>,
}

impl Cluster {
    fn at(url: &str) -> usize {
        url.trim_start_matches('s').parse().unwrap()
    }

    /// Follows the routing rule from `entry` to the server that serves `key`.
    fn serve(&mut self, entry: usize, key: &str) -> Option<(usize, Option<u32>)> {
        let mut at = entry;
        let mut fwd: Option<ForwardedBy> = None;
        loop {
            let server = &self.servers[at];
            if !server.alive {
                self.anomalies
                    .push(format!("{key}: sent to removed shard {at}"));
                return None;
            }
            let Some(map) = server.topology.as_ref() else {
                self.anomalies
                    .push(format!("{key}: sent to shard {at} without a map"));
                return None;
            };
            match map.route(at as u32, key.as_bytes(), fwd) {
                Route::Local { read_through } => return Some((at, read_through)),
                Route::Forward { to, read_through } => {
                    fwd = Some(ForwardedBy {
                        epoch: map.epoch,
                        hops: fwd.map_or(1, |f| f.hops + 1),
                        read_through,
                    });
                    at = to as usize;
                }
                Route::Misdirected => {
                    self.anomalies.push(format!("{key}: misdirected at {at}"));
                    return None;
                }
            }
        }
    }

    fn run_op(&mut self, op: Op) {
        let entries: Vec<usize> = (0..self.servers.len())
            .filter(|&i| self.servers[i].alive && self.servers[i].topology.is_some())
            .collect();
        let entry = entries[op.entry as usize % entries.len()];
        let key = format!("k{}", op.key);
        let Some((at, read_through)) = self.serve(entry, &key) else {
            return;
        };
        self.version += 1;
        let version = self.version;
        let server = &mut self.servers[at];
        let migrating = server
            .topology
            .as_ref()
            .is_some_and(|t| t.migration.is_some())
            || read_through.is_some();
        match op.kind {
            0..=5 => {
                let value = format!("v{version}");
                server
                    .store
                    .insert(key.clone(), (version, Some(value.clone())));
                self.expected.insert(key, Some(value));
            }
            6..=7 => {
                if migrating {
                    server.store.insert(key.clone(), (version, None));
                } else {
                    server.store.remove(&key);
                }
                self.expected.insert(key, None);
            }
            _ => {
                let local = server.store.get(&key).cloned();
                let got = match (local, read_through) {
                    (Some((_, value)), _) => value,
                    (None, Some(old)) => self.servers[old as usize]
                        .store
                        .get(&key)
                        .and_then(|(_, v)| v.clone()),
                    (None, None) => None,
                };
                let want = self.expected.get(&key).cloned().flatten();
                if got != want {
                    self.anomalies.push(format!(
                        "{key}: read {got:?} at shard {at}, last written {want:?}"
                    ));
                }
            }
        }
    }

    fn run_pending(&mut self, n: usize) {
        for _ in 0..n {
            let Some(op) = self.ops.get(self.next_op).copied() else {
                return;
            };
            self.next_op += 1;
            self.run_op(op);
        }
    }
}

impl Model {
    /// Runs client ops, then decides whether this call fails before or after its effect; a
    /// failure answers as a server error would.
    fn call<T>(
        &self,
        url: &str,
        effect: impl FnOnce(&mut Server, &mut Cluster) -> Result<T, String>,
    ) -> CallResult<T> {
        self.call_model(url, effect)
            .map_err(|message| kvclient::Error::Status {
                server: url.to_owned(),
                status: 503,
                code: None,
                message,
            })
    }

    fn call_model<T>(
        &self,
        url: &str,
        effect: impl FnOnce(&mut Server, &mut Cluster) -> Result<T, String>,
    ) -> Result<T, String> {
        let chaos = *self.chaos.lock().unwrap();
        let mut c = self.cluster.lock().unwrap();
        c.calls += 1;
        let n = c.calls;
        if chaos {
            c.run_pending(self.ops_per_call);
            if self.fail_before.contains(&n) {
                return Err(format!("call {n} to {url}: crashed before"));
            }
        }
        let i = Cluster::at(url);
        if !c.servers[i].alive {
            return Err(format!("{url} is gone"));
        }
        let mut server = std::mem::take(&mut c.servers[i]);
        let result = effect(&mut server, &mut c);
        c.servers[i] = server;
        if chaos && self.fail_after.contains(&n) && result.is_ok() {
            return Err(format!("call {n} to {url}: answer lost"));
        }
        result
    }
}

impl ShardAdmin for Model {
    async fn put_topology(&self, url: &str, _: &str, topology: &Topology) -> CallResult<()> {
        self.call(url, |s, _| {
            if let Some(current) = &s.topology {
                current
                    .check_transition(topology)
                    .map_err(|e| e.to_string())?;
            }
            s.topology = Some(topology.clone());
            Ok(())
        })
    }

    async fn export_moving(&self, url: &str, _: &str) -> CallResult<RecordStream> {
        let me = Cluster::at(url) as u32;
        let records = self.call(url, |s, _| {
            let map = s.topology.clone().ok_or("no map")?;
            Ok(s.store
                .iter()
                .filter(|(k, _)| map.owner(k.as_bytes()) != me)
                .map(|(k, (version, value))| {
                    Ok(BulkRecord {
                        key: Key::new(k.clone()).unwrap(),
                        version: *version,
                        value: value.clone().map(Into::into),
                    })
                })
                .collect::<Vec<_>>())
        })?;
        Ok(futures::stream::iter(records).boxed())
    }

    async fn moving_count(&self, url: &str, _: &str) -> CallResult<u64> {
        let me = Cluster::at(url) as u32;
        self.call(url, |s, _| {
            let map = s.topology.clone().ok_or("no map")?;
            Ok(s.store
                .keys()
                .filter(|k| map.owner(k.as_bytes()) != me)
                .count() as u64)
        })
    }

    async fn import_if_absent(
        &self,
        url: &str,
        _: &str,
        fence: Fence,
        records: &[BulkRecord],
    ) -> CallResult<u64> {
        self.call(url, |s, _| {
            Fence::admits(Some(&fence), s.topology.as_ref()).map_err(|e| format!("409: {e}"))?;
            let mut applied = 0;
            for rec in records {
                let key = rec.key.as_str().to_owned();
                if let std::collections::btree_map::Entry::Vacant(slot) = s.store.entry(key) {
                    let value = rec
                        .value
                        .as_ref()
                        .map(|v| String::from_utf8(v.to_vec()).unwrap());
                    slot.insert((rec.version, value));
                    applied += 1;
                }
            }
            Ok(applied)
        })
    }

    async fn cleanup(&self, url: &str, _: &str, fence: Fence) -> CallResult<()> {
        let me = Cluster::at(url) as u32;
        self.call(url, |s, _| {
            Fence::admits(Some(&fence), s.topology.as_ref()).map_err(|e| format!("409: {e}"))?;
            let map = s.topology.clone().ok_or("no map")?;
            if map.migration.is_some() {
                return Err("409: cleanup while migrating".into());
            }
            s.store
                .retain(|k, (_, v)| v.is_some() && map.owner(k.as_bytes()) == me);
            Ok(())
        })
    }

    async fn key_count(&self, url: &str, _: &str) -> CallResult<u64> {
        self.call(url, |s, _| Ok(s.store.len() as u64))
    }
}

fn peers(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("s{i}")).collect()
}

/// The controller's part of a move for the model: runs each phase until it succeeds (a failed
/// step is retried, as after a restart), checks a re-run changes nothing, and plays the
/// StatefulSet (fresh servers on growth, removed servers on shrink).
async fn drive(model: &Model, sharding: Sharding, from: i32, to: i32, epoch: i64) {
    let span = from.max(to) as usize;
    {
        let mut c = model.cluster.lock().unwrap();
        while c.servers.len() < span {
            c.servers.push(Server::default());
        }
        // New pods start empty, without a map (their volumes were deleted on the last shrink).
        for s in from as usize..span {
            c.servers[s] = Server {
                alive: true,
                ..Server::default()
            };
        }
    }
    let all = peers(span);
    let mut r = RebalanceStatus {
        from,
        to,
        phase: RebalancePhase::ScalingUp,
        epoch,
        keys_moved: 0,
        keys_total: 0,
        started_at: None,
        message: None,
    };
    loop {
        let shards = Shards {
            admin: model,
            token: "t",
            maps: MoveMaps::new(&r, sharding, &all),
        };
        let (progress, _) = watch::channel(Default::default());
        let mut attempts = 0;
        while let Err(err) = shards
            .run(
                r.phase,
                CopyOptions {
                    batch: 7,
                    ..CopyOptions::default()
                },
                &progress,
            )
            .await
        {
            attempts += 1;
            assert!(attempts < 100, "{:?} never succeeds: {err}", r.phase);
        }
        // A crash after the action and before the next phase is persisted: the step runs
        // again, and must change nothing.
        *model.chaos.lock().unwrap() = false;
        let before = model.cluster.lock().unwrap().servers.clone();
        shards
            .run(r.phase, CopyOptions::default(), &progress)
            .await
            .unwrap_or_else(|e| panic!("re-run of {:?}: {e}", r.phase));
        assert_eq!(
            model.cluster.lock().unwrap().servers,
            before,
            "re-running {:?} changed the servers",
            r.phase
        );
        *model.chaos.lock().unwrap() = true;
        if r.phase == RebalancePhase::ScalingDown {
            let mut c = model.cluster.lock().unwrap();
            for s in to as usize..from as usize {
                c.servers[s].alive = false;
            }
        }
        match next_phase(&r) {
            Some(p) => r.phase = p,
            None => return,
        }
    }
}

fn check_final(model: &Model, sharding: Sharding, shards: u32) {
    let c = model.cluster.lock().unwrap();
    assert!(
        c.anomalies.is_empty(),
        "{:?}",
        &c.anomalies[..c.anomalies.len().min(5)]
    );
    let mut seen = BTreeMap::new();
    for (i, s) in c.servers.iter().enumerate() {
        if !s.alive {
            continue;
        }
        assert!(i < shards as usize, "shard {i} still runs");
        for (key, (_, value)) in &s.store {
            let value = value
                .clone()
                .unwrap_or_else(|| panic!("tombstone of {key} left on {i}"));
            assert_eq!(
                sharding.shard_of(key.as_bytes(), shards) as usize,
                i,
                "{key} on {i}"
            );
            assert!(
                seen.insert(key.clone(), value).is_none(),
                "{key} held twice"
            );
        }
    }
    let live: BTreeMap<String, String> = c
        .expected
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
        .collect();
    assert_eq!(
        seen, live,
        "every acknowledged write, last value, nothing else"
    );
}

fn op() -> impl Strategy<Value = Op> {
    (0u8..10, 0u8..40, any::<u8>()).prop_map(|(kind, key, entry)| Op { kind, key, entry })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn moves_keep_every_write_and_never_miss(
        jump in any::<bool>(),
        start in 1i32..=8,
        targets in prop::collection::vec(1i32..=8, 1..=3),
        preload in prop::collection::vec(op(), 0..60),
        ops in prop::collection::vec(op(), 0..400),
        ops_per_call in 0usize..4,
        fail_before in prop::collection::btree_set(1u64..200, 0..12),
        fail_after in prop::collection::btree_set(1u64..200, 0..12),
    ) {
        let sharding = if jump { Sharding::Jump } else { Sharding::Modulo };
        let model = Model {
            cluster: Mutex::new(Cluster::default()),
            fail_before,
            fail_after,
            ops_per_call,
            chaos: Mutex::new(true),
        };
        {
            let mut c = model.cluster.lock().unwrap();
            let first = Topology::stable(1, sharding, peers(start as usize));
            c.servers = (0..start)
                .map(|_| Server { topology: Some(first.clone()), alive: true, ..Server::default() })
                .collect();
            for op in preload {
                // Writes only before the first move.
                c.run_op(Op { kind: op.kind % 6, ..op });
            }
            c.ops = ops;
        }
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let mut from = start;
            let mut epoch = 1;
            for to in targets {
                if to == from {
                    continue;
                }
                epoch += 1;
                drive(&model, sharding, from, to, epoch).await;
                from = to;
            }
            let mut c = model.cluster.lock().unwrap();
            let rest = c.ops.len();
            c.run_pending(rest);
            // Read every key back through the routing rule.
            for key in 0..40 {
                c.run_op(Op { kind: 9, key, entry: key });
            }
            drop(c);
            check_final(&model, sharding, from as u32);
        });
    }
}
