//! `kvclient load`: concurrent reads and writes for a fixed time, latency percentiles, then a
//! read-back of every key written.
//!
//! Each worker writes only its own keys (`index % concurrency == worker`), one request at a
//! time, so the order of its acknowledgements is the order the server applied them: the last
//! acknowledged value of a key is known exactly. A failed write may still have been applied
//! (e.g. a timeout after the server stored it), so its value is also accepted, until the next
//! acknowledged write. At the end every written key must hold an accepted value: otherwise it
//! is counted `lost` (absent) or `wrong` (another value). Reads of a worker's own keys during
//! the run are checked the same way (`stale_reads`).
//!
//! With `--history FILE` every operation of the timed phase is recorded for the
//! linearizability checker (`tests/linearizability`); with `--hot-keys N` the workers share N
//! keys instead, racing reads, overwrites and compare-and-sets on them, and the history ends
//! with a read of each (the read-back above covers only keys a single worker owns).
//!
//! # Layout (each uses only what is listed before it)
//! - [`keylog`]: the values a key may hold.
//! - [`gaps`]: per shard, the longest time without an acknowledged write.
//! - [`plan`]: what every worker shares (client, keys, stop flag, request counter, history).
//! - [`hot`]: one operation on a shared hot key, recorded.
//! - [`prefill`]: one write of every key before the timed phase.
//! - [`worker`]: one worker's loop and what it measured.
//! - [`timed`]: the timed phase: every worker, and a progress bar on a terminal.
//! - [`summary`]: the workers' figures merged into the report.
//! - [`verify`]: the read-back of every written key.
//! - [`print`]: the report as text or JSON.

mod gaps;
mod hot;
mod keylog;
mod plan;
mod prefill;
mod print;
mod summary;
mod timed;
mod verify;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;

use kvclient::load_report::Verify;

use super::args::LoadArgs;
use super::error::CliError;
use super::target::sharded;
use plan::Plan;

/// Runs the load `args` describe, prints its report, and fails if a written key was lost.
pub async fn run(args: &LoadArgs) -> Result<(), CliError> {
    let keys = plan::keys(args)?;
    let hot = plan::hot_keys(args)?;
    let client = Arc::new(sharded(&args.target).await?);
    let plan = Arc::new(Plan::new(args, client, keys, hot));
    let initial = if args.prefill {
        prefill::run(&plan).await?
    } else {
        vec![HashMap::new(); plan.workers]
    };
    let retries_before = plan.client.stats().retries();
    let (results, elapsed) = timed::run(&plan, initial, args.duration).await?;
    let (mut report, logs) = summary::summarize(args, elapsed, results)?;
    summary::add_client_figures(
        &mut report,
        &plan,
        std::time::Instant::now(),
        retries_before,
    );
    verify::read_back(&plan, logs, &mut report.verify).await;
    if let (Some(history), Some(path)) = (&plan.history, &args.history) {
        hot::read_back(&plan, history).await;
        history
            .write_to(path)
            .map_err(|e| CliError::Failed(format!("--history {}: {e}", path.display())))?;
        eprintln!(
            "history: {} operations in {}",
            history.len(),
            path.display()
        );
    }
    print::print(&report, args.json)?;
    verdict(&report.verify)
}

/// Exit 1 when any key or read did not hold an accepted value.
fn verdict(verify: &Verify) -> Result<(), CliError> {
    match verify.failures() {
        0 => Ok(()),
        _ => Err(CliError::Failed(format!(
            "verification failed: {} lost, {} wrong, {} unreadable, {} stale reads",
            verify.lost, verify.wrong, verify.unreadable, verify.stale_reads
        ))),
    }
}
