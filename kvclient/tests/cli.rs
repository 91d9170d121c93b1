//! The `kvclient` binary: usage errors, the book's screen, one-shot commands and the load
//! generator, against real kvserver processes.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed setup should panic

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use support::{KvServer, free_port, kvclient_bin};

fn kvclient(args: &[&str]) -> Output {
    Command::new(kvclient_bin())
        .args(args)
        .env_remove("KVCLIENT_SERVERS")
        .env_remove("KVCLIENT_KVSTORE")
        .stdin(Stdio::null())
        .output()
        .expect("run kvclient")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

const PAD: &str = "                    ";

#[test]
fn malformed_input_is_a_usage_error() {
    for args in [
        vec![],
        vec!["a,,b"],
        vec!["host:port"],
        vec!["a", "writable"],
        vec!["a", "--interval", "soon"],
        vec!["a", "--interval", "0"],
        vec!["a", "--interval", "1e15"],
        vec!["a", "--iterations", "0"],
        vec!["a", "--keys", "0"],
        vec!["a", "--no-such-flag"],
        vec!["get"],
        vec!["put", "k", "--servers", "127.0.0.1:1"],
        vec!["get", "a/b", "--servers", "127.0.0.1:1"],
        vec!["load", "--concurrency", "0", "--servers", "127.0.0.1:1"],
    ] {
        let out = kvclient(&args);
        assert_eq!(
            code(&out),
            2,
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty(), "{args:?} says why");
    }
}

#[test]
fn book_mode_prints_the_books_screen() {
    let servers: Vec<KvServer> = (0..3).map(KvServer::start).collect();
    let list = servers
        .iter()
        .map(KvServer::addr)
        .collect::<Vec<_>>()
        .join(",");

    let out = kvclient(&[&list, "readonly", "--iterations", "1", "--interval", "0.1"]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert_eq!(lines[0], format!("{PAD}abcdefghijklmnopqrstuvwxyz"));
    assert_eq!(lines[1], format!("{PAD}{}", "-".repeat(26)));
    assert_eq!(lines[2], format!("{PAD}12012012012012012012012012"));
    assert_eq!(lines[3], lines[1]);
    assert_round(lines[4], &"m".repeat(26), "hits = 0 (0%)");

    let out = kvclient(&[&list, "--iterations", "2", "--interval", "0.1"]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert_round(lines[4], &"w".repeat(26), "hits = 0 (0%)");
    assert_round(lines[5], &"h".repeat(26), "hits = 26 (100%)");
    assert!(text.ends_with('\n'));
}

#[test]
fn book_mode_shows_a_dead_server_as_dots_and_summarizes_generated_keys() {
    let live = KvServer::start(0);
    let dead = format!("127.0.0.1:{}", free_port());
    let list = format!("{},{dead}", live.addr());
    let out = kvclient(&[
        &list,
        "--iterations",
        "1",
        "--interval",
        "0.1",
        "--timeout",
        "1",
    ]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[2], format!("{PAD}10101010101010101010101010"));
    assert_round(lines[4], ".w.w.w.w.w.w.w.w.w.w.w.w.w", "hits = 0 (0%)");

    let out = kvclient(&[
        &list,
        "--keys",
        "100",
        "--iterations",
        "2",
        "--interval",
        "0.1",
    ]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "100 keys over 2 shards: 0=50 1=50");
    assert!(
        lines[1].ends_with(" h=0 w=50 m=0 x=0 .=50 | hits = 0 (0%)"),
        "{text}"
    );
    assert!(
        lines[2].ends_with(" h=50 w=0 m=0 x=0 .=50 | hits = 50 (50%)"),
        "{text}"
    );
}

fn assert_round(line: &str, letters: &str, hits: &str) {
    let (clock, rest) = line.split_at(5);
    let digits: Vec<char> = clock.chars().collect();
    assert!(
        digits[0].is_ascii_digit()
            && digits[1].is_ascii_digit()
            && digits[2] == ':'
            && digits[3].is_ascii_digit()
            && digits[4].is_ascii_digit(),
        "{line}"
    );
    assert_eq!(rest, format!(" {letters} | {hits}"));
}

#[test]
fn one_shot_commands() {
    let servers: Vec<KvServer> = (0..2).map(KvServer::start).collect();
    let list = servers
        .iter()
        .map(KvServer::addr)
        .collect::<Vec<_>>()
        .join(",");
    let s = ["--servers", list.as_str()];

    let missing = kvclient(&[&["get", "k1"][..], &s].concat());
    assert_eq!(code(&missing), 1);
    assert_eq!(
        code(&kvclient(&[&["put", "k1", "hello"][..], &s].concat())),
        0
    );
    let got = kvclient(&[&["get", "k1"][..], &s].concat());
    assert_eq!((code(&got), stdout(&got)), (0, "hello".to_string()));
    let again = kvclient(&[&["put", "k1", "x", "--if-absent"][..], &s].concat());
    assert_eq!(code(&again), 1);

    let mut child = Command::new(kvclient_bin())
        .args([
            "put",
            "k2",
            "--stdin",
            "--server",
            &servers[0].url(),
            "--server",
            &servers[1].url(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from\nstdin")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let got = kvclient(&[&["get", "k2"][..], &s].concat());
    assert_eq!(stdout(&got), "from\nstdin");

    let ls = kvclient(&[&["ls"][..], &s].concat());
    assert_eq!((code(&ls), stdout(&ls)), (0, "k1\nk2\n".to_string()));
    let ls = kvclient(&[&["ls", "--prefix", "k2"][..], &s].concat());
    assert_eq!(stdout(&ls), "k2\n");

    assert_eq!(code(&kvclient(&[&["del", "k1"][..], &s].concat())), 0);
    assert_eq!(code(&kvclient(&[&["del", "k1"][..], &s].concat())), 1);
    assert_eq!(code(&kvclient(&[&["get", "k1"][..], &s].concat())), 1);

    let dead = format!("127.0.0.1:{}", free_port());
    let unreachable = kvclient(&[
        "get",
        "k1",
        "--servers",
        &dead,
        "--timeout",
        "1",
        "--retries",
        "0",
    ]);
    assert_eq!(code(&unreachable), 1);
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach"));
}

#[test]
fn load_generator_reports_and_verifies() {
    let servers: Vec<KvServer> = (0..2).map(KvServer::start).collect();
    let list = servers
        .iter()
        .map(KvServer::addr)
        .collect::<Vec<_>>()
        .join(",");
    let out = kvclient(&[
        "load",
        "--keys",
        "40",
        "--concurrency",
        "4",
        "--duration",
        "1",
        "--write-ratio",
        "0.5",
        "--json",
        "--servers",
        &list,
    ]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON report");
    assert!(report["requests"].as_u64().unwrap() > 0, "{report}");
    assert!(report["puts"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert!(
        report["verify"]["keys_checked"].as_u64().unwrap() > 0,
        "{report}"
    );
    for field in ["lost", "wrong", "unreadable", "stale_reads"] {
        assert_eq!(report["verify"][field], 0, "{field}: {report}");
    }
    assert!(report["p99_ms"].as_f64().unwrap() >= report["p50_ms"].as_f64().unwrap());

    // Read-only load after a prefill: every key was written once and reads back.
    let out = kvclient(&[
        "load",
        "--keys",
        "30",
        "--concurrency",
        "3",
        "--duration",
        "0.5",
        "--write-ratio",
        "0",
        "--prefill",
        "--prefix",
        "pre-",
        "--json",
        "--servers",
        &list,
    ]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON report");
    assert_eq!(report["puts"], 0, "{report}");
    assert_eq!(report["verify"]["keys_checked"], 30, "{report}");
    assert_eq!(report["verify"]["stale_reads"], 0, "{report}");

    let text = kvclient(&[
        "load",
        "--keys",
        "10",
        "--concurrency",
        "2",
        "--duration",
        "0.3",
        "--servers",
        &list,
    ]);
    assert_eq!(code(&text), 0);
    let text = stdout(&text);
    assert!(
        text.contains("req/s") && text.contains("p99") && text.contains("0 lost"),
        "{text}"
    );
}

#[test]
fn load_generator_stops_on_sigterm_and_still_verifies() {
    let servers: Vec<KvServer> = (0..2).map(KvServer::start).collect();
    let list = servers
        .iter()
        .map(KvServer::addr)
        .collect::<Vec<_>>()
        .join(",");
    let child = Command::new(kvclient_bin())
        .args([
            "load",
            "--keys",
            "20",
            "--concurrency",
            "2",
            "--duration",
            "10m",
            "--json",
            "--servers",
            &list,
        ])
        .env_remove("KVCLIENT_SERVERS")
        .env_remove("KVCLIENT_KVSTORE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kvclient load");
    // Let it send some load, then ask it to stop the way a pod deletion does.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("kvclient load exits");
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON report");
    assert!(report["requests"].as_u64().unwrap() > 0, "{report}");
    assert!(report["duration_s"].as_f64().unwrap() < 600.0, "{report}");
    for field in ["lost", "wrong", "unreadable", "stale_reads"] {
        assert_eq!(report["verify"][field], 0, "{field}: {report}");
    }
}
