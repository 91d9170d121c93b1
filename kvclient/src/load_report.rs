//! The report of `kvclient load`, in the shape its `--json` prints: what one run measured and
//! what the read-back of every written key found. Public so that tests read the JSON back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What one run measured; printed as text or JSON (`--json`).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct LoadReport {
    pub duration_s: f64,
    pub concurrency: u32,
    pub keys: u32,
    pub requests: u64,
    pub gets: u64,
    pub puts: u64,
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
    /// Errors by the book's letter: `.` unreachable, `5` for 5xx, ...
    #[serde(default)]
    pub errors_by_letter: BTreeMap<String, u64>,
    /// Writes that failed without saying whether they were applied (timeout, broken connection,
    /// 504 `outcome_unknown`): not clean failures; the read-back accepts either value.
    #[serde(default)]
    pub unknown_outcome_writes: u64,
    /// Requests the client sent again (same server, or another copy of a replicated shard).
    #[serde(default)]
    pub retries: u64,
    /// Per shard (by ordinal), the longest time in milliseconds without an acknowledged write
    /// during the timed phase: after a fault on one shard, a bound on the time from the fault
    /// to its first acknowledged write again.
    #[serde(default)]
    pub write_gap_ms_by_shard: BTreeMap<String, f64>,
    /// The largest of `write_gap_ms_by_shard`.
    #[serde(default)]
    pub write_gap_max_ms: f64,
    pub verify: Verify,
}

/// The read-back at the end.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Verify {
    pub keys_checked: u64,
    pub lost: u64,
    pub wrong: u64,
    pub unreadable: u64,
    pub stale_reads: u64,
}

impl Verify {
    /// Keys or reads that did not hold an accepted value: the run failed if this is not 0.
    pub fn failures(&self) -> u64 {
        self.lost + self.wrong + self.unreadable + self.stale_reads
    }
}
