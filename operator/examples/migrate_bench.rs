//! Migration throughput of the operator's copy engine against the book's way of resharding
//! (one HTTP request per key: read it from its old server, write it to its new one), on two
//! identical sets of kvservers started by `tests/bench/migration.sh`. Prints a markdown table.
//!
//! The engine side runs every phase of a real move (`rebalance::steps`: Handoff, Copy with
//! batched if-absent imports, Commit, Cleanup); keys/s is measured on the Copy step, and the
//! whole move is reported as the time a rebalance adds to the scale event. The baseline uses
//! the book's routes (`/load`, `/save`) on servers without a shard map (the book's servers),
//! one request at a time over a keep-alive connection.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a bench binary: a failed setup should panic

use std::time::{Duration, Instant};

use clap::Parser;
use kvclient::{ClientConfig, ServerClient};
use kvproto::bulk::BulkRecord;
use kvproto::wire::ImportMode;
use kvproto::{Key, Sharding, Topology};
use operator::rebalance::copy::CopyOptions;
use operator::rebalance::machine::next_phase;
use operator::rebalance::maps::MoveMaps;
use operator::rebalance::steps::Shards;
use operator::shards::KvClientAdmin;
use operator::status::{RebalancePhase, RebalanceStatus};
use tokio::sync::watch;

#[derive(Parser, Debug)]
struct Args {
    /// Servers the engine moves keys between (at least max(from, to)), comma-separated.
    #[arg(long, env = "BENCH_SERVERS", value_delimiter = ',')]
    servers: Vec<String>,
    /// Servers for the one-request-per-key baseline, comma-separated.
    #[arg(long, env = "BENCH_BASELINE_SERVERS", value_delimiter = ',')]
    baseline_servers: Vec<String>,
    /// File holding the admin token of every server.
    #[arg(long, env = "BENCH_TOKEN_FILE")]
    token_file: std::path::PathBuf,
    #[arg(long, env = "BENCH_FROM", default_value_t = 3)]
    from: u32,
    #[arg(long, env = "BENCH_TO", default_value_t = 4)]
    to: u32,
    /// Keys loaded before the move.
    #[arg(long, env = "BENCH_KEYS", default_value_t = 100_000)]
    keys: u32,
    /// Bytes per value.
    #[arg(long, env = "BENCH_VALUE_BYTES", default_value_t = 64)]
    value_bytes: usize,
    /// Keys the baseline copies (its rate is measured on this many moving keys).
    #[arg(long, env = "BENCH_BASELINE_KEYS", default_value_t = 100_000)]
    baseline_keys: usize,
    #[arg(long, env = "BENCH_SHARDING", default_value = "modulo")]
    sharding: String,
    /// Records per import request of the engine.
    #[arg(long, env = "BENCH_BATCH", default_value_t = operator::rebalance::copy::DEFAULT_BATCH)]
    batch: usize,
}

fn records(args: &Args) -> Vec<BulkRecord> {
    (0..args.keys)
        .map(|i| {
            let value: String = format!("{i:08}").repeat(args.value_bytes / 8 + 1);
            BulkRecord {
                key: Key::new(format!("user{i:08}")).unwrap(),
                version: 1,
                value: Some(value[..args.value_bytes].to_owned().into()),
            }
        })
        .collect()
}

/// Loads `records` on their owners under `shards` with bulk imports.
async fn load(servers: &[ServerClient], sharding: Sharding, shards: u32, records: &[BulkRecord]) {
    let mut groups: Vec<Vec<BulkRecord>> = vec![Vec::new(); shards as usize];
    for r in records {
        groups[sharding.shard_of(r.key.as_bytes(), shards) as usize].push(r.clone());
    }
    for (server, group) in servers.iter().zip(groups) {
        for chunk in group.chunks(10_000) {
            server
                .import(chunk, ImportMode::Overwrite, None)
                .await
                .unwrap();
        }
    }
}

/// The book's rebalance: every key that moves, read from its old server and written to its
/// new one, one HTTP request each. Answers (keys copied, time taken).
async fn baseline(args: &Args, sharding: Sharding, records: &[BulkRecord]) -> (usize, Duration) {
    let http = reqwest::Client::new();
    let moving: Vec<(usize, usize, &str)> = records
        .iter()
        .filter_map(|r| {
            let old = sharding.shard_of(r.key.as_bytes(), args.from) as usize;
            let new = sharding.shard_of(r.key.as_bytes(), args.to) as usize;
            (old != new).then_some((old, new, r.key.as_str()))
        })
        .take(args.baseline_keys)
        .collect();
    let started = Instant::now();
    for (old, new, key) in &moving {
        let from = &args.baseline_servers[*old];
        let value = http
            .get(format!("{from}/load/{key}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_ne!(value, "_key_not_found_", "{key}");
        let to = &args.baseline_servers[*new];
        let saved = http
            .get(format!("{to}/save/{key}/{value}"))
            .send()
            .await
            .unwrap();
        assert!(saved.status().is_success(), "{key}: {}", saved.status());
    }
    (moving.len(), started.elapsed())
}

/// A real move `from → to` with the operator's steps. Answers (records copied, copy time,
/// whole move time).
async fn engine(args: &Args, sharding: Sharding, token: &str) -> (u64, Duration, Duration) {
    let admin = KvClientAdmin::default();
    let mut r = RebalanceStatus {
        from: args.from as i32,
        to: args.to as i32,
        phase: RebalancePhase::ScalingUp,
        epoch: 2,
        keys_moved: 0,
        keys_total: 0,
        started_at: None,
        message: None,
    };
    let (progress, _) = watch::channel(Default::default());
    let options = CopyOptions {
        batch: args.batch,
        ..CopyOptions::default()
    };
    let started = Instant::now();
    let mut copy_time = Duration::ZERO;
    loop {
        let shards = Shards {
            admin: &admin,
            token,
            maps: MoveMaps::new(&r, sharding, &args.servers),
        };
        let step = Instant::now();
        shards
            .run(r.phase, options, &progress)
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e}", r.phase));
        if r.phase == RebalancePhase::Copy {
            copy_time = step.elapsed();
        }
        match next_phase(&r) {
            Some(p) => r.phase = p,
            None => break,
        }
    }
    let moved = progress.borrow().keys;
    (moved, copy_time, started.elapsed())
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let token = std::fs::read_to_string(&args.token_file)
        .unwrap()
        .trim()
        .to_owned();
    let sharding = match args.sharding.as_str() {
        "jump" => Sharding::Jump,
        _ => Sharding::Modulo,
    };
    let span = args.from.max(args.to) as usize;
    assert!(args.servers.len() >= span && args.baseline_servers.len() >= span);
    let config = ClientConfig {
        token: Some(token.clone()),
        ..ClientConfig::default()
    };
    let clients = |urls: &[String]| -> Vec<ServerClient> {
        urls.iter()
            .map(|u| ServerClient::new(u, config.clone()).unwrap())
            .collect()
    };
    let data = records(&args);

    // Engine: the servers hold the acknowledged map, as under the operator.
    let servers = clients(&args.servers);
    let first = Topology::stable(1, sharding, args.servers[..args.from as usize].to_vec());
    for s in &servers[..args.from as usize] {
        s.put_topology(&first).await.unwrap();
    }
    load(&servers, sharding, args.from, &data).await;
    let (moved, copy_time, move_time) = engine(&args, sharding, &token).await;

    // Baseline: the book's servers (no shard map: every server serves what it holds).
    let book = clients(&args.baseline_servers);
    load(&book, sharding, args.from, &data).await;
    let (copied, baseline_time) = baseline(&args, sharding, &data).await;

    let engine_rate = moved as f64 / copy_time.as_secs_f64();
    // For the script's extra rows (the book's own Python client).
    if let Ok(path) = std::env::var("BENCH_RESULT") {
        std::fs::write(path, format!("{engine_rate:.0}\n")).unwrap();
    }
    let baseline_rate = copied as f64 / baseline_time.as_secs_f64();
    println!(
        "\nMigration {}→{} shards, {} keys of {} bytes, {} sharding: {moved} keys move.\n",
        args.from, args.to, args.keys, args.value_bytes, args.sharding
    );
    println!("| method | keys copied | time | keys/s | ratio |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| one key per request (GET /load old, GET /save new), Rust reqwest, keep-alive | {copied} | {:.2} s | {baseline_rate:.0} | 1× |",
        baseline_time.as_secs_f64()
    );
    println!(
        "| operator copy engine: export scope=moving + if-absent import batches of {} | {moved} | {:.3} s | {engine_rate:.0} | {:.0}× |",
        args.batch,
        copy_time.as_secs_f64(),
        engine_rate / baseline_rate
    );
    println!(
        "\nWhole rebalance (Handoff, Copy, Commit, Cleanup; pods already running): {:.3} s",
        move_time.as_secs_f64()
    );
}
