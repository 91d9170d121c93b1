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

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use kvclient::{Outcome, ShardedClient};
use kvproto::Key;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::time::Instant;

use super::args::LoadArgs;
use super::error::CliError;
use super::target::sharded;

/// What one run measured; printed as text or JSON (`--json`).
#[derive(Debug, Default, Serialize)]
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
    pub errors_by_letter: BTreeMap<String, u64>,
    pub verify: Verify,
}

/// The read-back at the end.
#[derive(Debug, Default, Serialize)]
pub struct Verify {
    pub keys_checked: u64,
    pub lost: u64,
    pub wrong: u64,
    pub unreadable: u64,
    pub stale_reads: u64,
}

impl Verify {
    fn failures(&self) -> u64 {
        self.lost + self.wrong + self.unreadable + self.stale_reads
    }
}

/// Values a key may hold: the last acknowledged one, or one written after it that failed.
#[derive(Debug, Default, Clone)]
struct KeyLog {
    acked: Option<String>,
    maybe: Vec<String>,
}

impl KeyLog {
    fn accepts(&self, value: Option<&str>) -> bool {
        match value {
            None => self.acked.is_none(),
            Some(v) => self.acked.as_deref() == Some(v) || self.maybe.iter().any(|m| m == v),
        }
    }
}

struct WorkerResult {
    histogram: Histogram<u64>,
    gets: u64,
    puts: u64,
    errors: BTreeMap<char, u64>,
    logs: HashMap<usize, KeyLog>,
    stale_reads: u64,
}

struct Plan {
    client: Arc<ShardedClient>,
    keys: Arc<Vec<Key>>,
    deadline: Instant,
    /// Set by SIGTERM/SIGINT: workers stop as at the deadline, and the read-back check still runs,
    /// so a load pod that is deleted reports its verdict in its log.
    stop: Arc<std::sync::atomic::AtomicBool>,
    write_ratio: f64,
    workers: usize,
    run_id: u32,
    requests: Arc<AtomicU64>,
}

pub async fn run(args: &LoadArgs) -> Result<(), CliError> {
    let keys: Vec<Key> = (0..args.keys)
        .map(|i| Key::new(format!("{}{i}", args.prefix)))
        .collect::<Result<_, _>>()
        .map_err(|e| CliError::Usage(format!("--prefix {:?}: {e}", args.prefix)))?;
    let client = Arc::new(sharded(&args.target).await?);
    let requests = Arc::new(AtomicU64::new(0));
    let plan = Plan {
        client: client.clone(),
        keys: Arc::new(keys),
        deadline: Instant::now() + args.duration,
        stop: stop_on_signal(),
        write_ratio: args.write_ratio,
        workers: args.concurrency as usize,
        run_id: rand::random(),
        requests: requests.clone(),
    };

    let mut initial: Vec<HashMap<usize, KeyLog>> = vec![HashMap::new(); plan.workers];
    let mut prefill_errors = BTreeMap::new();
    if args.prefill {
        for (idx, log, error) in prefill(&plan).await {
            if let Some(letter) = error {
                *prefill_errors.entry(letter.to_string()).or_insert(0u64) += 1;
            }
            if let Some(logs) = initial.get_mut(idx % plan.workers) {
                logs.insert(idx, log);
            }
        }
        if !prefill_errors.is_empty() {
            return Err(CliError::Failed(format!(
                "prefill failed for some keys: {prefill_errors:?}"
            )));
        }
    }

    let bar = progress_bar(args.duration);
    let start = Instant::now();
    let plan = Arc::new(Plan {
        deadline: start + args.duration,
        ..plan
    });
    let mut workers = tokio::task::JoinSet::new();
    for (w, logs) in initial.into_iter().enumerate() {
        workers.spawn(worker(w, plan.clone(), logs));
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
                bar.set_message(format!("{} requests", requests.load(Ordering::Relaxed)));
            }
        }
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();

    let report = summarize(args, elapsed, results, &plan).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &report)
            .map_err(|e| CliError::Failed(format!("cannot write JSON: {e}")))?;
        std::io::Write::write_all(&mut out, b"\n")?;
    } else {
        std::io::Write::write_all(&mut out, render(&report).as_bytes())?;
    }
    std::io::Write::flush(&mut out)?;
    match report.verify.failures() {
        0 => Ok(()),
        _ => Err(CliError::Failed(format!(
            "verification failed: {} lost, {} wrong, {} unreadable, {} stale reads",
            report.verify.lost,
            report.verify.wrong,
            report.verify.unreadable,
            report.verify.stale_reads
        ))),
    }
}

/// A flag raised by the first SIGTERM or SIGINT.
fn stop_on_signal() -> Arc<std::sync::atomic::AtomicBool> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let raised = stop.clone();
    tokio::spawn(async move {
        kvclient::shutdown::signal().await;
        raised.store(true, Ordering::Relaxed);
    });
    stop
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

fn new_histogram() -> Result<Histogram<u64>, CliError> {
    // Microseconds, 1 µs to 1 h, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .map_err(|e| CliError::Failed(format!("histogram: {e}")))
}

/// Writes every key once, before the timed phase, so reads find values.
async fn prefill(plan: &Plan) -> Vec<(usize, KeyLog, Option<char>)> {
    futures::stream::iter(0..plan.keys.len())
        .map(|idx| async move {
            let value = format!("{}:prefill", plan.run_id);
            match plan.client.put(&plan.keys[idx], value.clone()).await {
                Ok(_) => (
                    idx,
                    KeyLog {
                        acked: Some(value),
                        maybe: Vec::new(),
                    },
                    None,
                ),
                Err(e) => (
                    idx,
                    KeyLog {
                        acked: None,
                        maybe: vec![value],
                    },
                    Some(Outcome::from_error(&e).letter()),
                ),
            }
        })
        .buffer_unordered(plan.workers.max(1))
        .collect()
        .await
}

async fn worker(
    w: usize,
    plan: Arc<Plan>,
    logs: HashMap<usize, KeyLog>,
) -> Result<WorkerResult, CliError> {
    let mut rng = StdRng::from_os_rng();
    let n = plan.keys.len();
    let owned: Vec<usize> = (w..n).step_by(plan.workers).collect();
    let mut result = WorkerResult {
        histogram: new_histogram()?,
        gets: 0,
        puts: 0,
        errors: BTreeMap::new(),
        logs,
        stale_reads: 0,
    };
    let mut seq: u64 = 0;
    while Instant::now() < plan.deadline && !plan.stop.load(Ordering::Relaxed) {
        let write = !owned.is_empty() && rng.random_bool(plan.write_ratio);
        let began = Instant::now();
        if write {
            let idx = owned[rng.random_range(0..owned.len())];
            seq += 1;
            let value = format!("{}:{w}:{seq}", plan.run_id);
            let outcome = plan.client.put(&plan.keys[idx], value.clone()).await;
            result.puts += 1;
            let log = result.logs.entry(idx).or_default();
            match outcome {
                Ok(_) => {
                    log.acked = Some(value);
                    log.maybe.clear();
                }
                Err(e) => {
                    // A 4xx refusal applied nothing; anything else may have been applied.
                    if !e.http_status().is_some_and(|s| (400..500).contains(&s)) {
                        log.maybe.push(value);
                    }
                    *result
                        .errors
                        .entry(Outcome::from_error(&e).letter())
                        .or_default() += 1;
                }
            }
        } else {
            let idx = rng.random_range(0..n);
            let outcome = plan.client.get(&plan.keys[idx]).await;
            result.gets += 1;
            match outcome {
                Ok(found) => {
                    let value = found.map(|v| String::from_utf8_lossy(&v.value).into_owned());
                    if let Some(log) = result.logs.get(&idx)
                        && !log.accepts(value.as_deref())
                    {
                        result.stale_reads += 1;
                    }
                }
                Err(e) => {
                    *result
                        .errors
                        .entry(Outcome::from_error(&e).letter())
                        .or_default() += 1;
                }
            }
        }
        let micros = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
        result.histogram.saturating_record(micros.max(1));
        plan.requests.fetch_add(1, Ordering::Relaxed);
    }
    Ok(result)
}

async fn summarize(
    args: &LoadArgs,
    elapsed: Duration,
    results: Vec<WorkerResult>,
    plan: &Plan,
) -> Result<LoadReport, CliError> {
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
        report.gets += r.gets;
        report.puts += r.puts;
        report.verify.stale_reads += r.stale_reads;
        for (letter, n) in r.errors {
            report.errors += n;
            *report
                .errors_by_letter
                .entry(letter.to_string())
                .or_default() += n;
        }
        logs.extend(r.logs);
    }
    report.requests = report.gets + report.puts;
    report.requests_per_s = report.requests as f64 / elapsed.as_secs_f64().max(1e-9);
    let ms = |micros: u64| micros as f64 / 1000.0;
    if report.requests > 0 {
        report.p50_ms = ms(histogram.value_at_quantile(0.50));
        report.p99_ms = ms(histogram.value_at_quantile(0.99));
        report.max_ms = ms(histogram.max());
    }

    let checks = futures::stream::iter(logs)
        .map(|(idx, log)| {
            let client = plan.client.clone();
            let key = plan.keys[idx].clone();
            async move {
                let read = client.get(&key).await;
                (key, log, read)
            }
        })
        .buffer_unordered(plan.workers.max(1));
    let outcomes: Vec<_> = checks.collect().await;
    for (key, log, read) in outcomes {
        report.verify.keys_checked += 1;
        match read {
            Ok(found) => {
                let value = found.map(|v| String::from_utf8_lossy(&v.value).into_owned());
                if !log.accepts(value.as_deref()) {
                    match value {
                        None => report.verify.lost += 1,
                        Some(_) => report.verify.wrong += 1,
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%key, error = %e, "cannot read back");
                report.verify.unreadable += 1;
            }
        }
    }
    Ok(report)
}

/// The human-readable report.
pub fn render(r: &LoadReport) -> String {
    let mut text = format!(
        "load: {} requests in {:.1} s ({:.1} req/s): {} gets, {} puts, {} errors\n\
         latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
        r.requests,
        r.duration_s,
        r.requests_per_s,
        r.gets,
        r.puts,
        r.errors,
        r.p50_ms,
        r.p99_ms,
        r.max_ms
    );
    if !r.errors_by_letter.is_empty() {
        let parts: Vec<String> = r
            .errors_by_letter
            .iter()
            .map(|(l, n)| format!("{l}={n}"))
            .collect();
        text.push_str(&format!("errors: {}\n", parts.join(" ")));
    }
    text.push_str(&format!(
        "verify: {} keys read back, {} lost, {} wrong, {} unreadable, {} stale reads\n",
        r.verify.keys_checked,
        r.verify.lost,
        r.verify.wrong,
        r.verify.unreadable,
        r.verify.stale_reads
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_accepts_its_last_ack_or_a_later_unacknowledged_write() {
        let mut log = KeyLog::default();
        assert!(log.accepts(None));
        log.maybe.push("1".into());
        assert!(log.accepts(None) && log.accepts(Some("1")));
        log.acked = Some("2".into());
        log.maybe.clear();
        assert!(log.accepts(Some("2")));
        assert!(!log.accepts(None));
        assert!(!log.accepts(Some("1")));
    }

    #[test]
    fn the_report_names_every_figure() {
        let report = LoadReport {
            requests: 10,
            errors: 1,
            errors_by_letter: [(".".to_string(), 1)].into(),
            ..LoadReport::default()
        };
        let text = render(&report);
        for word in ["req/s", "p50", "p99", "errors: .=1", "lost", "wrong"] {
            assert!(text.contains(word), "{word} missing in {text}");
        }
    }
}
