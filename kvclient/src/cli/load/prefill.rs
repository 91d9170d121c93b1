//! `--prefill`: every key written once before the timed phase, so reads find values.

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use kvclient::Outcome;

use super::keylog::KeyLog;
use super::plan::Plan;
use crate::cli::error::CliError;

/// Writes every key once; answers each worker's key logs, or fails if any write failed.
pub async fn run(plan: &Plan) -> Result<Vec<HashMap<usize, KeyLog>>, CliError> {
    let mut initial: Vec<HashMap<usize, KeyLog>> = vec![HashMap::new(); plan.workers];
    let mut errors = BTreeMap::new();
    for (idx, log, error) in write_all(plan).await {
        if let Some(letter) = error {
            *errors.entry(letter.to_string()).or_insert(0u64) += 1;
        }
        if let Some(logs) = initial.get_mut(idx % plan.workers) {
            logs.insert(idx, log);
        }
    }
    if !errors.is_empty() {
        return Err(CliError::Failed(format!(
            "prefill failed for some keys: {errors:?}"
        )));
    }
    Ok(initial)
}

/// One write per key, `workers` at a time: each key's log, and the book's letter of a failure.
async fn write_all(plan: &Plan) -> Vec<(usize, KeyLog, Option<char>)> {
    futures::stream::iter(0..plan.keys.len())
        .map(|idx| async move {
            let value = plan.value(format!("{}:prefill", plan.run_id));
            let mut log = KeyLog::default();
            match plan.client.put(&plan.keys[idx], value.clone()).await {
                Ok(_) => {
                    log.acknowledged(value);
                    (idx, log, None)
                }
                Err(e) => {
                    log.maybe_applied(value);
                    (idx, log, Some(Outcome::from_error(&e).letter()))
                }
            }
        })
        .buffer_unordered(plan.workers.max(1))
        .collect()
        .await
}
