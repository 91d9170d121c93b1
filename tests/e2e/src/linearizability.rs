//! Client histories and the Porcupine checker of `tests/linearizability`, as `make test` and
//! `kvclient/tests/history.rs` use it: built with the Go toolchain the local cluster installs,
//! run on a history of JSON lines (`kvclient load --history`), exit 0 when linearizable.
//!
//! A load pod cannot hand a file back (its image has no shell and its root is read-only), so it
//! writes its history to `/dev/stdout`; [`extract`] takes the history's lines out of the log.
//! Checked histories are kept under `$KVSTORE_CACHE/e2e/linearizability/` (with Porcupine's
//! visualization when one fails).

use std::path::{Path, PathBuf};
use std::process::Command;

use kvproto::topology::Topology;

use crate::{Error, Result, host};

/// How long the checker may search before it gives up (and fails).
const CHECK_TIMEOUT: &str = "120s";

/// The lines of a pod log that are history operations (`{"client":..,"op":..,"call":..}`), in
/// log order; the load's report and other lines are left out. The load announces how many it
/// wrote (`history: N operations in FILE`): a log that lost some (e.g. to log rotation) fails
/// here rather than as a history the checker would wrongly refuse.
pub fn extract(log: &str) -> Result<String> {
    let mut out = String::new();
    let mut found = 0usize;
    let mut announced = None;
    for line in log.lines() {
        if let Some(rest) = line.trim().strip_prefix("history: ") {
            announced = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<usize>().ok());
            continue;
        }
        let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(line) else {
            continue;
        };
        if ["client", "op", "key", "call", "return", "outcome"]
            .iter()
            .all(|f| fields.contains_key(*f))
        {
            out.push_str(line.trim());
            out.push('\n');
            found += 1;
        }
    }
    match announced {
        Some(n) if n == found => Ok(out),
        other => Err(Error::Check(format!(
            "the load announced {other:?} history operations, its log holds {found}"
        ))),
    }
}

/// A key prefix `BASE<n>-` whose `count` hot keys (`PREFIXhot-i`, kvclient's names) fall on
/// every shard of `topology`, so that a fault on any shard hits some of them.
pub fn hot_prefix(topology: &Topology, base: &str, count: u32) -> Result<String> {
    for n in 0..1000 {
        let prefix = format!("{base}{n}-");
        let mut owners: Vec<u32> = (0..count)
            .map(|i| topology.owner(format!("{prefix}hot-{i}").as_bytes()))
            .collect();
        owners.sort_unstable();
        owners.dedup();
        if owners.len() as u64 == u64::from(topology.shards) {
            return Ok(prefix);
        }
    }
    Err(Error::Check(format!(
        "no prefix {base}<n>- puts {count} hot keys on all {} shards",
        topology.shards
    )))
}

fn cache_dir() -> PathBuf {
    std::env::var_os("KVSTORE_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kvstore-operator"))
        })
        .unwrap_or_else(|| PathBuf::from("/tmp/kvstore-operator"))
}

/// Builds the checker (`tests/linearizability/build.sh`) and answers its path.
pub fn build_checker() -> Result<PathBuf> {
    let out = cache_dir().join("e2e/linearizability/checker");
    let built = Command::new(host::repo_root().join("tests/linearizability/build.sh"))
        .arg(&out)
        .output()?;
    if built.status.success() {
        Ok(out)
    } else {
        Err(Error::Check(format!(
            "building tests/linearizability failed ({}): {}",
            built.status,
            String::from_utf8_lossy(&built.stderr).trim()
        )))
    }
}

/// What the checker said of a history.
#[derive(Debug)]
pub enum Verdict {
    /// The checker's verdict line.
    Linearizable(String),
    /// Why not, naming the kept history and its visualization.
    NotLinearizable(String),
    /// Neither verdict within the timeout: a failed check all the same.
    Undecided(String),
}

impl Verdict {
    /// The word a case's summary line gives.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Linearizable(_) => "linearizable",
            Verdict::NotLinearizable(_) => "NOT-linearizable",
            Verdict::Undecided(_) => "undecided",
        }
    }

    /// The verdict line when linearizable, else an error saying why not.
    pub fn into_result(self) -> Result<String> {
        match self {
            Verdict::Linearizable(line) => Ok(line),
            Verdict::NotLinearizable(why) | Verdict::Undecided(why) => Err(Error::Check(why)),
        }
    }
}

/// Writes `history` to `NAME.jsonl` and checks it. An empty history is an error: a case that
/// recorded nothing has checked nothing; so is a checker that could not read it.
pub fn check(checker: &Path, name: &str, history: &str) -> Result<Verdict> {
    let ops = history.lines().count();
    if ops == 0 {
        return Err(Error::Check(format!(
            "history {name} is empty: did the load print it (--history /dev/stdout)?"
        )));
    }
    let dir = cache_dir().join("e2e/linearizability");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("{name}.jsonl"));
    let html = dir.join(format!("{name}.html"));
    std::fs::write(&file, history)?;
    let out = Command::new(checker)
        .args(["-timeout", CHECK_TIMEOUT, "-html"])
        .arg(&html)
        .arg(&file)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let kept = format!("kept {} and {}", file.display(), html.display());
    match out.status.code() {
        Some(0) => Ok(Verdict::Linearizable(stdout)),
        Some(1) => Ok(Verdict::NotLinearizable(format!(
            "history {name} ({ops} operations) is NOT linearizable: {stdout}; {kept}"
        ))),
        Some(3) => Ok(Verdict::Undecided(format!(
            "history {name} ({ops} operations) was not decided in {CHECK_TIMEOUT} (neither \
             verdict; a failed check all the same): {stdout}; {kept}"
        ))),
        other => Err(Error::Check(format!(
            "the checker could not read {} ({other:?}): {stdout} {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_history_lines_are_extracted() {
        let log = concat!(
            "{\"client\":0,\"op\":\"put\",\"value\":\"1:0:1\",\"key\":\"h-hot-0\",\"call\":1,\"return\":2,\"outcome\":\"ok\"}\n",
            "history: 1 operations in /dev/stdout\n",
            "{\"duration_s\":1.0,\"requests\":1}\n",
            "not json\n",
        );
        let history = extract(log).unwrap_or_default();
        assert_eq!(history.lines().count(), 1);
        assert!(history.starts_with("{\"client\":0,\"op\":\"put\""));
        // A log that lost a line, or never said how many it wrote, is refused.
        assert!(extract(&log.replace("history: 1 ", "history: 2 ")).is_err());
        assert!(extract(&log.replace("history: 1 operations in /dev/stdout\n", "")).is_err());
    }

    #[test]
    fn the_hot_prefix_covers_every_shard() {
        let topology = Topology::stable(
            1,
            kvproto::Sharding::default(),
            (0..3).map(|i| format!("http://s-{i}")).collect(),
        );
        let prefix = hot_prefix(&topology, "h1-", 6).unwrap_or_default();
        let mut owners: Vec<u32> = (0..6)
            .map(|i| topology.owner(format!("{prefix}hot-{i}").as_bytes()))
            .collect();
        owners.sort_unstable();
        owners.dedup();
        assert_eq!(owners, vec![0, 1, 2]);
    }
}
