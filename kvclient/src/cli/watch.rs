//! The screen modes: the book's client over a fixed list, and the topology-following client.

use std::io::Write;

use kvclient::probe::{KeyApi, check_keys};
use kvclient::{ShardedClient, screen};
use kvproto::Key;

use super::args::WatchArgs;
use super::error::CliError;
use super::kvstore;
use super::target::config;

/// Where the following mode learns its servers from.
enum Source {
    Fixed,
    KvStore {
        kube: kube::Client,
        name: String,
        namespace: Option<String>,
        /// `--servers`: addresses to use instead of the in-cluster DNS names.
        fixed_servers: bool,
    },
}

pub async fn run(args: WatchArgs) -> Result<(), CliError> {
    let keys = keys(args.keys)?;
    let book = args.book_servers.is_some();
    let readonly = args.readonly || args.readonly_word.is_some();
    // The book's client shows every failure as it happens; the following client rides over
    // restarts and topology phase changes with a few safe retries.
    let config = config(&args.conn, if book { 0 } else { 4 })?;
    let (client, source) = if let Some(list) = &args.book_servers {
        let client = ShardedClient::new(&list.0, config)?.with_follow_topology(false);
        (client, Source::Fixed)
    } else if let Some(name) = &args.kvstore {
        let kube = kvstore::kube_client().await?;
        let view = kvstore::discover(&kube, name, args.namespace.as_deref()).await?;
        let config = kvstore::trusting_store_ca(&kube, &view, config).await?;
        let servers = match &args.servers {
            Some(list) => list.0.clone(),
            None => view.servers.clone(),
        };
        let client = ShardedClient::new(&servers, config)?.with_sharding(view.sharding);
        client.set_fallback_shards(view.serving);
        if args.servers.is_none() {
            client.set_copies(&view.copies)?;
        }
        let source = Source::KvStore {
            kube,
            name: name.clone(),
            namespace: args.namespace.clone(),
            fixed_servers: args.servers.is_some(),
        };
        (client, source)
    } else {
        let list = args
            .servers
            .as_ref()
            .map(|l| l.0.clone())
            .unwrap_or_default();
        (ShardedClient::new(&list, config)?, Source::Fixed)
    };
    let api = if book { KeyApi::Book } else { KeyApi::V1 };
    let compact = args.keys.is_some();

    if !book {
        follow(&client, &source).await;
    }
    let mut shown = client.routing();
    print(&header(&client, &keys, compact))?;
    let mut ticker = tokio::time::interval(args.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round: u64 = 0;
    loop {
        ticker.tick().await;
        if !book && round > 0 {
            follow(&client, &source).await;
        }
        let routing = client.routing();
        if routing.shards != shown.shards {
            print(&screen::topology_changed(
                shown.shards,
                routing.shards,
                routing.epoch,
            ))?;
            print(&header(&client, &keys, compact))?;
        }
        shown = routing;
        let outcomes = check_keys(&client, &keys, readonly, api, args.concurrency as usize).await;
        let clock = screen::clock(&chrono::Local::now());
        let line = if compact {
            screen::compact_line(&clock, &outcomes)
        } else {
            screen::round_line(&clock, &outcomes)
        };
        print(&line)?;
        round += 1;
        if args.iterations.is_some_and(|n| round >= n) {
            return Ok(());
        }
    }
}

/// Re-reads the KVStore (if any) and the servers' topology. Failures keep the last view: the
/// screen shows unreachable servers as `.` anyway.
async fn follow(client: &ShardedClient, source: &Source) {
    if let Source::KvStore {
        kube,
        name,
        namespace,
        fixed_servers,
    } = source
    {
        match kvstore::discover(kube, name, namespace.as_deref()).await {
            Ok(view) => {
                if !fixed_servers
                    && let Err(e) = client
                        .set_servers(&view.servers)
                        .and_then(|()| client.set_copies(&view.copies))
                {
                    tracing::warn!(error = %e, "KVStore gave unusable addresses");
                }
                client.set_fallback_shards(view.serving);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the KVStore"),
        }
    }
    if let Err(e) = client.refresh_topology().await {
        tracing::debug!(error = %e, "no server answered /v1/topology");
    }
}

fn keys(count: Option<u32>) -> Result<Vec<Key>, CliError> {
    let names = match count {
        Some(n) => (0..n).map(|i| format!("key-{i}")).collect(),
        None => screen::book_keys(),
    };
    names
        .into_iter()
        .map(|k| Key::new(k).map_err(|e| CliError::Usage(e.to_string())))
        .collect()
}

fn header(client: &ShardedClient, keys: &[Key], compact: bool) -> String {
    let shards: Vec<u32> = keys.iter().map(|k| client.shard_of(k)).collect();
    if compact {
        screen::compact_header(keys.len(), client.routing().shards, &shards)
    } else {
        let names: Vec<String> = keys.iter().map(|k| k.as_str().to_string()).collect();
        screen::header(&names, &shards)
    }
}

/// Writes and flushes at once: users watch this as a pod log.
fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
