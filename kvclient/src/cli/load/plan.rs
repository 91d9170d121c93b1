//! What every worker of one run shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kvclient::ShardedClient;
use kvproto::Key;

use super::gaps::WriteGaps;
use crate::cli::args::LoadArgs;
use crate::cli::error::CliError;
use kvclient::history::History;

/// The run's client, keys and knobs, shared by the workers behind an `Arc`.
pub struct Plan {
    pub client: Arc<ShardedClient>,
    pub keys: Vec<Key>,
    /// Set by SIGTERM/SIGINT: workers stop as at the deadline, and the read-back check still runs,
    /// so a load pod that is deleted reports its verdict in its log.
    pub stop: Arc<AtomicBool>,
    pub write_ratio: f64,
    pub workers: usize,
    /// Written into every value, so values of different runs never match.
    pub run_id: u32,
    /// Requests sent so far, for the progress bar.
    pub requests: AtomicU64,
    /// The operations recorded, with `--history`.
    pub history: Option<History>,
    /// The keys every worker shares, with `--hot-keys`.
    pub hot: Vec<Key>,
    /// Fraction of hot-key writes that are compare-and-sets.
    pub cas_ratio: f64,
    /// Values are padded to this length (`--value-bytes`).
    pub value_bytes: usize,
    /// Per shard, the longest time without an acknowledged write.
    pub gaps: WriteGaps,
}

/// The run's keys, `PREFIX0` to `PREFIX{N-1}`; a prefix that makes no valid key is a usage error.
pub fn keys(args: &LoadArgs) -> Result<Vec<Key>, CliError> {
    named(args, "", args.keys)
}

/// The hot keys, `PREFIXhot-0` to `PREFIXhot-{N-1}`.
pub fn hot_keys(args: &LoadArgs) -> Result<Vec<Key>, CliError> {
    named(args, "hot-", args.hot_keys)
}

fn named(args: &LoadArgs, infix: &str, count: u32) -> Result<Vec<Key>, CliError> {
    (0..count)
        .map(|i| Key::new(format!("{}{infix}{i}", args.prefix)))
        .collect::<Result<_, _>>()
        .map_err(|e| CliError::Usage(format!("--prefix {:?}: {e}", args.prefix)))
}

impl Plan {
    /// The plan of `args` over `client`; from now on a signal stops the run.
    pub fn new(args: &LoadArgs, client: Arc<ShardedClient>, keys: Vec<Key>, hot: Vec<Key>) -> Self {
        Plan {
            client,
            keys,
            stop: stop_on_signal(),
            write_ratio: args.write_ratio,
            workers: args.concurrency as usize,
            run_id: rand::random(),
            requests: AtomicU64::new(0),
            history: args.history.as_ref().map(|_| History::default()),
            hot,
            cas_ratio: args.cas_ratio,
            value_bytes: args.value_bytes as usize,
            gaps: WriteGaps::new(std::time::Instant::now()),
        }
    }

    /// The value written for `tag` (unique per write): the tag, padded with `.` to
    /// `--value-bytes`, so the read-back still tells every write apart.
    pub fn value(&self, tag: String) -> String {
        pad(tag, self.value_bytes)
    }
}

fn pad(mut tag: String, len: usize) -> String {
    if tag.len() < len {
        let missing = len - tag.len();
        tag.extend(std::iter::repeat_n('.', missing));
    }
    tag
}

/// A flag raised by the first SIGTERM or SIGINT.
fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let raised = stop.clone();
    tokio::spawn(async move {
        kvclient::shutdown::signal().await;
        raised.store(true, Ordering::Relaxed);
    });
    stop
}

#[cfg(test)]
mod tests {
    use super::pad;

    #[test]
    fn a_value_is_padded_to_the_asked_length_and_keeps_its_tag() {
        assert_eq!(pad("7:1:2".to_owned(), 0), "7:1:2");
        assert_eq!(pad("7:1:2".to_owned(), 3), "7:1:2");
        let padded = pad("7:1:2".to_owned(), 64);
        assert_eq!(padded.len(), 64);
        assert!(padded.starts_with("7:1:2."));
        assert_ne!(padded, pad("7:1:3".to_owned(), 64));
    }
}
