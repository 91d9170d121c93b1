//! The workers' figures merged into one report: request counts, errors by letter, latency
//! percentiles.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kvclient::load_report::LoadReport;

use super::keylog::KeyLog;
use super::plan::Plan;
use super::worker::{WorkerResult, new_histogram};
use crate::cli::args::LoadArgs;
use crate::cli::error::CliError;

/// The report of the timed phase (its `verify` holds only the stale reads so far), and the logs
/// of every key written, for the read-back.
pub fn summarize(
    args: &LoadArgs,
    elapsed: Duration,
    results: Vec<WorkerResult>,
) -> Result<(LoadReport, HashMap<usize, KeyLog>), CliError> {
    let mut histogram = new_histogram()?;
    let mut report = LoadReport {
        duration_s: elapsed.as_secs_f64(),
        concurrency: args.concurrency,
        keys: args.keys,
        ..LoadReport::default()
    };
    let mut logs: HashMap<usize, KeyLog> = HashMap::new();
    for r in results {
        histogram
            .add(&r.histogram)
            .map_err(|e| CliError::Failed(format!("histogram: {e}")))?;
        add_counts(&mut report, &r);
        logs.extend(r.logs);
    }
    report.requests = report.gets + report.puts;
    report.requests_per_s = report.requests as f64 / elapsed.as_secs_f64().max(1e-9);
    set_latency(&mut report, &histogram);
    Ok((report, logs))
}

/// What the client itself counted in the timed phase: retries (beyond the `before` counted
/// until it began), and per shard the longest time without an acknowledged write, up to `end`.
pub fn add_client_figures(report: &mut LoadReport, plan: &Plan, end: Instant, before: u64) {
    report.retries = plan.client.stats().retries().saturating_sub(before);
    report.write_gap_ms_by_shard = plan
        .gaps
        .longest(end)
        .into_iter()
        .map(|(shard, gap)| (shard.to_string(), gap.as_secs_f64() * 1000.0))
        .collect();
    report.write_gap_max_ms = report
        .write_gap_ms_by_shard
        .values()
        .copied()
        .fold(0.0, f64::max);
}

fn add_counts(report: &mut LoadReport, r: &WorkerResult) {
    report.gets += r.gets;
    report.puts += r.puts;
    report.verify.stale_reads += r.stale_reads;
    report.unknown_outcome_writes += r.unknown_outcome_writes;
    for (letter, n) in &r.errors {
        report.errors += n;
        *report
            .errors_by_letter
            .entry(letter.to_string())
            .or_default() += n;
    }
}

/// p50, p99 and max in milliseconds; left at 0 when nothing was sent.
fn set_latency(report: &mut LoadReport, histogram: &Histogram<u64>) {
    let ms = |micros: u64| micros as f64 / 1000.0;
    if report.requests > 0 {
        report.p50_ms = ms(histogram.value_at_quantile(0.50));
        report.p99_ms = ms(histogram.value_at_quantile(0.99));
        report.max_ms = ms(histogram.max());
    }
}
