//! The replication suites' shared harness (issue 14, docs/replication.md section 10): one
//! factor-3 store of 3 shards per test, and per case three client pods started before the fault
//! and judged after it: `kvclient load --kvstore` (its own keys, read back at the end), a history
//! client on a few hot keys (checked by Porcupine) and the topology-following screen.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kvproto::topology::Topology;

use crate::load::{self, Load, LoadReport, LoadSpec};
use crate::namespace::TestNamespace;
use crate::pods::LogCapture;
use crate::replicas::{self, Leader, RaftProbe, ShardRaft};
use crate::screen::rounds;
use crate::summary::record;
use crate::{Error, Result, check, cluster, host, linearizability, pods, shard_http, stores, wait};

pub const STORE: &str = "kv";
pub const SHARDS: u32 = 3;
pub const FACTOR: u32 = 3;
pub const LONG: Duration = Duration::from_secs(300);
/// Load before the fault, so it hits a store under way, and after recovery, so the recovered
/// shard also takes writes before the read-back.
pub const BEFORE_FAULT: Duration = Duration::from_secs(6);
pub const AFTER_RECOVERY: Duration = Duration::from_secs(6);
/// The client of cases 1 and 3: it may retry, for 5 s after each request's first attempt.
pub const RETRY_WITHIN: [&str; 2] = ["--retry-within", "5s"];
/// The client of case 0: one attempt per request, no retry of any kind.
pub const NO_RETRY: [&str; 2] = ["--retries", "0"];
/// The client of case 2: kvclient's default retries (a few attempts, moving to another copy),
/// what a user's client does (docs/replication.md section 10); no time budget.
pub const DEFAULT_RETRIES: [&str; 0] = [];
pub const HOT_KEYS: u32 = 6;
pub const KVSERVER: &str = operator::labels::KVSERVER_CONTAINER;

/// What every case shares.
pub struct Suite<'a> {
    pub ns: &'a TestNamespace,
    pub account: &'a str,
    pub probe: RaftProbe,
    pub checker: PathBuf,
}

/// The client pods of a case.
pub struct Running {
    pub case: u32,
    pub load: Load,
    pub history: Load,
    pub screen: LogCapture,
}

/// Starts the topology-following screen `screen-<case>` (a–z, a round a second) with the
/// client retry flags `retry`, and waits until it sees all 26 keys.
async fn start_screen(
    ns: &TestNamespace,
    account: &str,
    case: u32,
    retry: &[&str],
) -> Result<LogCapture> {
    let name = format!("screen-{case}");
    let mut args = vec!["--kvstore", STORE, "--interval", "1"];
    args.extend_from_slice(retry);
    let pod = pods::client_pod(&name, &cluster::image("kvclient"), &args, Some(account))?;
    pods::start(ns, &pod).await?;
    let capture = LogCapture::start(ns, &name).await?;
    pods::wait_for_log(
        ns,
        &name,
        "the screen to see 26 hits",
        Duration::from_secs(120),
        |log| rounds(log).iter().any(|r| r.hits == 26),
    )
    .await?;
    Ok(capture)
}

/// Stops the screen of `case`; answers its rounds from the first with 26 hits on, and those
/// that show anything but hits (`.` unreachable, a digit for an HTTP error, `m`/`w` a miss,
/// `x` a wrong value).
async fn stop_screen(
    ns: &TestNamespace,
    case: u32,
    screen: LogCapture,
) -> Result<(usize, Vec<String>)> {
    pods::stop(ns, &format!("screen-{case}"), 1).await?;
    let log = screen.finish(Duration::from_secs(60)).await?;
    let all = rounds(&log);
    let first_full = all.iter().position(|r| r.hits == 26).unwrap_or(all.len());
    let after = &all[first_full..];
    let bad = after
        .iter()
        .filter(|r| r.letters.chars().any(|c| c != 'h'))
        .map(|r| r.letters.clone())
        .collect();
    Ok((after.len(), bad))
}

impl Suite<'_> {
    /// Starts case `case`'s load (its own keys `c<case>-`) and history client with the client
    /// retry flags `retry`, waits for the prefill, and lets them run for a while.
    pub async fn start(&self, case: u32, retry: &[&str]) -> Result<Running> {
        let ns = self.ns;
        let spec = LoadSpec {
            keys: 3000,
            concurrency: 8,
            write_ratio: 0.5,
        };
        let screen = start_screen(ns, self.account, case, retry).await?;
        let load = load::start_with(
            ns,
            &format!("load-{case}"),
            STORE,
            self.account,
            spec,
            &format!("c{case}-"),
            retry,
        )
        .await?;
        let topology = topology(ns).await?;
        let prefix = linearizability::hot_prefix(&topology, &format!("h{case}-"), HOT_KEYS)?;
        let hot = HOT_KEYS.to_string();
        let mut args = vec![
            "--hot-keys",
            &hot,
            "--cas-ratio",
            "0.3",
            "--history",
            "/dev/stdout",
        ];
        args.extend_from_slice(retry);
        let history_spec = LoadSpec {
            keys: 1,
            concurrency: 4,
            write_ratio: 0.5,
        };
        let history = load::start_with(
            ns,
            &format!("hist-{case}"),
            STORE,
            self.account,
            history_spec,
            &prefix,
            &args,
        )
        .await?;
        load.wait_prefilled(ns, STORE).await?;
        tokio::time::sleep(BEFORE_FAULT).await;
        Ok(Running {
            case,
            load,
            history,
            screen,
        })
    }

    /// Lets the load run on the recovered store, stops both pods (each reads back what it
    /// wrote), checks the history, prints the case's line, and requires 0 failed requests.
    /// `faulted`: the shards the fault hit, whose longest write gap is the line's `gap_ms`.
    pub async fn finish(
        &self,
        running: Running,
        faulted: &[u32],
        note: &str,
    ) -> Result<LoadReport> {
        let ns = self.ns;
        let case = running.case;
        tokio::time::sleep(AFTER_RECOVERY).await;
        let (report, (history_report, log), (screen_rounds, screen_bad)) = tokio::try_join!(
            running.load.stop(ns),
            running.history.stop_with_log(ns),
            stop_screen(ns, case, running.screen)
        )?;
        // The line is printed whatever the verdict, so a failing case still shows its figures.
        let (ops, verdict) = match linearizability::extract(&log) {
            Ok(history) => {
                let ops = history.lines().count();
                let checker = self.checker.clone();
                let name = format!("{}-case{case}", ns.name);
                let verdict = tokio::task::spawn_blocking(move || {
                    linearizability::check(&checker, &name, &history)
                })
                .await
                .map_err(|e| Error::Check(format!("the checker's thread: {e}")))
                .and_then(|v| v);
                (ops, verdict)
            }
            Err(e) => (0, Err(e)),
        };
        let gap = if faulted.is_empty() {
            report.write_gap_max_ms
        } else {
            faulted
                .iter()
                .filter_map(|s| report.write_gap_ms_by_shard.get(&s.to_string()))
                .fold(0.0, |a: f64, b| a.max(*b))
        };
        let v = &report.verify;
        record(&format!(
            "REPLICATION case={case} requests={} errors={} retries={} p99_ms={:.1} max_ms={:.1} \
             gap_ms={gap:.0} lost={} wrong={} stale={} keys={} unknown_writes={} \
             history_ops={ops} history_errors={} history={} screen_rounds={screen_rounds} \
             screen_bad={}; {note}",
            report.requests,
            report.errors,
            report.retries,
            report.p99_ms,
            report.max_ms,
            v.lost,
            v.wrong,
            v.stale_reads,
            v.keys_checked,
            report.unknown_outcome_writes,
            history_report.errors,
            match &verdict {
                Ok(v) => v.label(),
                Err(_) => "NOT-linearizable",
            },
            screen_bad.len(),
        ))?;
        eprintln!("checker: {}", verdict?.into_result()?);
        check(report.errors == 0, || {
            format!(
                "case {case}: {} requests failed ({:?}): {report:?}",
                report.errors, report.errors_by_letter
            )
        })?;
        check(screen_bad.is_empty(), || {
            format!("case {case}: screen rounds other than all hits: {screen_bad:?}")
        })?;
        Ok(report)
    }

    /// The shards, once every one has one leader and all copies in sync, and the operator
    /// says so too.
    pub async fn settled(&self) -> Result<BTreeMap<u32, ShardRaft>> {
        self.settled_at(SHARDS).await
    }

    /// [`Self::settled`] for a store of `shards` shards.
    pub async fn settled_at(&self, shards: u32) -> Result<BTreeMap<u32, ShardRaft>> {
        let views = self
            .probe
            .wait_leaders(self.ns, shards, FACTOR, LONG)
            .await?;
        replicas::wait_replication_healthy(self.ns, STORE, shards, FACTOR, LONG).await?;
        Ok(views)
    }

    /// Waits until `shard` has a leader in a later term than `old` (an election happened).
    pub async fn next_leader(&self, shard: u32, old: &Leader) -> Result<Leader> {
        wait::until(
            &format!(
                "shard {shard} to elect a leader after {} (term {})",
                old.pod, old.term
            ),
            LONG,
            Duration::from_millis(200),
            || async move {
                let leaders = self
                    .probe
                    .leaders(self.ns)
                    .await
                    .map_err(|e| e.to_string())?;
                match leaders.get(&shard) {
                    Some(l) if l.term > old.term => Ok(Some(l.clone())),
                    other => Err(format!("leader {other:?}")),
                }
            },
        )
        .await
    }
}

/// The store's topology, as shard 0's copy 0 holds it.
pub async fn topology(ns: &TestNamespace) -> Result<Topology> {
    shard_http::shards(ns, STORE)
        .await?
        .first()
        .ok_or_else(|| Error::Check("no shard pod with an IP".into()))?
        .topology()
        .await
}

pub fn shard_view(shards: &BTreeMap<u32, ShardRaft>, shard: u32) -> Result<&ShardRaft> {
    shards
        .get(&shard)
        .ok_or_else(|| Error::Check(format!("no view of shard {shard}")))
}

/// SIGKILLs the kvserver process of pod `name` (found by its container's cgroup on the node).
pub async fn kill9(ns: &TestNamespace, name: &str) -> Result<Vec<u32>> {
    let pod = ns.api::<Pod>().get(name).await?;
    let pids = host::container_pids(&pod, KVSERVER)?;
    let comms: Vec<String> = pids.iter().map(|&p| host::comm(p)).collect();
    check(comms.iter().all(|c| c == "kvserver"), || {
        format!("the kvserver container of {name} runs {comms:?}, not only kvserver")
    })?;
    host::sigkill(&pids)?;
    Ok(pids)
}

/// Creates the store and waits for the operator to make its admin token and the copies'
/// StatefulSets (failing early, with the reason, when the installed operator does not
/// replicate).
pub async fn create_store(ns: &TestNamespace) -> Result<()> {
    replicas::create(ns, STORE, SHARDS as i32, FACTOR).await?;
    let copies: Vec<String> = (1..FACTOR).map(|k| format!("{STORE}-r{k}")).collect();
    wait::until(
        &format!("the operator to create StatefulSets {copies:?}"),
        Duration::from_secs(120),
        Duration::from_secs(1),
        || {
            let copies = &copies;
            async move {
                let mut missing = Vec::new();
                if stores::admin_token(ns, STORE).await.is_err() {
                    missing.push(operator::labels::token_secret(STORE));
                }
                for name in copies {
                    if stores::statefulset(ns, name)
                        .await
                        .map_err(|e| e.to_string())?
                        .is_none()
                    {
                        missing.push(name.clone());
                    }
                }
                if missing.is_empty() {
                    Ok(Some(()))
                } else {
                    Err(format!("missing {missing:?}"))
                }
            }
        },
    )
    .await
}

/// Runs `cases` in order on one new factor-3 store (each case starts from a settled store).
pub async fn on_a_new_store<F>(ns_name: &str, cases: F) -> Result<()>
where
    F: AsyncFnOnce(&Suite<'_>) -> Result<()>,
{
    host::require_root()?;
    let checker = tokio::task::spawn_blocking(linearizability::build_checker)
        .await
        .map_err(|e| Error::Check(format!("building the checker: {e}")))??;
    let client = cluster::connect().await?;
    let ns = TestNamespace::create(&client, ns_name).await?;
    ns.run(|| async {
        create_store(&ns).await?;
        let account = pods::follower_account(&ns).await?;
        let suite = Suite {
            ns: &ns,
            account,
            probe: RaftProbe::new(&ns, STORE).await?,
            checker,
        };
        cases(&suite).await
    })
    .await
}
