//! Benchmark baseline: the book's three routes on a bare in-memory axum server (no durability,
//! no validation, no metrics). `cargo run --release --example inmem_baseline -- <port>`.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use parking_lot::RwLock;

type Db = Arc<RwLock<BTreeMap<String, String>>>;

async fn save(State(db): State<Db>, Path((key, value)): Path<(String, String)>) -> String {
    db.write().insert(key, value.clone());
    value
}

async fn load(State(db): State<Db>, Path(key): Path<String>) -> String {
    db.read()
        .get(&key)
        .cloned()
        .unwrap_or_else(|| "_key_not_found_".to_owned())
}

async fn all_keys(State(db): State<Db>) -> String {
    db.read().keys().cloned().collect::<Vec<_>>().join(",")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(8090);
    let app = Router::new()
        .route("/save/{key}/{value}", get(save))
        .route("/load/{key}", get(load))
        .route("/allKeys", get(all_keys))
        .with_state(Db::default());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
