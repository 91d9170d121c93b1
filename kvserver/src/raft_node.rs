//! This server's place in its shard's Raft group (docs/replication.md section 3): the group it
//! belongs to (by its flags on copies 1.., by a persisted init on copy 0), its node ID, the
//! group's storage (`kvraft::Storage`) opened on the store's own database, and the running
//! `kvraft::ShardGroup` once started.
//!
//! Nothing is created on a volume that never asked: a server with no `--raft-store-uid`, no
//! persisted init and no `raft_meta` keyspace runs exactly as before ([`Via::Local`]). The
//! storage is opened at start when the volume already holds raft state for its group (so the
//! boot guard judges the previous run before anything else), else at the first status call.
//! Copy 0 has no group until it is formed (or, on a replaced volume, joined), so until then it
//! reports the ID of `storage/node_id.rs`, which its group identity adopts at init or join.
//!
//! The group itself starts in `group_start.rs` (at boot, or at init); from then on every change
//! goes through it ([`Via::Group`]) and it stays until the process exits.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use kvproto::raft::{GroupId, Member, RaftStatus, ServerState};
use kvraft::{Durability, RaftConfig, ReadPolicy, ShardGroup, Storage, StorageConfig, UnsafeMode};
use parking_lot::Mutex;
use thiserror::Error;

use crate::config::{Config, RaftReadPolicy, SyncMode};
use crate::storage::raft_home::JoinedGroup;
use crate::storage::{StorageError, Store};

/// kvraft's keyspace of the group's small facts: it exists once a group's storage was opened.
const RAFT_META_KEYSPACE: &str = "raft_meta";
/// How often a draining copy looks whether leadership came back to it.
const DRAIN_RECHECK: Duration = Duration::from_millis(100);

/// Why the group's storage or the node's identity is unavailable.
#[derive(Debug, Error)]
pub enum RaftNodeError {
    #[error("this volume belongs to another raft group: {0}")]
    GroupMismatch(String),
    #[error("raft storage: {0}")]
    Raft(kvraft::StorageError),
    #[error(transparent)]
    Store(#[from] StorageError),
    #[error("--sync never cannot hold a raft log")]
    SyncNever,
    #[error("raft group: {0}")]
    Group(#[from] kvraft::GroupError),
    #[error("raft task: {0}")]
    Task(String),
}

impl From<kvraft::StorageError> for RaftNodeError {
    fn from(e: kvraft::StorageError) -> Self {
        match e {
            kvraft::StorageError::GroupMismatch { .. } => {
                RaftNodeError::GroupMismatch(e.to_string())
            }
            other => RaftNodeError::Raft(other),
        }
    }
}

/// The way a write takes (`write_path.rs`).
#[derive(Clone, Copy)]
pub enum Via<'a> {
    /// Straight into this server's store (no group runs here).
    Local,
    /// Proposed to the group running on this copy, answered with the applied outcome.
    Group(&'a ShardGroup<Store>),
}

/// The group's timing and read policy, from the `--raft-*` flags.
#[derive(Debug, Clone, Copy)]
struct Settings {
    heartbeat: Duration,
    election_timeout_min: Duration,
    read_policy: ReadPolicy,
    write_timeout: Duration,
    /// `--unsafe-ack` / `--unsafe-read` (feature `unsafe-fault-modes`); else `None`.
    unsafe_mode: UnsafeMode,
}

/// How the group reaches its peers: the client and peer token, asked at each RPC.
pub type PeerNet = Arc<dyn kvraft::PeerCredentials>;

/// The node, shared by the handlers.
pub struct RaftNode {
    store: Arc<Store>,
    /// From the flags (copies 1..); `None` on copy 0.
    flags_group: Option<GroupId>,
    /// `--raft-advertise-url`: where the group reaches this copy.
    advertise_url: Option<String>,
    /// `POD_NAME`: what `x-kv-leader` says when this copy leads.
    pod_name: Option<String>,
    /// `--sync` as the log's durability; `None` under `--sync never` (no log allowed).
    durability: Option<Durability>,
    /// Where the kernel's boot id is read (the boot guard).
    boot_id_path: PathBuf,
    settings: Settings,
    /// The group's storage once opened and until the group takes it; also serializes the
    /// first open and ID creation.
    storage: Mutex<Option<Storage<Store>>>,
    /// Set when the group took the storage (it is never opened twice).
    taken: AtomicBool,
    /// The running group, set once.
    running: OnceLock<Running>,
    /// Serializes starting the group (boot, init).
    starting: tokio::sync::Mutex<()>,
}

/// A started group and its RPC routes (built once).
struct Running {
    group: ShardGroup<Store>,
    rpc: axum::Router,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("flags_group", &self.flags_group)
            .field("advertise_url", &self.advertise_url)
            .field("open", &self.storage.lock().is_some())
            .field("running", &self.running.get().is_some())
            .finish_non_exhaustive()
    }
}

impl RaftNode {
    /// The node of `config`; opens the group's storage at once if the volume already holds
    /// it for its group (by the flags or a persisted init). Blocking.
    pub fn new(config: &Config, store: Arc<Store>) -> Result<RaftNode, RaftNodeError> {
        let node = RaftNode {
            store,
            flags_group: config.raft_group(),
            advertise_url: config.raft_advertise_url.clone(),
            pod_name: config.pod_name.clone(),
            durability: match config.sync {
                SyncMode::Always => Some(Durability::Always),
                SyncMode::Batch => Some(Durability::Batch),
                SyncMode::Never => None,
            },
            boot_id_path: PathBuf::from(kvraft::BOOT_ID_PATH),
            settings: Settings {
                heartbeat: config.raft_heartbeat,
                election_timeout_min: config.raft_election_timeout_min,
                read_policy: match config.raft_read_policy {
                    RaftReadPolicy::Lease => ReadPolicy::Lease,
                    RaftReadPolicy::ReadIndex => ReadPolicy::ReadIndex,
                },
                write_timeout: config.raft_write_timeout,
                unsafe_mode: config.unsafe_mode(),
            },
            storage: Mutex::new(None),
            taken: AtomicBool::new(false),
            running: OnceLock::new(),
            starting: tokio::sync::Mutex::new(()),
        };
        let home = node.home()?;
        if let Some((group, _)) = &home
            && node.store.database()?.keyspace_exists(RAFT_META_KEYSPACE)
        {
            node.with_storage(group, None, |_| ())?;
        }
        Ok(node)
    }

    /// The way a write takes now.
    #[inline]
    pub fn via(&self) -> Via<'_> {
        match self.running.get() {
            Some(r) => Via::Group(&r.group),
            None => Via::Local,
        }
    }

    /// Waits while the group is being started (at boot or by an init): a status asked
    /// meanwhile then sees the running group, not storage the group is taking over.
    pub async fn settled(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.starting.lock().await
    }

    /// The running group, if any.
    #[inline]
    pub fn running(&self) -> Option<&ShardGroup<Store>> {
        self.running.get().map(|r| &r.group)
    }

    /// The running group's RPC routes (`POST /v1/raft/*`).
    pub fn rpc_routes(&self) -> Option<axum::Router> {
        self.running.get().map(|r| r.rpc.clone())
    }

    /// The group this copy belongs to: the running one, else the flags'.
    pub fn group(&self) -> Option<&GroupId> {
        self.running()
            .map(ShardGroup::group_id)
            .or(self.flags_group.as_ref())
    }

    /// The group by the flags (copies 1..), if any.
    pub fn flags_group(&self) -> Option<&GroupId> {
        self.flags_group.as_ref()
    }

    pub fn advertise_url(&self) -> Option<&str> {
        self.advertise_url.as_deref()
    }

    /// The group this copy starts at boot, and this copy as its member when known before the
    /// identity is (a persisted init names it whole). The flags win; a persisted init of
    /// another group refuses to start. Blocking.
    fn home(&self) -> Result<Option<(GroupId, Option<Member>)>, RaftNodeError> {
        let joined = self.store.joined_group()?;
        match (&self.flags_group, joined) {
            (Some(flags), Some(j)) if j.group != *flags => {
                Err(RaftNodeError::GroupMismatch(format!(
                    "the volume joined {} at init, the flags name {flags}",
                    j.group
                )))
            }
            (Some(flags), _) => Ok(Some((flags.clone(), None))),
            (None, Some(j)) => Ok(Some((j.group, Some(j.member)))),
            (None, None) => Ok(None),
        }
    }

    /// Runs `f` on the storage of `group`, opening it first if needed (a volume without an
    /// identity adopting `adopt`). Blocking.
    fn with_storage<T>(
        &self,
        group: &GroupId,
        adopt: Option<u64>,
        f: impl FnOnce(&Storage<Store>) -> T,
    ) -> Result<T, RaftNodeError> {
        let mut slot = self.storage.lock();
        if slot.is_none() {
            if self.taken.load(Ordering::Acquire) {
                // The group owns the storage now: never a second instance on the same volume.
                return Err(RaftNodeError::Task(
                    "the raft group is starting or running".to_owned(),
                ));
            }
            let durability = self.durability.ok_or(RaftNodeError::SyncNever)?;
            let cfg = StorageConfig {
                group: group.clone(),
                durability,
                boot_id: kvraft::read_boot_id(&self.boot_id_path)?,
            };
            let db = self.store.database()?;
            let storage = Storage::open_adopting(&db, &cfg, self.store.clone(), adopt)?;
            tracing::info!(
                node_id = storage.identity().node_id,
                group = %storage.identity().group,
                boot = ?storage.boot(),
                "raft storage opened"
            );
            *slot = Some(storage);
        }
        match slot.as_ref() {
            Some(storage) if storage.identity().group == *group => Ok(f(storage)),
            Some(storage) => Err(RaftNodeError::GroupMismatch(format!(
                "the storage is open for {}, not {group}",
                storage.identity().group
            ))),
            None => Err(RaftNodeError::Task("raft storage vanished".to_owned())),
        }
    }

    /// This copy's node ID: its group identity's once it has a group, else the ID reported
    /// before any group (created on the first call). Blocking.
    pub fn node_id(&self) -> Result<u64, RaftNodeError> {
        if let Some(g) = self.running() {
            return Ok(g.me().node_id);
        }
        match self.home()? {
            Some((group, _)) => self.with_storage(&group, None, |s| s.identity().node_id),
            None => {
                // Serialized with every other first use of the volume's raft state.
                let _one = self.storage.lock();
                Ok(self.store.node_id_before_group()?)
            }
        }
    }

    /// What this copy says about its group (`GET /v1/admin/raft/status`). Not yet a member of
    /// a running group: state `learner`, no members. Creates the node ID on first call.
    /// Blocking when no group runs.
    pub fn status(&self) -> Result<RaftStatus, RaftNodeError> {
        if let Some(g) = self.running() {
            return Ok(g.status());
        }
        let home = self.home()?;
        let applied = match &home {
            Some((group, _)) => {
                self.with_storage(group, None, |s| s.state_machine().applied_index())?
            }
            None => None,
        };
        Ok(RaftStatus {
            group: home.map(|(g, _)| g),
            node_id: self.node_id()?,
            state: ServerState::Learner,
            term: 0,
            leader: None,
            last_log_index: None,
            committed: None,
            applied,
            members: Vec::new(),
        })
    }

    /// Starts the group this copy belongs to at boot (by its flags or a persisted init);
    /// `false` when it belongs to none. Idempotent.
    pub async fn start_at_boot(self: &Arc<Self>, net: PeerNet) -> Result<bool, RaftNodeError> {
        let _one = self.starting.lock().await;
        if self.running.get().is_some() {
            return Ok(true);
        }
        let node = self.clone();
        let home = tokio::task::spawn_blocking(move || node.home())
            .await
            .map_err(|e| RaftNodeError::Task(e.to_string()))??;
        let Some((group, member)) = home else {
            return Ok(false);
        };
        self.start(group, member, None, net).await?;
        Ok(true)
    }

    /// Starts the group `group` for an init or a join on a copy where none runs: the volume's identity
    /// adopts `adopt` (copy 0's ID before its group), and a copy without flags keeps the group
    /// and `me` so that a restart rejoins. Returns the running group, and whether this call
    /// started it.
    pub async fn join(
        self: &Arc<Self>,
        group: GroupId,
        me: Member,
        adopt: Option<u64>,
        net: PeerNet,
    ) -> Result<(&ShardGroup<Store>, bool), RaftNodeError> {
        let _one = self.starting.lock().await;
        if let Some(g) = self.running() {
            return Ok((g, false));
        }
        if let Some(flags) = &self.flags_group
            && *flags != group
        {
            return Err(RaftNodeError::GroupMismatch(format!(
                "this copy is in {flags} by its flags, the request names {group}"
            )));
        }
        if self.flags_group.is_none() {
            let (node, joined) = (
                self.clone(),
                JoinedGroup {
                    group: group.clone(),
                    member: me.clone(),
                },
            );
            // The identity first (adopting the ID), then the record that says to rejoin.
            tokio::task::spawn_blocking(move || {
                node.with_storage(&joined.group, adopt, |_| ())?;
                node.store.persist_joined_group(&joined)?;
                Ok::<_, RaftNodeError>(())
            })
            .await
            .map_err(|e| RaftNodeError::Task(e.to_string()))??;
        }
        Ok((self.start(group, Some(me), adopt, net).await?, true))
    }

    /// Opens the storage if needed and starts the group on it; the caller holds `starting`.
    async fn start(
        self: &Arc<Self>,
        group: GroupId,
        member: Option<Member>,
        adopt: Option<u64>,
        net: PeerNet,
    ) -> Result<&ShardGroup<Store>, RaftNodeError> {
        let node = self.clone();
        let for_group = group.clone();
        let storage = tokio::task::spawn_blocking(move || {
            node.with_storage(&for_group, adopt, |_| ())?;
            let mut slot = node.storage.lock();
            node.taken.store(true, Ordering::Release);
            slot.take()
                .ok_or_else(|| RaftNodeError::Task("raft storage vanished".to_owned()))
        })
        .await
        .map_err(|e| RaftNodeError::Task(e.to_string()))??;
        let identity = storage.identity().clone();
        let me = match member {
            Some(m) => Member {
                node_id: identity.node_id,
                ..m
            },
            None => self.me_by_flags(identity.node_id)?,
        };
        let mut cfg = RaftConfig::new(net.http());
        cfg.peer = net;
        cfg.heartbeat = self.settings.heartbeat;
        cfg.election_timeout_min = self.settings.election_timeout_min;
        cfg.read_policy = self.settings.read_policy;
        cfg.write_timeout = self.settings.write_timeout;
        cfg.unsafe_mode = self.settings.unsafe_mode;
        if cfg.unsafe_mode != UnsafeMode::None {
            tracing::warn!(
                mode = ?cfg.unsafe_mode,
                %group,
                "deliberately broken replication mode: acknowledged writes may be lost or reads stale"
            );
        }
        let group = ShardGroup::open(storage, identity, me, Some(group), cfg).await?;
        let rpc = group.routes();
        let running = self.running.get_or_init(|| Running { group, rpc });
        Ok(&running.group)
    }

    /// This copy as a member by its flags: `POD_NAME` (else the advertised host) at
    /// `--raft-advertise-url`.
    fn me_by_flags(&self, node_id: u64) -> Result<Member, RaftNodeError> {
        let addr = self.advertise_url.clone().ok_or_else(|| {
            RaftNodeError::Task("a copy with --raft-store-uid needs --raft-advertise-url".into())
        })?;
        let pod = match &self.pod_name {
            Some(p) => p.clone(),
            None => reqwest::Url::parse(&addr)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| addr.clone()),
        };
        Ok(Member {
            node_id,
            pod,
            addr: addr.trim_end_matches('/').to_owned(),
        })
    }

    /// Drain: hands leadership over (as [`Self::hand_over_leadership`]), then for `hold` keeps
    /// it away: leadership moved back meanwhile (the operator's preferred leader, a transfer
    /// sent before it saw the pod go) is handed over again, so the copy never stops as leader.
    pub async fn drain_leadership(&self, hold: Duration) {
        self.hand_over_leadership().await;
        let until = tokio::time::Instant::now() + hold;
        while tokio::time::Instant::now() < until {
            tokio::time::sleep_until(until.min(tokio::time::Instant::now() + DRAIN_RECHECK)).await;
            if self.running().is_some_and(|g| g.is_leader()) {
                tracing::warn!("draining: leadership came back; handing it over again");
                self.hand_over_leadership().await;
            }
        }
    }

    /// Drain, first step: a leader with another voter hands leadership over and waits (bounded)
    /// for the new leader; returns it. Anything else does nothing.
    pub async fn hand_over_leadership(&self) -> Option<Member> {
        let g = self.running()?;
        let voters = g
            .status()
            .members
            .iter()
            .filter(|m| m.role == kvproto::raft::Role::Voter)
            .count();
        if !g.is_leader() || voters < 2 {
            return None;
        }
        let bound = (g.election_timeout_max() * 3).max(Duration::from_secs(2));
        let began = std::time::Instant::now();
        match tokio::time::timeout(bound, g.transfer_leadership(None)).await {
            Ok(Ok(leader)) => {
                tracing::info!(
                    to = %leader,
                    after_ms = began.elapsed().as_millis(),
                    "draining: leadership handed over"
                );
                Some(leader)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "draining: leadership not handed over");
                None
            }
            Err(_) => {
                tracing::warn!("draining: leadership did not move in time");
                None
            }
        }
    }

    /// Why `/readyz` fails for this copy's group, if it does: a copy is in sync when it leads,
    /// or when it is a voter that follows a known leader and applied what it knows committed.
    /// A learner catching up, a copy in no membership or between leaders is not.
    pub fn not_ready(&self) -> Option<&'static str> {
        let g = self.running()?;
        let s = g.status();
        match s.state {
            ServerState::Leader => None,
            ServerState::Follower if s.leader.is_none() => Some("raft: no leader known"),
            ServerState::Follower if s.applied.unwrap_or(0) < s.committed.unwrap_or(0) => {
                Some("raft: applying what the group committed")
            }
            ServerState::Follower => None,
            ServerState::Learner if s.members.is_empty() => Some("raft: not a member yet"),
            ServerState::Learner => Some("raft: a learner catching up"),
            ServerState::Candidate => Some("raft: electing a leader"),
            ServerState::Shutdown => Some("raft: the group stopped"),
        }
    }

    /// Stops the running group cleanly (marked for the boot guard).
    pub async fn shutdown(&self) {
        if let Some(g) = self.running() {
            g.shutdown().await;
        }
    }

    /// A clean shutdown of the group's storage, if it was opened and never started: synced,
    /// then marked clean for the boot guard. Blocking.
    pub fn close(&self) -> Result<(), RaftNodeError> {
        match self.storage.lock().take() {
            Some(storage) => Ok(storage.close_clean()?),
            None => Ok(()),
        }
    }
}
