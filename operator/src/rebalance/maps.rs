//! The shard maps a move pushes, built from the persisted move and the servers' addresses.

use kvproto::topology::Migration;
use kvproto::{MigrationPhase, Sharding, Topology};

use crate::status::RebalanceStatus;

/// What a move pushes, for one store: its shard function and the address of every server
/// involved (`peers[i]` is ordinal `i`; at least `max(from, to)` of them).
#[derive(Debug, Clone)]
pub struct MoveMaps<'a> {
    pub sharding: Sharding,
    pub peers: &'a [String],
    pub from: u32,
    pub to: u32,
    /// The epoch moved to; the acknowledged map is one less.
    pub epoch: u64,
}

impl<'a> MoveMaps<'a> {
    /// The maps of `r` over `peers`.
    pub fn new(r: &RebalanceStatus, sharding: Sharding, peers: &'a [String]) -> Self {
        MoveMaps {
            sharding,
            peers,
            from: u32::try_from(r.from).unwrap_or(0),
            to: u32::try_from(r.to).unwrap_or(0),
            epoch: u64::try_from(r.epoch).unwrap_or(0),
        }
    }

    /// Servers involved: the larger count.
    pub fn span(&self) -> u32 {
        self.from.max(self.to)
    }

    fn peers_to(&self, n: u32) -> Vec<String> {
        self.peers.iter().take(n as usize).cloned().collect()
    }

    /// The acknowledged map the move starts from.
    pub fn before(&self) -> Topology {
        Topology::stable(
            self.epoch.saturating_sub(1),
            self.sharding,
            self.peers_to(self.from),
        )
    }

    /// The map of a migration phase, naming every server involved.
    pub fn migrating(&self, phase: MigrationPhase) -> Topology {
        Topology {
            epoch: self.epoch,
            sharding: self.sharding,
            shards: self.to,
            peers: self.peers_to(self.span()),
            migration: Some(Migration {
                from_shards: self.from,
                phase,
            }),
        }
    }

    /// The committed map.
    pub fn after(&self) -> Topology {
        Topology::stable(self.epoch, self.sharding, self.peers_to(self.to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::RebalancePhase;

    #[test]
    fn maps_of_a_shrink_name_every_server_until_committed() {
        let peers: Vec<String> = (0..5).map(|i| format!("http://s-{i}")).collect();
        let r = RebalanceStatus {
            from: 5,
            to: 2,
            phase: RebalancePhase::Handoff,
            epoch: 4,
            keys_moved: 0,
            keys_total: 0,
            started_at: None,
            message: None,
        };
        let maps = MoveMaps::new(&r, Sharding::Jump, &peers);
        let before = maps.before();
        assert_eq!((before.epoch, before.shards, before.peers.len()), (3, 5, 5));
        let handoff = maps.migrating(MigrationPhase::Handoff);
        assert_eq!((handoff.epoch, handoff.shards, handoff.span()), (4, 2, 5));
        assert_eq!(handoff.routing_shards(), 5);
        assert!(before.check_transition(&handoff).is_ok());
        let copy = maps.migrating(MigrationPhase::Copy);
        assert!(handoff.check_transition(&copy).is_ok());
        let after = maps.after();
        assert_eq!((after.epoch, after.shards, after.peers.len()), (4, 2, 2));
        assert!(copy.check_transition(&after).is_ok());
    }
}
