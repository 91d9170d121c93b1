//! `kvclient load --history` against real kvservers, checked by the Porcupine checker of
//! `tests/linearizability` (built here with the Go toolchain): a history of racing reads,
//! overwrites and compare-and-sets on a few hot keys, across a kill -9 and restart of one
//! server, is linearizable; and the same history with one read made stale is caught.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{KvServer, kvclient_bin};

/// The checker binary, built once per test run by `tests/linearizability/build.sh`.
fn checker() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/linearizability/build.sh");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("linearizability");
    let built = Command::new(&script)
        .arg(&out)
        .stderr(Stdio::inherit())
        .status()
        .expect("run tests/linearizability/build.sh");
    assert!(built.success(), "building tests/linearizability failed");
    out
}

/// Runs the checker on `history`: true when linearizable. When not, the history and the
/// checker's visualization are kept under the target's temp dir for a look.
fn linearizable(checker: &Path, history: &Path) -> bool {
    let name = history.file_stem().unwrap().to_string_lossy().into_owned();
    let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.html"));
    let out = Command::new(checker)
        .args(["-timeout", "120s", "-html"])
        .arg(&kept)
        .arg(history)
        .output()
        .expect("run the checker");
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    match out.status.code() {
        Some(0) => true,
        Some(1) => {
            let copy = kept.with_extension("jsonl");
            std::fs::copy(history, &copy).unwrap();
            eprintln!("kept {} and {}", copy.display(), kept.display());
            false
        }
        other => panic!(
            "checker could not read {}: {other:?} {}",
            history.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The history with one read made stale: the read-back of a key answers the value of an
/// acknowledged write that a later acknowledged write overwrote before the read began.
fn with_a_stale_read(history: &str) -> Option<String> {
    let mut lines: Vec<serde_json::Value> = history
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let acked =
        |l: &serde_json::Value| (l["op"] == "put" || l["op"] == "cas") && l["outcome"] == "ok";
    for (r, read) in lines.iter().enumerate().rev() {
        if read["op"] != "get" || read["outcome"] != "ok" {
            continue;
        }
        let key = &read["key"];
        let writes: Vec<&serde_json::Value> = lines[..r]
            .iter()
            .filter(|l| acked(l) && &l["key"] == key)
            .collect();
        // An older write, then a newer one that began after it returned and returned before
        // the read began: the read can no longer see the older value.
        for (i, older) in writes.iter().enumerate() {
            let overwritten = writes[i + 1..].iter().any(|newer| {
                newer["call"].as_u64() > older["return"].as_u64()
                    && newer["return"].as_u64() < read["call"].as_u64()
            });
            if overwritten && older["value"] != read["found"] {
                let stale = older["value"].clone();
                lines[r]["found"] = stale;
                let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                return Some(text.join("\n") + "\n");
            }
        }
    }
    None
}

#[test]
fn racing_writes_across_a_kill9_are_linearizable_and_a_stale_read_is_caught() {
    let checker = checker();
    let mut servers = [
        KvServer::start_with(0, &["--sync", "always"]),
        KvServer::start_with(1, &["--sync", "always"]),
    ];
    let list = format!("{},{}", servers[0].addr(), servers[1].addr());
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history.jsonl");
    let load = Command::new(kvclient_bin())
        .args([
            "load",
            "--servers",
            &list,
            "--duration",
            "8",
            "--concurrency",
            "8",
        ])
        .args([
            "--hot-keys",
            "6",
            "--cas-ratio",
            "0.3",
            "--write-ratio",
            "0.5",
        ])
        .arg("--history")
        .arg(&history)
        .env_remove("KVCLIENT_SERVERS")
        .env_remove("KVCLIENT_KVSTORE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kvclient load");
    std::thread::sleep(Duration::from_secs(2));
    servers[1].kill9_and_restart();
    let out = load.wait_with_output().expect("kvclient load ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "load failed: {stderr}");
    let recorded = std::fs::read_to_string(&history).unwrap();
    let ops = recorded.lines().count();
    assert!(ops > 200, "only {ops} operations recorded: {stderr}");
    let kinds = ["\"op\":\"get\"", "\"op\":\"put\"", "\"op\":\"cas\""];
    for kind in kinds {
        assert!(recorded.contains(kind), "no {kind} in the history");
    }
    assert!(
        linearizable(&checker, &history),
        "the store's own history is not linearizable"
    );

    let stale = with_a_stale_read(&recorded).expect("a read after two acknowledged writes");
    let broken = dir.path().join("stale.jsonl");
    std::fs::write(&broken, stale).unwrap();
    assert!(
        !linearizable(&checker, &broken),
        "the checker passed a history with a stale read"
    );
}
