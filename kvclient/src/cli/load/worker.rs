//! One worker: reads of any key and writes of its own keys, one request at a time, until the
//! deadline or a stop signal; and what it measured.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;
use kvclient::{Error, Outcome};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::hot::{self, LastRead};
use super::keylog::{KeyLog, read_text};
use super::plan::Plan;
use crate::cli::error::CliError;
use kvclient::history::{Op, Outcome as Recorded};

/// What one worker measured, and the logs of the keys it wrote.
pub struct WorkerResult {
    pub histogram: Histogram<u64>,
    pub gets: u64,
    pub puts: u64,
    pub errors: BTreeMap<char, u64>,
    pub logs: HashMap<usize, KeyLog>,
    pub stale_reads: u64,
    pub unknown_outcome_writes: u64,
}

/// An empty latency histogram: microseconds, 1 µs to 1 h, 3 significant digits.
pub fn new_histogram() -> Result<Histogram<u64>, CliError> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .map_err(|e| CliError::Failed(format!("histogram: {e}")))
}

/// Worker `w` of the plan, starting from the key logs `logs` (the prefill's).
pub async fn worker(
    w: usize,
    plan: Arc<Plan>,
    deadline: Instant,
    logs: HashMap<usize, KeyLog>,
) -> Result<WorkerResult, CliError> {
    let mut rng = StdRng::from_os_rng();
    let owned: Vec<usize> = (w..plan.keys.len()).step_by(plan.workers).collect();
    let mut result = WorkerResult::new(logs)?;
    let mut seq: u64 = 0;
    let mut last_read = LastRead::new();
    while Instant::now() < deadline && !plan.stop.load(Ordering::Relaxed) {
        let write = !owned.is_empty() && rng.random_bool(plan.write_ratio);
        let began = Instant::now();
        if let (Some(history), false) = (&plan.history, plan.hot.is_empty()) {
            seq += 1;
            let value = format!("{}:{w}:{seq}", plan.run_id);
            let (wrote, error) =
                hot::operate(&plan, history, w, value, &mut rng, &mut last_read).await;
            result.hot_counted(wrote, error.as_ref());
        } else if write {
            let idx = owned[rng.random_range(0..owned.len())];
            seq += 1;
            result
                .write(
                    &plan,
                    w,
                    idx,
                    plan.value(format!("{}:{w}:{seq}", plan.run_id)),
                )
                .await;
        } else {
            result
                .read(&plan, w, rng.random_range(0..plan.keys.len()))
                .await;
        }
        let micros = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
        result.histogram.saturating_record(micros.max(1));
        plan.requests.fetch_add(1, Ordering::Relaxed);
    }
    Ok(result)
}

impl WorkerResult {
    fn new(logs: HashMap<usize, KeyLog>) -> Result<Self, CliError> {
        Ok(WorkerResult {
            histogram: new_histogram()?,
            gets: 0,
            puts: 0,
            errors: BTreeMap::new(),
            logs,
            stale_reads: 0,
            unknown_outcome_writes: 0,
        })
    }

    /// Counts an operation on a hot key (see [`hot`]).
    fn hot_counted(&mut self, wrote: bool, error: Option<&Error>) {
        if wrote {
            self.puts += 1;
        } else {
            self.gets += 1;
        }
        if let Some(e) = error {
            if wrote && e.outcome_unknown() {
                self.unknown_outcome_writes += 1;
            }
            self.count_error(e);
        }
    }

    /// Writes `value` to key `idx` and logs what the key may now hold.
    async fn write(&mut self, plan: &Plan, w: usize, idx: usize, value: String) {
        let call = plan.history.as_ref().map(|h| h.now());
        let outcome = plan.client.put(&plan.keys[idx], value.clone()).await;
        if let (Some(history), Some(call)) = (&plan.history, call) {
            let op = Op::Put {
                value: value.clone(),
            };
            history.record(w, &plan.keys[idx], op, call, Recorded::of(&outcome), None);
        }
        self.puts += 1;
        let log = self.logs.entry(idx).or_default();
        match outcome {
            Ok(_) => {
                log.acknowledged(value);
                plan.gaps
                    .acknowledged(plan.client.shard_of(&plan.keys[idx]));
            }
            Err(e) => {
                // A 4xx refusal applied nothing; anything else may have been applied.
                if !e.http_status().is_some_and(|s| (400..500).contains(&s)) {
                    log.maybe_applied(value);
                }
                if e.outcome_unknown() {
                    self.unknown_outcome_writes += 1;
                }
                self.count_error(&e);
            }
        }
    }

    /// Reads key `idx`; a key this worker writes must hold a value its log accepts.
    async fn read(&mut self, plan: &Plan, w: usize, idx: usize) {
        let call = plan.history.as_ref().map(|h| h.now());
        let outcome = plan.client.get(&plan.keys[idx]).await;
        if let (Some(history), Some(call)) = (&plan.history, call) {
            let found = outcome.as_ref().ok().and_then(|v| read_text(v.clone()));
            history.record(
                w,
                &plan.keys[idx],
                Op::Get,
                call,
                Recorded::of(&outcome),
                found,
            );
        }
        self.gets += 1;
        match outcome {
            Ok(found) => {
                let value = read_text(found);
                if let Some(log) = self.logs.get(&idx)
                    && !log.accepts(value.as_deref())
                {
                    self.stale_reads += 1;
                }
            }
            Err(e) => self.count_error(&e),
        }
    }

    fn count_error(&mut self, e: &Error) {
        *self
            .errors
            .entry(Outcome::from_error(e).letter())
            .or_default() += 1;
    }
}
