//! The read-back at the end: every key written must hold a value its log accepts.

use std::collections::HashMap;

use futures::StreamExt;
use kvclient::load_report::Verify;

use super::keylog::{KeyLog, read_text};
use super::plan::Plan;

/// Reads every logged key back, `workers` at a time, and counts into `verify` what is lost
/// (absent), wrong (another value) or unreadable.
pub async fn read_back(plan: &Plan, logs: HashMap<usize, KeyLog>, verify: &mut Verify) {
    let reads: Vec<_> = futures::stream::iter(logs)
        .map(|(idx, log)| {
            let client = plan.client.clone();
            let key = plan.keys[idx].clone();
            async move {
                let read = client.get(&key).await;
                (key, log, read)
            }
        })
        .buffer_unordered(plan.workers.max(1))
        .collect()
        .await;
    for (key, log, read) in reads {
        verify.keys_checked += 1;
        match read {
            Ok(found) => {
                let value = read_text(found);
                if !log.accepts(value.as_deref()) {
                    match value {
                        None => verify.lost += 1,
                        Some(_) => verify.wrong += 1,
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%key, error = %e, "cannot read back");
                verify.unreadable += 1;
            }
        }
    }
}
