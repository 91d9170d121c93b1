//! The kvservers under test, one of each [`Kind`] per fuzzing process: each a router over a
//! fresh data dir, all driven by one runtime. Built once, on first use; the data dirs live in
//! `$TMPDIR` (tests/fuzz/run.sh points that at a scratch dir it removes afterwards).
//!
//! A request picks its server with the pseudo-header [`SERVER_HEADER`] (removed before it is
//! sent); without it, it goes to [`Kind::Plain`].

use std::sync::OnceLock;

use axum::Router;
use kvproto::topology::{Migration, MigrationPhase};
use kvproto::{Sharding, Topology};
use kvserver::{AppState, Config, SyncMode};
use tokio::runtime::Runtime;

/// The admin token file's lines: the token the servers send, and the next one (a rotation in
/// progress). Both are accepted.
pub const TOKENS: [&str; 2] = ["fuzz-token", "fuzz-next-token"];
/// The token seeds send to reach admin routes.
pub const TOKEN: &str = TOKENS[0];
/// Small limits, so 413 answers are reachable by inputs of a few kilobytes.
pub const MAX_VALUE_BYTES: usize = 1024;
pub const MAX_IMPORT_BYTES: usize = 16 * 1024;
/// The pseudo-header naming the server a request goes to (see [`Kind::from_name`]).
pub const SERVER_HEADER: &str = "x-fuzz-server";
/// The epochs of the servers that start with a topology.
pub const STABLE_EPOCH: u64 = 6;
pub const COPY_EPOCH: u64 = 7;

/// The servers a request can be sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No topology (the book's mode): every key is served here.
    Plain,
    /// Shard 0 of a stable 2-shard topology at [`STABLE_EPOCH`]: keys of shard 1 are forwarded
    /// (to a closed loopback port, so 503 `peer_unavailable`); fenced cleanups at
    /// `epoch=6&phase=stable` are admitted.
    Stable,
    /// Shard 0 of a move from 1 to 2 shards, in Copy at [`COPY_EPOCH`]: imports fenced at
    /// `epoch=7&phase=copy` are admitted, cleanups refused.
    Copy,
    /// `--require-topology` and no topology yet: data routes answer 503 `misdirected`.
    Awaiting,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Plain, Kind::Stable, Kind::Copy, Kind::Awaiting];

    /// `plain`, `stable`, `copy`, `awaiting` (any case, surrounding blanks ignored); anything
    /// else is `None` and the request is skipped.
    pub fn from_name(name: &[u8]) -> Option<Kind> {
        let name = std::str::from_utf8(name).ok()?.trim().to_ascii_lowercase();
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Plain => "plain",
            Kind::Stable => "stable",
            Kind::Copy => "copy",
            Kind::Awaiting => "awaiting",
        }
    }

    /// The epoch the server answers in `x-kv-epoch` (its topology never changes: the fuzzer's
    /// topology pushes go without the token).
    pub fn epoch(self) -> u64 {
        match self {
            Kind::Plain | Kind::Awaiting => 0,
            Kind::Stable => STABLE_EPOCH,
            Kind::Copy => COPY_EPOCH,
        }
    }

    /// Whether the server has a topology with another shard (so it may forward and answer 503
    /// `peer_unavailable`, or 508 at the hop limit).
    pub fn has_peers(self) -> bool {
        matches!(self, Kind::Stable | Kind::Copy)
    }
}

pub struct Servers {
    pub runtime: Runtime,
    routers: Vec<Router>,
    // Kept so the directories outlive every request (statics are never dropped).
    _dirs: Vec<tempfile::TempDir>,
}

impl Servers {
    pub fn router(&self, kind: Kind) -> &Router {
        &self.routers[kind as usize]
    }
}

/// The process's servers, opened on first call.
pub fn get() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| match open_all() {
        Ok(servers) => servers,
        Err(e) => panic!("cannot start the kvservers under test: {e}"),
    })
}

fn open_all() -> Result<Servers, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // A loopback port nothing listens on: the peer the topology servers would forward to.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let peers = vec![format!("http://{closed}"); 2];
    let (mut routers, mut dirs) = (Vec::new(), Vec::new());
    for kind in Kind::ALL {
        let topology = match kind {
            Kind::Plain | Kind::Awaiting => None,
            Kind::Stable => Some(Topology::stable(
                STABLE_EPOCH,
                Sharding::Modulo,
                peers.clone(),
            )),
            Kind::Copy => Some(Topology {
                migration: Some(Migration {
                    from_shards: 1,
                    phase: MigrationPhase::Copy,
                }),
                ..Topology::stable(COPY_EPOCH, Sharding::Modulo, peers.clone())
            }),
        };
        let dir = tempfile::Builder::new().prefix("kvstore-fuzz-").tempdir()?;
        routers.push(open(&runtime, &dir, kind, topology)?);
        dirs.push(dir);
    }
    Ok(Servers {
        runtime,
        routers,
        _dirs: dirs,
    })
}

fn open(
    runtime: &Runtime,
    dir: &tempfile::TempDir,
    kind: Kind,
    topology: Option<Topology>,
) -> Result<Router, Box<dyn std::error::Error>> {
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKENS.join("\n") + "\n")?;
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    if let Some(t) = &topology {
        t.validate()?;
        // As if the operator had pushed it before: the server loads it at open.
        kvserver::topology_file::save(&kvserver::topology_file::path_in(&data_dir), t)?;
    }
    let mut config = Config::for_data_dir(data_dir);
    config.admin_token_file = Some(token_file);
    config.max_value_bytes = MAX_VALUE_BYTES;
    config.max_import_bytes = MAX_IMPORT_BYTES;
    config.shard = Some(0);
    config.require_topology = kind == Kind::Awaiting;
    // Durability is not under test here; an fsync per write would only slow the fuzzer down.
    config.sync = SyncMode::Never;
    // The store and the peer client may spawn tasks: open them inside the runtime.
    let _inside = runtime.enter();
    let state = AppState::open(&config)?;
    Ok(kvserver::app(state))
}
