//! One kvserver per fuzzing process: its router over a fresh data dir, and the runtime that
//! drives it. Built once, on first use; the data dir lives in `$TMPDIR` (tests/fuzz/run.sh
//! points that at a scratch dir it removes afterwards).

use std::sync::OnceLock;

use axum::Router;
use kvserver::{AppState, Config, SyncMode};
use tokio::runtime::Runtime;

/// The admin token the server is configured with; seeds that want admin routes send it.
pub const TOKEN: &str = "fuzz-token";
/// Small limits, so 413 answers are reachable by inputs of a few kilobytes.
pub const MAX_VALUE_BYTES: usize = 1024;
pub const MAX_IMPORT_BYTES: usize = 16 * 1024;

pub struct Server {
    pub runtime: Runtime,
    pub router: Router,
    // Kept so the directory outlives every request (statics are never dropped).
    _dir: tempfile::TempDir,
}

/// The process's server, opened on first call.
pub fn get() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| match open() {
        Ok(server) => server,
        Err(e) => panic!("cannot start the kvserver under test: {e}"),
    })
}

fn open() -> Result<Server, Box<dyn std::error::Error>> {
    let dir = tempfile::Builder::new().prefix("kvstore-fuzz-").tempdir()?;
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN)?;
    let mut config = Config::for_data_dir(dir.path().join("data"));
    config.admin_token_file = Some(token_file);
    config.max_value_bytes = MAX_VALUE_BYTES;
    config.max_import_bytes = MAX_IMPORT_BYTES;
    // Durability is not under test here; an fsync per write would only slow the fuzzer down.
    config.sync = SyncMode::Never;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The store and the peer client may spawn tasks: open them inside the runtime.
    let _inside = runtime.enter();
    let state = AppState::open(&config)?;
    let router = kvserver::app(state);
    Ok(Server {
        runtime,
        router,
        _dir: dir,
    })
}
