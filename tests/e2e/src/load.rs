//! The load generator as a client pod (`kvclient load --kvstore NAME`, following the topology):
//! starting it, knowing when its prefill is done, stopping it with SIGTERM (it then reads back
//! every acknowledged write), and reading its JSON report out of the pod log.

use std::time::Duration;

pub use kvclient::load_report::LoadReport;

use crate::namespace::TestNamespace;
use crate::pods::{self, LogCapture};
use crate::{Error, Result, check, cluster, shard_http, wait};

/// Key prefix of the load's keys (kvclient's default).
pub const PREFIX: &str = "load-";

/// How to run the load.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub keys: u32,
    pub concurrency: u32,
    pub write_ratio: f64,
}

/// A running load pod.
pub struct Load {
    pod: String,
    spec: LoadSpec,
    prefix: String,
    capture: LogCapture,
}

/// Starts the load pod `name` against `store` (a ServiceAccount that may read KVStores is
/// `account`). It runs until [`Load::stop`]; the prefill writes every key once first.
pub async fn start(
    ns: &TestNamespace,
    name: &str,
    store: &str,
    account: &str,
    spec: LoadSpec,
) -> Result<Load> {
    start_with(ns, name, store, account, spec, PREFIX, &[]).await
}

/// Like [`start`], with the keys under `prefix` (so that runs on one store are verified apart)
/// and `extra` arguments after the usual ones (e.g. `--retry-within 5s`, or `--hot-keys 6
/// --history /dev/stdout`; a `--timeout` among them replaces the default 5 s).
pub async fn start_with(
    ns: &TestNamespace,
    name: &str,
    store: &str,
    account: &str,
    spec: LoadSpec,
    prefix: &str,
    extra: &[&str],
) -> Result<Load> {
    let keys = spec.keys.to_string();
    let concurrency = spec.concurrency.to_string();
    let ratio = spec.write_ratio.to_string();
    let args = [
        "load",
        "--kvstore",
        store,
        "--keys",
        &keys,
        "--concurrency",
        &concurrency,
        "--write-ratio",
        &ratio,
        "--duration",
        "2h",
        "--prefix",
        prefix,
        "--prefill",
        "--json",
    ];
    // A caller's own `--timeout` (e.g. a per-attempt deadline shorter than a retry budget)
    // replaces this default: clap refuses the flag twice.
    let timeout: &[&str] = if extra.contains(&"--timeout") {
        &[]
    } else {
        &["--timeout", "5"]
    };
    let args: Vec<&str> = args.iter().chain(timeout).chain(extra).copied().collect();
    let pod = pods::client_pod(name, &cluster::image("kvclient"), &args, Some(account))?;
    pods::start(ns, &pod).await?;
    let capture = LogCapture::start(ns, name).await?;
    Ok(Load {
        pod: name.to_owned(),
        spec,
        prefix: prefix.to_owned(),
        capture,
    })
}

impl Load {
    /// Waits until every key has been written once (the prefill is over; a fault before that
    /// would fail the prefill, which the load treats as fatal).
    pub async fn wait_prefilled(&self, ns: &TestNamespace, store: &str) -> Result<()> {
        let want = self.spec.keys as usize;
        let prefix = self.prefix.as_str();
        wait::until(
            &format!("the load's prefill of {want} keys"),
            Duration::from_secs(180),
            Duration::from_millis(500),
            || async move {
                let n = shard_http::total_keys(ns, store, prefix)
                    .await
                    .map_err(|e| e.to_string())?;
                if n >= want {
                    Ok(Some(()))
                } else {
                    Err(format!("{n} keys stored"))
                }
            },
        )
        .await
    }

    /// Follows the pod's log again: a kubelet restart ends the log stream. The load prints only
    /// its final report, so nothing is missed.
    pub async fn reattach(&mut self, ns: &TestNamespace) -> Result<()> {
        let pod = self.pod.clone();
        self.capture = wait::until(
            &format!("the log of pod {pod} (kubelet back)"),
            Duration::from_secs(120),
            Duration::from_secs(1),
            || {
                let pod = pod.clone();
                async move {
                    LogCapture::start(ns, &pod)
                        .await
                        .map(Some)
                        .map_err(|e| e.to_string())
                }
            },
        )
        .await?;
        Ok(())
    }

    /// SIGTERM: the load stops, reads back every acknowledged write and prints its report.
    pub async fn stop(self, ns: &TestNamespace) -> Result<LoadReport> {
        self.stop_with_log(ns).await.map(|(report, _)| report)
    }

    /// [`Load::stop`], also answering the pod's whole log (e.g. a history it printed).
    pub async fn stop_with_log(self, ns: &TestNamespace) -> Result<(LoadReport, String)> {
        pods::stop(ns, &self.pod, 300).await?;
        let log = self.capture.finish(Duration::from_secs(300)).await?;
        let line = log
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .ok_or_else(|| Error::Check(format!("the load printed no report:\n{log}")))?;
        let report: LoadReport = serde_json::from_str(line)?;
        eprintln!("load report ({}): {line}", self.pod);
        check_nothing_lost(&report, u64::from(self.spec.keys))?;
        Ok((report, log))
    }
}

/// No acknowledged write lost or changed, every key read back, and the load did write.
/// Failed requests are allowed: a fault may refuse writes, it may not lose acknowledged ones.
pub fn check_nothing_lost(report: &LoadReport, keys: u64) -> Result<()> {
    let v = &report.verify;
    check(
        v.lost == 0 && v.wrong == 0 && v.unreadable == 0 && v.stale_reads == 0,
        || format!("acknowledged writes were lost or changed: {report:?}"),
    )?;
    check(v.keys_checked >= keys, || {
        format!(
            "only {} of {keys} keys were read back: {report:?}",
            v.keys_checked
        )
    })?;
    check(report.puts > 0, || {
        format!("the load wrote nothing: {report:?}")
    })
}

/// One line for the suite's summary.
pub fn summary(report: &LoadReport, case: &str) -> String {
    let letters: Vec<String> = report
        .errors_by_letter
        .iter()
        .map(|(l, n)| format!("{l}={n}"))
        .collect();
    format!(
        "FAULTS {case}: requests={} ({} gets, {} puts) in {:.0}s ({:.0} req/s, p99 {:.1} ms); \
         errors={} [{}]; keys verified={} (last acknowledged value of each); lost={} wrong={} \
         unreadable={} stale_reads={}",
        report.requests,
        report.gets,
        report.puts,
        report.duration_s,
        report.requests_per_s,
        report.p99_ms,
        report.errors,
        letters.join(" "),
        report.verify.keys_checked,
        report.verify.lost,
        report.verify.wrong,
        report.verify.unreadable,
        report.verify.stale_reads,
    )
}
