//! Migration throughput of the operator's copy engine against the book's way of resharding
//! (one HTTP request per key: read it from its old server, write it to its new one), on two
//! identical sets of kvservers started by `tests/bench/migration.sh`. Prints a markdown table.
//!
//! The engine side runs every phase of a real move (`rebalance::steps`: Handoff, Copy with
//! batched if-absent imports, Commit, Cleanup); keys/s is measured on the Copy step, and the
//! whole move is reported as the time a rebalance adds to the scale event. The baseline uses
//! the book's routes (`/load`, `/save`) on servers without a shard map (the book's servers),
//! one request at a time over a keep-alive connection.
//!
//! Memory: with `--value-bytes-max`, value sizes spread from `--value-bytes` to it (log-uniform,
//! fixed by the key), e.g. 1 KiB to 1 MiB; records are generated as they are loaded, never all
//! held. The bench prints this process's peak RSS (`VmHWM`, reset after loading) over the move:
//! the copy engine's memory, to compare with the chart's 256 MiB operator limit.
//! `--baseline-keys 0` skips the one-request-per-key baseline (whose values travel in URLs).

#![allow(clippy::expect_used, clippy::unwrap_used)] // a bench binary: a failed setup should panic

use std::time::{Duration, Instant};

use clap::Parser;
use kvclient::{ClientConfig, ServerClient};
use kvproto::bulk::BulkRecord;
use kvproto::wire::ImportMode;
use kvproto::{Key, Sharding, Topology};
use operator::rebalance::copy::{CopyOptions, DEFAULT_BATCH_BYTES, DEFAULT_BUDGET_BYTES};
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
    /// Bytes per value (the smallest, with `--value-bytes-max`).
    #[arg(long, env = "BENCH_VALUE_BYTES", default_value_t = 64)]
    value_bytes: usize,
    /// Largest value: sizes spread log-uniformly from `--value-bytes` to this.
    #[arg(long, env = "BENCH_VALUE_BYTES_MAX")]
    value_bytes_max: Option<usize>,
    /// Keys the baseline copies (its rate is measured on this many moving keys).
    #[arg(long, env = "BENCH_BASELINE_KEYS", default_value_t = 100_000)]
    baseline_keys: usize,
    #[arg(long, env = "BENCH_SHARDING", default_value = "modulo")]
    sharding: String,
    /// Process ids of `--servers` (same order), to report their memory over the move.
    #[arg(long, env = "BENCH_SERVER_PIDS", value_delimiter = ',')]
    server_pids: Vec<u32>,
    /// Records per import request of the engine.
    #[arg(long, env = "BENCH_BATCH", default_value_t = operator::rebalance::copy::DEFAULT_BATCH)]
    batch: usize,
}

/// Record `i` of the data set: its value size fixed by `i`.
fn record(args: &Args, i: u32) -> BulkRecord {
    let len = match args.value_bytes_max {
        Some(max) if max > args.value_bytes => {
            // A fixed pseudo-random fraction of `i` (splitmix64), log-uniform between the bounds.
            let mut z = u64::from(i).wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            let u = (z ^ (z >> 31)) as f64 / u64::MAX as f64;
            let (lo, hi) = (args.value_bytes as f64, max as f64);
            (lo * (hi / lo).powf(u)) as usize
        }
        _ => args.value_bytes,
    };
    let value: String = format!("{i:08}").repeat(len / 8 + 1);
    BulkRecord {
        key: Key::new(format!("user{i:08}")).unwrap(),
        version: 1,
        value: Some(value[..len].to_owned().into()),
    }
}

/// Bytes per load request.
const LOAD_BATCH_BYTES: usize = 8 << 20;

/// Loads the data set on its owners under `shards` with bulk imports, generating it as it goes.
/// Answers the key and value bytes loaded.
async fn load(args: &Args, servers: &[ServerClient], sharding: Sharding, shards: u32) -> u64 {
    let mut groups: Vec<(Vec<BulkRecord>, usize)> = vec![(Vec::new(), 0); shards as usize];
    let mut total = 0u64;
    for i in 0..args.keys {
        let r = record(args, i);
        let owner = sharding.shard_of(r.key.as_bytes(), shards) as usize;
        total += (r.key.as_bytes().len() + r.value.as_ref().map_or(0, |v| v.len())) as u64;
        let (group, bytes) = &mut groups[owner];
        *bytes += r.encoded_len();
        group.push(r);
        if *bytes >= LOAD_BATCH_BYTES || group.len() >= 10_000 {
            servers[owner]
                .import(group, ImportMode::Overwrite, None)
                .await
                .unwrap();
            group.clear();
            *bytes = 0;
        }
    }
    for (server, (group, _)) in servers.iter().zip(groups) {
        if !group.is_empty() {
            server
                .import(&group, ImportMode::Overwrite, None)
                .await
                .unwrap();
        }
    }
    total
}

/// A line of /proc/`pid`/status, in bytes (`VmHWM`, `VmRSS`).
fn proc_status_bytes(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// The book's rebalance: every key that moves, read from its old server and written to its
/// new one, one HTTP request each. Answers (keys copied, time taken).
async fn baseline(args: &Args, sharding: Sharding) -> (usize, Duration) {
    let http = reqwest::Client::new();
    let moving: Vec<(usize, usize, String)> = (0..args.keys)
        .map(|i| format!("user{i:08}"))
        .filter_map(|key| {
            let old = sharding.shard_of(key.as_bytes(), args.from) as usize;
            let new = sharding.shard_of(key.as_bytes(), args.to) as usize;
            (old != new).then_some((old, new, key))
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

/// Key and value bytes of the records the move copies.
fn moved_bytes(args: &Args, sharding: Sharding) -> u64 {
    (0..args.keys)
        .map(|i| record(args, i))
        .filter(|r| {
            sharding.shard_of(r.key.as_bytes(), args.from)
                != sharding.shard_of(r.key.as_bytes(), args.to)
        })
        .map(|r| (r.key.as_bytes().len() + r.value.as_ref().map_or(0, |v| v.len())) as u64)
        .sum()
}

/// A real move `from → to` with the operator's steps. Answers (records copied, copy time,
/// whole move time).
/// Peak RSS of each of `pids` during each phase of a move, in bytes.
type PhasePeaks = Vec<(RebalancePhase, Vec<u64>)>;

/// Also answers the peak RSS of each of `pids` in each phase (`VmHWM`, reset before each).
async fn engine(
    args: &Args,
    sharding: Sharding,
    token: &str,
    pids: &[String],
) -> (u64, Duration, Duration, PhasePeaks) {
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
    let mut peaks = Vec::new();
    loop {
        for pid in pids {
            std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
        }
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
        let phase_peaks = pids.iter().map(|p| proc_status_bytes(p, "VmHWM:"));
        peaks.push((r.phase, phase_peaks.collect()));
        match next_phase(&r) {
            Some(p) => r.phase = p,
            None => break,
        }
    }
    let moved = progress.borrow().keys;
    (moved, copy_time, started.elapsed(), peaks)
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
    let with_baseline = args.baseline_keys > 0;
    assert!(args.servers.len() >= span && (!with_baseline || args.baseline_servers.len() >= span));
    let config = ClientConfig {
        token: Some(token.clone()),
        ..ClientConfig::default()
    };
    let clients = |urls: &[String]| -> Vec<ServerClient> {
        urls.iter()
            .map(|u| ServerClient::new(u, config.clone()).unwrap())
            .collect()
    };
    // Engine: the servers hold the acknowledged map, as under the operator. Loaded first: a
    // server with a map takes only imports fenced at its move's copy.
    let servers = clients(&args.servers);
    let loaded = load(&args, &servers, sharding, args.from).await;
    let first = Topology::stable(1, sharding, args.servers[..args.from as usize].to_vec());
    for s in &servers[..args.from as usize] {
        s.put_topology(&first).await.unwrap();
    }
    // The peak from here on is the move's (Linux: "5" resets VmHWM to the current RSS).
    let pids: Vec<String> = std::iter::once("self".to_owned())
        .chain(args.server_pids.iter().map(u32::to_string))
        .collect();
    let before: Vec<u64> = pids
        .iter()
        .map(|p| proc_status_bytes(p, "VmRSS:"))
        .collect();
    let (moved, copy_time, move_time, phases) = engine(&args, sharding, &token, &pids).await;
    let peak_of = |i: usize| phases.iter().map(|(_, p)| p[i]).max().unwrap_or(0);
    let (rss_before, peak) = (before[0], peak_of(0));
    let moved_bytes = moved_bytes(&args, sharding);

    // Baseline: the book's servers (no shard map: every server serves what it holds).
    let (copied, baseline_time) = if with_baseline {
        let book = clients(&args.baseline_servers);
        load(&args, &book, sharding, args.from).await;
        baseline(&args, sharding).await
    } else {
        (0, Duration::ZERO)
    };

    let engine_rate = moved as f64 / copy_time.as_secs_f64();
    // For the script's extra rows (the book's own Python client).
    if let Ok(path) = std::env::var("BENCH_RESULT") {
        std::fs::write(path, format!("{engine_rate:.0}\n")).unwrap();
    }
    let baseline_rate = copied as f64 / baseline_time.as_secs_f64();
    let values = match args.value_bytes_max {
        Some(max) => format!("{} to {max}", args.value_bytes),
        None => args.value_bytes.to_string(),
    };
    println!(
        "\nMigration {}→{} shards, {} keys of {values} bytes ({:.1} MiB), {} sharding: {moved} keys move.\n",
        args.from,
        args.to,
        args.keys,
        loaded as f64 / f64::from(1 << 20),
        args.sharding
    );
    println!("| method | keys copied | time | keys/s | ratio |");
    println!("|---|---:|---:|---:|---:|");
    if with_baseline {
        println!(
            "| one key per request (GET /load old, GET /save new), Rust reqwest, keep-alive | {copied} | {:.2} s | {baseline_rate:.0} | 1× |",
            baseline_time.as_secs_f64()
        );
    }
    let ratio = if with_baseline {
        format!("{:.0}×", engine_rate / baseline_rate)
    } else {
        "–".to_owned()
    };
    println!(
        "| operator copy engine: export scope=moving + if-absent import batches of {} records or {} MiB | {moved} | {:.3} s | {engine_rate:.0} | {ratio} |",
        args.batch,
        DEFAULT_BATCH_BYTES >> 20,
        copy_time.as_secs_f64(),
    );
    println!(
        "\nCopy engine memory (this process's VmHWM over the move, byte budget {} MiB): RSS {} MiB before, peak {} MiB, moving {:.1} MiB of values at {:.1} MiB/s",
        DEFAULT_BUDGET_BYTES >> 20,
        rss_before >> 20,
        peak >> 20,
        moved_bytes as f64 / f64::from(1 << 20),
        moved_bytes as f64 / f64::from(1 << 20) / copy_time.as_secs_f64()
    );
    // Peak RSS per phase (MiB): this process is the copy engine, the others the kvservers.
    let names: Vec<&str> = phases.iter().map(|(p, _)| p.as_str()).collect();
    println!(
        "\n| process (peak RSS, MiB) | after loading | {} |",
        names.join(" | ")
    );
    println!("|---|---:|{}", "---:|".repeat(names.len()));
    for (i, rss) in before.iter().enumerate() {
        let name = if i == 0 {
            "copy engine (this process)".to_owned()
        } else {
            format!("kvserver shard {}", i - 1)
        };
        let cells: Vec<String> = phases
            .iter()
            .map(|(_, p)| (p[i] >> 20).to_string())
            .collect();
        println!("| {name} | {} | {} |", rss >> 20, cells.join(" | "));
    }
    println!(
        "\nWhole rebalance (Handoff, Copy, Commit, Cleanup; pods already running): {:.3} s",
        move_time.as_secs_f64()
    );
}
