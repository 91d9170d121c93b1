//! The shard map a server serves under, and the routing rule every server applies.
//!
//! A change from `N` to `M` shards goes through three phases, pushed by the operator to every
//! server in turn; a phase is pushed only after every server has acknowledged the previous one.
//!
//! 1. **Handoff** (epoch `E`): clients still route over `N` shards. A server that *loses* a key
//!    (owner under `N`, not under `M`) stops serving it and forwards it to its new owner, which
//!    serves it locally, reading through to the old owner on a local miss. So from the moment the
//!    old owner enters Handoff, exactly one server accepts writes for that key: the new owner.
//! 2. **Copy** (epoch `E`): clients route over `M` shards; new owners read through on a miss while
//!    the operator copies keys with if-absent imports (a newer write or a tombstone at the new
//!    owner always wins over the copy).
//! 3. **Stable** (epoch `E`): the copy is complete, read-through stops, old owners may drop the
//!    keys they no longer own.
//!
//! A forwarded request carries the forwarder's epoch. A server whose own epoch is older trusts the
//! forwarder (it knows a newer map) and serves the request locally, so a server that has not yet
//! heard of the handoff can never bounce a key back to its old owner.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::shard::Sharding;

/// Most forwards a request may take before it is refused as misdirected.
pub const MAX_HOPS: u32 = 3;

/// The phase of an in-flight migration.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum MigrationPhase {
    /// Old owners forward the keys they lose; clients still route over the old shard count.
    Handoff,
    /// Clients route over the new shard count; new owners read through to old owners on a miss.
    Copy,
}

/// A migration from `from_shards` to the topology's `shards`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Migration {
    pub from_shards: u32,
    pub phase: MigrationPhase,
}

/// The shard map: which server owns which key, at which epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Topology {
    /// Grows by one with every change of the shard count.
    pub epoch: u64,
    pub sharding: Sharding,
    /// The shard count this epoch moves to (or serves, when stable).
    pub shards: u32,
    /// Base URLs of the servers, indexed by ordinal; covers every shard of both maps.
    pub peers: Vec<String>,
    /// Present while keys move from an older shard count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<Migration>,
}

/// A [`Topology`] with the copy URLs of every shard, for stores with replicated shards
/// (docs/replication.md section 5): the same JSON object with one more member, `copies`, absent
/// at factor 1, so a factor-1 map is byte for byte today's and a server that does not know
/// `copies` reads the rest unchanged.
///
/// It wraps `Topology` rather than adding the member to it so that the crates building
/// `Topology` literals are not touched before they route to copies (phases 4 to 6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicatedTopology {
    #[serde(flatten)]
    pub topology: Topology,
    /// Base URLs of every copy of each shard, indexed like `peers`; copy 0 is `peers[i]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<Vec<Vec<String>>>,
}

/// Why the copies of a [`ReplicatedTopology`] were refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CopiesError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("topology lists copies for {copies} shards but has {peers} peers")]
    Count { copies: usize, peers: usize },
    #[error("shard {0} lists no copies")]
    NoCopies(usize),
    #[error("copy 0 of shard {shard} is {copy:?}, not its peer {peer:?}")]
    NotPeer {
        shard: usize,
        copy: String,
        peer: String,
    },
}

impl ReplicatedTopology {
    /// Checks the map and that `copies`, when present, has one non-empty row per peer whose
    /// first URL is that peer.
    pub fn validate(&self) -> Result<(), CopiesError> {
        self.topology.validate()?;
        let Some(copies) = &self.copies else {
            return Ok(());
        };
        let peers = &self.topology.peers;
        if copies.len() != peers.len() {
            return Err(CopiesError::Count {
                copies: copies.len(),
                peers: peers.len(),
            });
        }
        for (shard, (row, peer)) in copies.iter().zip(peers).enumerate() {
            match row.first() {
                None => return Err(CopiesError::NoCopies(shard)),
                Some(first) if first != peer => {
                    return Err(CopiesError::NotPeer {
                        shard,
                        copy: first.clone(),
                        peer: peer.clone(),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The copy URLs of `shard`: its row of `copies`, or just its peer at factor 1.
    pub fn copies_of(&self, shard: u32) -> Vec<String> {
        let i = shard as usize;
        match self.copies.as_ref().and_then(|c| c.get(i)) {
            Some(row) => row.clone(),
            None => self.topology.peers.get(i).cloned().into_iter().collect(),
        }
    }
}

impl From<Topology> for ReplicatedTopology {
    fn from(topology: Topology) -> Self {
        ReplicatedTopology {
            topology,
            copies: None,
        }
    }
}

/// Why a topology was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopologyError {
    #[error("topology must have at least one shard")]
    NoShards,
    #[error("topology lists {peers} peers but needs one for each of {needed} shards")]
    TooFewPeers { peers: usize, needed: u32 },
    #[error("a migration must come from at least one shard")]
    NoSourceShards,
    #[error(
        "topology epoch {offered} ({offered_phase}) is older than the current epoch {current} ({current_phase})"
    )]
    Stale {
        offered: u64,
        offered_phase: &'static str,
        current: u64,
        current_phase: &'static str,
    },
    #[error("a different topology was already accepted for epoch {0} in the same phase")]
    Conflict(u64),
    #[error("sharding cannot change from {from} to {to}")]
    ShardingChanged { from: Sharding, to: Sharding },
}

/// Where a server should serve a request for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Serve from the local store; on a local miss (no tombstone), read through to this shard.
    Local { read_through: Option<u32> },
    /// Send the request on to this shard, passing on the read-through hint.
    Forward { to: u32, read_through: Option<u32> },
    /// Too many hops: the servers' maps disagree for now; the client should retry.
    Misdirected,
}

/// What a forwarded request tells the server that receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardedBy {
    /// The forwarder's epoch.
    pub epoch: u64,
    /// How many forwards the request has taken so far.
    pub hops: u32,
    /// The old owner to read through to, as the forwarder knows it.
    pub read_through: Option<u32>,
}

/// Base URL of shard `ordinal` of store `instance` in `namespace`: its pod's name through the
/// store's headless Service (`http://NAME-i.NAME.NAMESPACE.svc:PORT`). The operator pushes these
/// as a topology's peers and the client derives them for `--kvstore`.
pub fn peer_url(instance: &str, namespace: &str, ordinal: u32, port: u16) -> String {
    peer_url_tls(instance, namespace, ordinal, port, false)
}

/// Like [`peer_url`], with `https://` when `tls`: the store's servers serve TLS
/// (`--tls-cert-file`), and servers reach each other over it (trusting `--tls-ca-file`).
pub fn peer_url_tls(instance: &str, namespace: &str, ordinal: u32, port: u16, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{instance}-{ordinal}.{instance}.{namespace}.svc:{port}")
}

/// The pod of copy `copy` of shard `ordinal` (docs/replication.md section 3): copy 0 is the
/// StatefulSet `NAME`'s pod `NAME-i` (the book's names), copy k ≥ 1 is `NAME-r<k>-i`.
pub fn copy_pod(instance: &str, copy: u32, ordinal: u32) -> String {
    match copy {
        0 => format!("{instance}-{ordinal}"),
        k => format!("{instance}-r{k}-{ordinal}"),
    }
}

/// Base URL of copy `copy` of shard `ordinal`, through the store's one headless Service (every
/// copy StatefulSet uses `serviceName: NAME`); copy 0 is [`peer_url_tls`].
pub fn copy_url_tls(
    instance: &str,
    namespace: &str,
    copy: u32,
    ordinal: u32,
    port: u16,
    tls: bool,
) -> String {
    let scheme = if tls { "https" } else { "http" };
    let pod = copy_pod(instance, copy, ordinal);
    format!("{scheme}://{pod}.{instance}.{namespace}.svc:{port}")
}

impl Topology {
    /// A stable topology with one peer per shard.
    pub fn stable(epoch: u64, sharding: Sharding, peers: Vec<String>) -> Self {
        let shards = u32::try_from(peers.len()).unwrap_or(u32::MAX);
        Topology {
            epoch,
            sharding,
            shards,
            peers,
            migration: None,
        }
    }

    /// Checks the map is usable on its own.
    pub fn validate(&self) -> Result<(), TopologyError> {
        if self.shards == 0 {
            return Err(TopologyError::NoShards);
        }
        if self.migration.is_some_and(|m| m.from_shards == 0) {
            return Err(TopologyError::NoSourceShards);
        }
        let needed = self.span();
        if self.peers.len() < needed as usize {
            return Err(TopologyError::TooFewPeers {
                peers: self.peers.len(),
                needed,
            });
        }
        Ok(())
    }

    /// How many servers the map involves: the larger of the two shard counts.
    pub fn span(&self) -> u32 {
        self.migration
            .map_or(self.shards, |m| m.from_shards.max(self.shards))
    }

    /// The shard count clients should route over now.
    pub fn routing_shards(&self) -> u32 {
        match self.migration {
            Some(Migration {
                from_shards,
                phase: MigrationPhase::Handoff,
            }) => from_shards,
            _ => self.shards,
        }
    }

    /// The owner of `key` once this epoch is committed.
    pub fn owner(&self, key: &[u8]) -> u32 {
        self.sharding.shard_of(key, self.shards)
    }

    /// The owner of `key` under the shard count being migrated from, if migrating.
    pub fn previous_owner(&self, key: &[u8]) -> Option<u32> {
        self.migration
            .map(|m| self.sharding.shard_of(key, m.from_shards))
    }

    /// The shard a client should send `key` to now.
    pub fn client_route(&self, key: &[u8]) -> u32 {
        self.sharding.shard_of(key, self.routing_shards())
    }

    /// Phase as a name, for messages and metrics.
    pub fn phase_name(&self) -> &'static str {
        match self.migration {
            None => "Stable",
            Some(Migration {
                phase: MigrationPhase::Handoff,
                ..
            }) => "Handoff",
            Some(Migration {
                phase: MigrationPhase::Copy,
                ..
            }) => "Copy",
        }
    }

    fn rank(&self) -> (u64, u8) {
        let phase = match self.migration {
            Some(Migration {
                phase: MigrationPhase::Handoff,
                ..
            }) => 0,
            Some(Migration {
                phase: MigrationPhase::Copy,
                ..
            }) => 1,
            None => 2,
        };
        (self.epoch, phase)
    }

    /// Whether a server holding `self` may move to `next`. Topologies only move forward;
    /// the same topology again is accepted (pushes are idempotent).
    pub fn check_transition(&self, next: &Topology) -> Result<(), TopologyError> {
        next.validate()?;
        if next.sharding != self.sharding {
            return Err(TopologyError::ShardingChanged {
                from: self.sharding,
                to: next.sharding,
            });
        }
        match next.rank().cmp(&self.rank()) {
            std::cmp::Ordering::Less => Err(TopologyError::Stale {
                offered: next.epoch,
                offered_phase: next.phase_name(),
                current: self.epoch,
                current_phase: self.phase_name(),
            }),
            std::cmp::Ordering::Equal if next != self => Err(TopologyError::Conflict(next.epoch)),
            _ => Ok(()),
        }
    }

    /// The routing rule a server `me` applies to a request for `key` (see the module docs).
    pub fn route(&self, me: u32, key: &[u8], forwarded: Option<ForwardedBy>) -> Route {
        if let Some(f) = forwarded
            && f.epoch > self.epoch
        {
            // The forwarder knows a newer map in which we own the key.
            return Route::Local {
                read_through: f.read_through.filter(|&s| s != me),
            };
        }
        let new = self.owner(key);
        let old = self.previous_owner(key);
        let route = match (self.migration, old) {
            (
                Some(Migration {
                    phase: MigrationPhase::Handoff,
                    ..
                }),
                Some(old),
            ) => {
                let forwarded_now = forwarded.is_some_and(|f| f.epoch >= self.epoch);
                match (old == me, new == me) {
                    (true, true) => Route::Local { read_through: None },
                    (true, false) => Route::Forward {
                        to: new,
                        read_through: Some(old),
                    },
                    (false, true) if forwarded_now => Route::Local {
                        read_through: Some(old),
                    },
                    _ => Route::Forward {
                        to: old,
                        read_through: None,
                    },
                }
            }
            _ if new == me => Route::Local {
                read_through: old.filter(|&s| s != me),
            },
            _ => Route::Forward {
                to: new,
                read_through: old.filter(|&s| s != new),
            },
        };
        match route {
            Route::Forward { .. } if forwarded.is_some_and(|f| f.hops >= MAX_HOPS) => {
                Route::Misdirected
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("http://s-{i}.s:80")).collect()
    }

    fn migrating(from: u32, to: u32, phase: MigrationPhase) -> Topology {
        Topology {
            epoch: 2,
            sharding: Sharding::Modulo,
            shards: to,
            peers: peers(from.max(to) as usize),
            migration: Some(Migration {
                from_shards: from,
                phase,
            }),
        }
    }

    /// Follows forwards from the server a client picked until some server serves locally.
    fn serve(maps: &[Topology], start: u32, key: &[u8]) -> (u32, Option<u32>) {
        let mut at = start;
        let mut fwd: Option<ForwardedBy> = None;
        loop {
            let map = &maps[at as usize];
            match map.route(at, key, fwd) {
                Route::Local { read_through } => return (at, read_through),
                Route::Forward { to, read_through } => {
                    fwd = Some(ForwardedBy {
                        epoch: map.epoch,
                        hops: fwd.map_or(1, |f| f.hops + 1),
                        read_through,
                    });
                    at = to;
                }
                Route::Misdirected => panic!("misdirected at {at}"),
            }
        }
    }

    #[test]
    fn peer_url_names_the_pod_through_the_headless_service() {
        assert_eq!(
            peer_url("demo", "ns", 1, 80),
            "http://demo-1.demo.ns.svc:80"
        );
        assert_eq!(
            peer_url_tls("demo", "ns", 1, 443, true),
            "https://demo-1.demo.ns.svc:443"
        );
    }

    #[test]
    fn stable_serves_owner_and_forwards_the_rest() {
        let t = Topology::stable(1, Sharding::Modulo, peers(3));
        assert_eq!(
            t.route(u32::from(b'a') % 3, b"a", None),
            Route::Local { read_through: None }
        );
        assert_eq!(
            t.route(0, b"b", None),
            Route::Forward {
                to: 2,
                read_through: None
            }
        );
    }

    #[test]
    fn handoff_sends_every_key_to_its_new_owner_whatever_the_entry_server() {
        let map = migrating(3, 5, MigrationPhase::Handoff);
        let maps = vec![map; 5];
        for c in b'a'..=b'z' {
            for start in 0..3 {
                let (served_by, _) = serve(&maps, start, &[c]);
                assert_eq!(served_by, u32::from(c) % 5, "key {}", c as char);
            }
        }
    }

    #[test]
    fn a_server_that_has_not_heard_of_the_handoff_trusts_the_forwarder() {
        // Old owners are in Handoff; every other server still holds the stable epoch-1 map.
        let old = Topology {
            epoch: 1,
            ..Topology::stable(1, Sharding::Modulo, peers(3))
        };
        let new = migrating(3, 5, MigrationPhase::Handoff);
        let maps = vec![new.clone(), old.clone(), old.clone(), old.clone(), old];
        // 'f' = 102: owner 0 under 3 shards, 2 under 5.
        assert_eq!(serve(&maps, 0, b"f"), (2, Some(0)));
    }

    #[test]
    fn copy_phase_reads_through_to_the_old_owner() {
        let map = migrating(3, 2, MigrationPhase::Copy);
        // 'c' = 99: old owner 0, new owner 1.
        assert_eq!(
            map.route(1, b"c", None),
            Route::Local {
                read_through: Some(0)
            }
        );
        assert_eq!(
            map.route(2, b"c", None),
            Route::Forward {
                to: 1,
                read_through: Some(0)
            }
        );
    }

    #[test]
    fn transitions_only_move_forward() {
        let stable1 = Topology::stable(1, Sharding::Modulo, peers(3));
        let handoff = migrating(3, 5, MigrationPhase::Handoff);
        let copy = migrating(3, 5, MigrationPhase::Copy);
        let stable2 = Topology {
            migration: None,
            ..copy.clone()
        };
        assert!(stable1.check_transition(&handoff).is_ok());
        assert!(handoff.check_transition(&handoff).is_ok());
        assert!(handoff.check_transition(&copy).is_ok());
        assert!(copy.check_transition(&stable2).is_ok());
        assert!(matches!(
            copy.check_transition(&handoff),
            Err(TopologyError::Stale { .. })
        ));
        assert!(matches!(
            stable2.check_transition(&stable1),
            Err(TopologyError::Stale { .. })
        ));
        let other = migrating(3, 4, MigrationPhase::Handoff);
        assert_eq!(
            handoff.check_transition(&other),
            Err(TopologyError::Conflict(2))
        );
        let jump = Topology {
            sharding: Sharding::Jump,
            ..stable2.clone()
        };
        assert!(matches!(
            stable1.check_transition(&jump),
            Err(TopologyError::ShardingChanged { .. })
        ));
    }

    #[test]
    fn validation_names_the_problem() {
        let mut t = Topology::stable(1, Sharding::Modulo, peers(2));
        t.shards = 3;
        assert_eq!(
            t.validate(),
            Err(TopologyError::TooFewPeers {
                peers: 2,
                needed: 3
            })
        );
        t.shards = 0;
        assert_eq!(t.validate(), Err(TopologyError::NoShards));
    }

    /// Today's JSON of a factor-1 map, pinned: replication must not change it.
    const STABLE_JSON: &str = r#"{"epoch":1,"sharding":"modulo","shards":2,"peers":["http://s-0.s:80","http://s-1.s:80"]}"#;
    const MIGRATING_JSON: &str = r#"{"epoch":2,"sharding":"modulo","shards":3,"peers":["http://s-0.s:80","http://s-1.s:80","http://s-2.s:80"],"migration":{"fromShards":2,"phase":"Handoff"}}"#;

    #[test]
    fn a_factor_1_topology_serializes_as_today() {
        let stable = Topology::stable(1, Sharding::Modulo, peers(2));
        assert_eq!(serde_json::to_string(&stable).expect("json"), STABLE_JSON);
        let replicated = ReplicatedTopology::from(stable.clone());
        assert_eq!(
            serde_json::to_string(&replicated).expect("json"),
            STABLE_JSON
        );
        let migrating = migrating(2, 3, MigrationPhase::Handoff);
        assert_eq!(
            serde_json::to_string(&ReplicatedTopology::from(migrating.clone())).expect("json"),
            MIGRATING_JSON
        );
        let back: ReplicatedTopology = serde_json::from_str(MIGRATING_JSON).expect("parses");
        assert_eq!(back, ReplicatedTopology::from(migrating));
    }

    #[test]
    fn copies_round_trip_and_an_old_reader_ignores_them() {
        let replicated = ReplicatedTopology {
            topology: Topology::stable(1, Sharding::Modulo, peers(2)),
            copies: Some(vec![
                vec!["http://s-0.s:80".into(), "http://s-r1-0.s:80".into()],
                vec!["http://s-1.s:80".into(), "http://s-r1-1.s:80".into()],
            ]),
        };
        replicated.validate().expect("valid");
        let json = serde_json::to_string(&replicated).expect("json");
        assert!(
            json.starts_with(&STABLE_JSON[..STABLE_JSON.len() - 1]),
            "{json}"
        );
        assert!(json.ends_with(r#","copies":[["http://s-0.s:80","http://s-r1-0.s:80"],["http://s-1.s:80","http://s-r1-1.s:80"]]}"#), "{json}");
        let back: ReplicatedTopology = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, replicated);
        let old: Topology = serde_json::from_str(&json).expect("an old server parses it");
        assert_eq!(old, replicated.topology);
        assert_eq!(
            back.copies_of(1),
            vec!["http://s-1.s:80", "http://s-r1-1.s:80"]
        );
        assert_eq!(
            ReplicatedTopology::from(old).copies_of(1),
            vec!["http://s-1.s:80"]
        );
    }

    #[test]
    fn copies_must_cover_every_peer_starting_with_it() {
        let base = ReplicatedTopology::from(Topology::stable(1, Sharding::Modulo, peers(2)));
        let with = |copies: Vec<Vec<&str>>| ReplicatedTopology {
            copies: Some(
                copies
                    .into_iter()
                    .map(|r| r.into_iter().map(String::from).collect())
                    .collect(),
            ),
            ..base.clone()
        };
        assert_eq!(
            with(vec![vec!["http://s-0.s:80"]]).validate(),
            Err(CopiesError::Count {
                copies: 1,
                peers: 2
            })
        );
        assert_eq!(
            with(vec![vec!["http://s-0.s:80"], vec![]]).validate(),
            Err(CopiesError::NoCopies(1))
        );
        assert!(matches!(
            with(vec![vec!["http://s-0.s:80"], vec!["http://x:80"]]).validate(),
            Err(CopiesError::NotPeer { shard: 1, .. })
        ));
        let mut no_shards = base.clone();
        no_shards.topology.shards = 0;
        assert_eq!(
            no_shards.validate(),
            Err(CopiesError::Topology(TopologyError::NoShards))
        );
    }

    #[test]
    fn hop_limit_stops_loops() {
        let t = Topology::stable(1, Sharding::Modulo, peers(3));
        let fwd = ForwardedBy {
            epoch: 1,
            hops: MAX_HOPS,
            read_through: None,
        };
        assert_eq!(t.route(0, b"b", Some(fwd)), Route::Misdirected);
    }

    #[test]
    fn copy_urls_extend_the_peer_urls() {
        for tls in [false, true] {
            assert_eq!(
                copy_url_tls("kv", "ns", 0, 2, 8080, tls),
                peer_url_tls("kv", "ns", 2, 8080, tls)
            );
        }
        assert_eq!(copy_pod("kv", 2, 3), "kv-r2-3");
        assert_eq!(
            copy_url_tls("kv", "ns", 1, 0, 80, false),
            "http://kv-r1-0.kv.ns.svc:80"
        );
    }
}
