//! What every handler shares: the store, the topology, the drain flag, the peers and metrics.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kvproto::Topology;
use kvproto::raft::ServerState;
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

use crate::auth::{AdminToken, Credentials};
use crate::config::Config;
use crate::import_budget::ImportBudget;
use crate::metrics::{Metrics, RaftReading};
use crate::peer::PeerClient;
use crate::raft_node::RaftNode;
use crate::storage::Store;
use crate::topology_file;

#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
pub struct Shared {
    pub store: Arc<Store>,
    /// This copy's place in its shard's raft group (identity, the group's storage, the running
    /// group), and so where its writes go (`write_path.rs`).
    pub raft: Arc<RaftNode>,
    pub shard: u32,
    /// The admin token (admin routes).
    pub token: AdminToken,
    /// Admin, peer and data tokens: which route takes which is `Credentials`' doc.
    pub credentials: Credentials,
    pub peers: PeerClient,
    pub metrics: Metrics,
    pub max_value_bytes: usize,
    pub max_import_bytes: usize,
    /// Bytes of import bodies held at once.
    pub import_budget: ImportBudget,
    pub require_token_for_data: bool,
    /// `--require-topology`: no data is served before a topology is persisted.
    pub require_topology: bool,
    pub drain_delay: std::time::Duration,
    /// Data requests slower than this answer 503 `timeout`.
    pub request_timeout: std::time::Duration,
    /// Data requests in flight at once; more are shed with 503 `overloaded`.
    pub max_concurrency: usize,
    /// A data request's or topology push's whole body must arrive within this (else 408).
    pub body_read_timeout: std::time::Duration,
    /// Bytes of data bodies read ahead of the concurrency limit at once (else 503 `overloaded`).
    pub max_body_buffer_bytes: usize,
    /// Admin requests slower than this answer `timeout`.
    pub admin_timeout: std::time::Duration,
    topology: RwLock<Option<Arc<Topology>>>,
    /// Topology pushes hold it for writing, so the file and the map in memory move together;
    /// fenced imports and cleanups hold it for reading from their fence check to their last
    /// write, so a push (a Commit, say) never lands between the two.
    pub topology_gate: tokio::sync::RwLock<()>,
    pub topology_path: PathBuf,
    /// A replicated copy adopts the topology its group applied one adoption at a time
    /// (`group_start.rs`).
    pub topology_adoption: tokio::sync::Mutex<()>,
    /// Cancelled when the server stops: ends the tasks a running group spawned.
    pub group_tasks: CancellationToken,
    draining: AtomicBool,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// Opens the store (and the raft group's storage, if the volume holds one for the group
    /// the flags name) and loads the persisted topology. Blocking (scans the store once).
    pub fn open(config: &Config) -> anyhow::Result<AppState> {
        let store = Arc::new(
            Store::open(
                &config.data_dir.join("store"),
                config.sync,
                config.cache_bytes,
            )
            .map_err(|e| anyhow::anyhow!("cannot open the store: {e}"))?,
        );
        let raft = RaftNode::new(config, store.clone())
            .map_err(|e| anyhow::anyhow!("cannot open the raft storage: {e}"))?;
        let credentials = Credentials::from_files(
            config.admin_token_file.as_deref(),
            config.peer_token_file.as_deref(),
            config.data_token_file.as_deref(),
        )?;
        let token = credentials.admin.clone();
        let topology_path = topology_file::path_in(&config.data_dir);
        let topology = topology_file::load(&topology_path)?.map(Arc::new);
        let state = AppState(Arc::new(Shared {
            store,
            raft: Arc::new(raft),
            shard: config.shard_ordinal(),
            peers: PeerClient::new(credentials.peer.clone(), config.tls_ca_file.as_deref())?,
            token,
            credentials,
            metrics: Metrics::default(),
            max_value_bytes: config.max_value_bytes,
            max_import_bytes: config.max_import_bytes,
            import_budget: ImportBudget::new(config.import_budget(), config.max_import_bytes),
            require_token_for_data: config.require_token_for_data,
            require_topology: config.require_topology,
            drain_delay: config.drain_delay,
            request_timeout: config.request_timeout,
            max_concurrency: config.max_concurrency,
            body_read_timeout: config.body_read_timeout,
            max_body_buffer_bytes: config.max_body_buffer_bytes.max(config.max_value_bytes),
            admin_timeout: config.admin_timeout,
            topology: RwLock::new(topology),
            topology_gate: tokio::sync::RwLock::new(()),
            topology_path,
            topology_adoption: tokio::sync::Mutex::new(()),
            group_tasks: CancellationToken::new(),
            draining: AtomicBool::new(false),
        }));
        state.refresh_gauges();
        Ok(state)
    }

    pub fn topology(&self) -> Option<Arc<Topology>> {
        self.0.topology.read().clone()
    }

    /// Replaces the map served (after it was persisted).
    pub fn set_topology(&self, topology: Topology) {
        *self.0.topology.write() = Some(Arc::new(topology));
        self.refresh_gauges();
    }

    pub fn epoch(&self) -> u64 {
        self.0.topology.read().as_ref().map_or(0, |t| t.epoch)
    }

    /// True while `--require-topology` holds data back: no topology has been persisted yet.
    pub fn awaits_topology(&self) -> bool {
        self.require_topology && self.0.topology.read().is_none()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Switches to draining; returns whether it already was.
    pub fn start_draining(&self) -> bool {
        let was = self.draining.swap(true, Ordering::AcqRel);
        if !was {
            tracing::info!("draining: data routes now answer 503");
        }
        self.refresh_gauges();
        was
    }

    /// Brings the gauges up to date (called before each scrape).
    pub fn refresh_gauges(&self) {
        let m = &self.metrics;
        m.keys
            .set(i64::try_from(self.store.key_count()).unwrap_or(i64::MAX));
        m.bytes
            .set(i64::try_from(self.store.value_bytes()).unwrap_or(i64::MAX));
        m.epoch.set(i64::try_from(self.epoch()).unwrap_or(i64::MAX));
        m.draining.set(i64::from(self.is_draining()));
        if let Some(group) = self.raft.running() {
            let s = group.status();
            let leads = s.state == ServerState::Leader;
            m.raft.set(RaftReading {
                term: s.term,
                leader: leads,
                commit_index: s.committed.unwrap_or(0),
                applied_index: s.applied.unwrap_or(0),
                lag: if leads {
                    s.members.iter().filter_map(|m| m.lag).max().unwrap_or(0)
                } else {
                    0
                },
            });
        }
    }
}
