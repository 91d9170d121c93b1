//! The timed phase: one task per worker until the deadline, with a progress bar when stderr
//! is a terminal.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;

use super::keylog::KeyLog;
use super::plan::Plan;
use super::worker::{WorkerResult, worker};
use crate::cli::error::CliError;

/// Runs one worker per entry of `initial` for `duration` (or until a signal); answers what each
/// measured and how long the phase took.
pub async fn run(
    plan: &Arc<Plan>,
    initial: Vec<HashMap<usize, KeyLog>>,
    duration: Duration,
) -> Result<(Vec<WorkerResult>, Duration), CliError> {
    let bar = progress_bar(duration);
    let start = Instant::now();
    plan.gaps.restart();
    let mut workers = tokio::task::JoinSet::new();
    for (w, logs) in initial.into_iter().enumerate() {
        workers.spawn(worker(w, plan.clone(), start + duration, logs));
    }
    let mut results = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            joined = workers.join_next() => match joined {
                Some(Ok(result)) => results.push(result?),
                Some(Err(e)) => return Err(CliError::Failed(format!("load worker failed: {e}"))),
                None => break,
            },
            _ = tick.tick() => {
                bar.set_position(u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX));
                bar.set_message(format!("{} requests", plan.requests.load(Ordering::Relaxed)));
            }
        }
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    Ok((results, elapsed))
}

fn progress_bar(duration: Duration) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
    if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {msg}") {
        bar.set_style(style);
    }
    bar
}
