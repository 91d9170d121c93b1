//! How a group runs: timing (docs/replication.md section 6, "Failover timing"), the read
//! policy, the write deadline, snapshots (section 4), the peer client and token, and, only in a build with
//! the `unsafe-fault-modes` feature, a deliberately broken mode for the checker's negative tests.

use std::sync::Arc;
use std::time::Duration;

use kvproto::raft::GroupId;

use super::error::GroupError;
use crate::network::{FixedCredentials, PeerCredentials};

/// How linearizable reads confirm leadership (`--raft-read-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadPolicy {
    /// The leader lease (no round trip while a quorum acknowledged recently), falling back to
    /// ReadIndex when the lease is stale. Assumes clock rates agree within the election margin.
    #[default]
    Lease,
    /// A quorum heartbeat per read batch: no clock assumption.
    ReadIndex,
}

/// Deliberately broken behaviour, to prove the linearizability checker catches it
/// (docs/replication.md section 10). Without the `unsafe-fault-modes` feature only `None`
/// exists, so a release build cannot select a broken mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnsafeMode {
    #[default]
    None,
    /// A put or delete is answered once its entry is in the leader's own log, before a quorum
    /// has it, with an outcome guessed without applying (`Written`/`Deleted` at the entry's
    /// `at_micros`; preconditions are not evaluated). A leader cut off from its followers thus
    /// acknowledges writes that the next leader never had: they are lost when it rejoins, and a
    /// conditional write may be acknowledged that was in fact refused.
    #[cfg(feature = "unsafe-fault-modes")]
    AckLocal,
    /// `read_barrier` does nothing on any copy: a deposed leader or a lagging follower serves
    /// whatever it has applied as if it were current (stale reads).
    #[cfg(feature = "unsafe-fault-modes")]
    ReadLocal,
}

/// A group's settings. [`RaftConfig::new`] gives the production defaults.
#[derive(Debug, Clone)]
pub struct RaftConfig {
    /// `--raft-heartbeat` (150 ms).
    pub heartbeat: Duration,
    /// `--raft-election-timeout-min` (600 ms); the maximum is twice it.
    pub election_timeout_min: Duration,
    /// `--raft-read-policy`.
    pub read_policy: ReadPolicy,
    /// `--raft-write-timeout` (3 s): a write whose commit is not observed by then answers
    /// `OutcomeUnknown`. Also bounds a ReadIndex confirmation and a follower's recovery wait.
    pub write_timeout: Duration,
    /// How long `set_voters` and `transfer_leadership` wait for their outcome.
    pub membership_timeout: Duration,
    /// The client for Raft RPCs to peers (one per pod; https when built for it) and the token
    /// sent as `authorization: Bearer <token>` (kvserver's peer token), asked at each RPC.
    pub peer: Arc<dyn PeerCredentials>,
    /// Build a snapshot once this many entries were applied since the last one (20 000).
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot (5 000): a follower up to this far behind
    /// catches up from the log, farther by snapshot.
    pub log_kept_behind_snapshot: u64,
    /// A snapshot stream that makes no progress this long fails (60 s).
    pub snapshot_idle_timeout: Duration,
    /// Only `None` exists without the `unsafe-fault-modes` feature.
    pub unsafe_mode: UnsafeMode,
}

impl RaftConfig {
    /// The defaults of docs/replication.md with `http` as the peer client and no peer token.
    pub fn new(http: reqwest::Client) -> RaftConfig {
        RaftConfig {
            heartbeat: Duration::from_millis(150),
            election_timeout_min: Duration::from_millis(600),
            read_policy: ReadPolicy::Lease,
            write_timeout: Duration::from_secs(3),
            membership_timeout: Duration::from_secs(30),
            peer: Arc::new(FixedCredentials::new(http, None)),
            snapshot_every: 20_000,
            log_kept_behind_snapshot: 5_000,
            snapshot_idle_timeout: Duration::from_secs(60),
            unsafe_mode: UnsafeMode::None,
        }
    }

    /// The longest an election may take to start: twice the minimum timeout.
    pub fn election_timeout_max(&self) -> Duration {
        self.election_timeout_min * 2
    }

    /// openraft's configuration for `group`, validated.
    pub(crate) fn openraft(&self, group: &GroupId) -> Result<openraft::Config, GroupError> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = openraft::Config {
            cluster_name: group.to_string(),
            heartbeat_interval: ms(self.heartbeat),
            election_timeout_min: ms(self.election_timeout_min),
            election_timeout_max: ms(self.election_timeout_max()),
            install_snapshot_timeout: ms(self.snapshot_idle_timeout),
            max_payload_entries: 64,
            replication_lag_threshold: self.log_kept_behind_snapshot,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.log_kept_behind_snapshot,
            // A partitioned copy that returns does not depose a healthy leader.
            enable_pre_vote: Some(true),
            // A follower whose log went backwards is a bug or a lost disk, never repaired silently.
            allow_log_reversion: Some(false),
            enable_leader_restore: Some(false),
            ..openraft::Config::default()
        };
        config
            .validate()
            .map_err(|e| GroupError::Config(e.to_string()))
    }
}
