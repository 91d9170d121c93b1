//! The [`ShardGroup`] handle: opening the group on a copy's storage, its routes, who leads,
//! shutdown. Its operations live beside it (`write.rs`, `read.rs`, `membership.rs`,
//! `status.rs`).

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvproto::raft::{GroupId, Member};
use openraft::Raft;
use openraft::async_runtime::WatchReceiver;

use super::config::RaftConfig;
use super::error::GroupError;
use crate::apply::ApplyTarget;
use crate::identity::Identity;
use crate::network::client::PeerNetwork;
use crate::network::routes::{self, RpcState};
use crate::state_machine::StateMachine;
use crate::storage::{CleanShutdown, Storage};
use crate::types::{RaftMetrics, ShardRaft};

/// One shard's group on this copy; clones share it.
pub struct ShardGroup<T: ApplyTarget> {
    pub(super) inner: Arc<Inner<T>>,
}

impl<T: ApplyTarget> Clone for ShardGroup<T> {
    fn clone(&self) -> Self {
        ShardGroup {
            inner: self.inner.clone(),
        }
    }
}

pub(super) struct Inner<T: ApplyTarget> {
    pub raft: Raft<ShardRaft, StateMachine<T>>,
    pub rpc: Arc<RpcState<T>>,
    pub me: Member,
    pub identity: Identity,
    pub cfg: RaftConfig,
    /// Set once this copy caught up with the group's commit after starting (follower reads).
    pub recovered: AtomicBool,
    /// Taken by the first shutdown.
    pub closer: Mutex<Option<CleanShutdown>>,
}

impl<T: ApplyTarget> ShardGroup<T> {
    /// Starts the group on `storage`. `identity` must be the storage's and `me` this copy as
    /// its peers reach it (same node ID); `group`, when given, must be the identity's. A
    /// volume not yet in a group waits as a non-member until [`Self::initialize`] or a leader's
    /// [`Self::add_learner`] brings it in.
    pub async fn open(
        storage: Storage<T>,
        identity: Identity,
        me: Member,
        group: Option<GroupId>,
        cfg: RaftConfig,
    ) -> Result<Self, GroupError> {
        if storage.identity() != &identity {
            return Err(GroupError::Refused(format!(
                "identity {} of {} is not the volume's ({} of {})",
                identity.node_id,
                identity.group,
                storage.identity().node_id,
                storage.identity().group
            )));
        }
        if me.node_id != identity.node_id {
            return Err(GroupError::Refused(format!(
                "member {me} is not this copy (node {})",
                identity.node_id
            )));
        }
        if let Some(g) = &group
            && g != &identity.group
        {
            return Err(GroupError::GroupMismatch {
                ours: identity.group.to_string(),
                theirs: g.to_string(),
            });
        }
        let config = Arc::new(cfg.openraft(&identity.group)?);
        let (log, sm, closer) = storage.into_parts();
        let db = closer.database().clone();
        let network = PeerNetwork::new(
            cfg.peer.clone(),
            &identity.group,
            identity.node_id,
            cfg.snapshot_idle_timeout,
        );
        let raft = Raft::new(identity.node_id, config, network, log, sm)
            .await
            .map_err(|e| GroupError::Fatal(e.to_string()))?;
        let rpc = Arc::new(RpcState {
            raft: raft.clone(),
            group: Arc::from(identity.group.to_string()),
            node_id: identity.node_id,
            db,
            staging: tokio::sync::Mutex::new(0),
            snapshot_idle: cfg.snapshot_idle_timeout,
        });
        tracing::info!(node_id = identity.node_id, group = %identity.group, "raft group started");
        Ok(ShardGroup {
            inner: Arc::new(Inner {
                raft,
                rpc,
                me,
                identity,
                cfg,
                recovered: AtomicBool::new(false),
                closer: Mutex::new(Some(closer)),
            }),
        })
    }

    /// The Raft RPC routes (`POST /v1/raft/*`), for kvserver to mount behind its peer-token
    /// layer on the data port.
    pub fn routes(&self) -> axum::Router {
        routes::router(self.inner.rpc.clone())
    }

    /// This copy.
    pub fn me(&self) -> &Member {
        &self.inner.me
    }

    pub fn group_id(&self) -> &GroupId {
        &self.inner.identity.group
    }

    /// The leader this copy knows of (itself when leading).
    pub fn leader(&self) -> Option<Member> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        let id = m.current_leader?;
        m.membership_config.membership().get_node(&id).cloned()
    }

    pub fn is_leader(&self) -> bool {
        self.inner.raft.is_leader()
    }

    /// Waits up to `bound` until a leader other than `skip` is known (this copy counts), and
    /// returns the leader then known, if any: a request that meets an election can wait for
    /// its end instead of failing, and one sent here by `skip` (which took this copy for the
    /// leader) waits for someone else than its sender to lead.
    pub async fn await_leader(&self, bound: Duration, skip: Option<u64>) -> Option<Member> {
        let _ = self
            .inner
            .raft
            .wait(Some(bound))
            .metrics(
                |m| m.current_leader.is_some() && m.current_leader != skip,
                "a leader",
            )
            .await;
        self.leader()
    }

    /// The longest an election may take to start (`election_timeout_min` × 2).
    pub fn election_timeout_max(&self) -> Duration {
        self.inner.cfg.election_timeout_max()
    }

    /// Stops the group on this copy and marks the volume cleanly shut down (the boot guard
    /// then trusts its log after a reboot). Later calls do nothing; so does every other
    /// operation afterwards, answering `Fatal`.
    pub async fn shutdown(&self) {
        let Some(closer) = self.inner.closer.lock().ok().and_then(|mut c| c.take()) else {
            return;
        };
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "the raft group did not stop cleanly");
        }
        if let Err(e) = closer.mark() {
            tracing::warn!(error = %e, "could not mark the raft volume cleanly shut down");
        }
        tracing::info!(node_id = self.inner.identity.node_id, "raft group stopped");
    }

    pub(super) fn metrics(&self) -> RaftMetrics {
        self.inner.raft.metrics().borrow_watched().clone()
    }

    /// The member `id` in the latest membership.
    pub(super) fn member(&self, id: u64) -> Option<Member> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        m.membership_config.membership().get_node(&id).cloned()
    }

    /// Every record of the serving generation, raw, read inside the state machine's task (the
    /// tests compare copies with it).
    #[cfg(test)]
    pub(crate) async fn dump_records(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.inner
            .raft
            .with_state_machine(|sm: &mut StateMachine<T>| {
                let out: Vec<(Vec<u8>, Vec<u8>)> = sm
                    .records()
                    .iter()
                    .map(|g| {
                        let (k, v) = g.into_inner().expect("readable");
                        (k.to_vec(), v.to_vec())
                    })
                    .collect();
                Box::pin(async move { out })
            })
            .await
            .expect("state machine answers")
    }
}
