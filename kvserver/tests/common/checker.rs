//! The Porcupine checker of `tests/linearizability`, as `tests/e2e` and kvclient's history
//! test run it: built with the Go toolchain the local cluster installs (`/usr/local/go`, else
//! `go` on the PATH), its module and build caches under `$KVSTORE_CACHE/go` (default
//! `~/.cache/kvstore-operator/go`). No Go toolchain fails the test: a check skipped is no check.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the checker said of a history (its exit code 0 or 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// Porcupine found no linearization (exit 1).
    Illegal,
}

fn cache_dir() -> PathBuf {
    std::env::var_os("KVSTORE_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kvstore-operator"))
        })
        .expect("KVSTORE_CACHE or HOME")
}

/// Builds the checker into the target's temp dir (Go's cache makes a rebuild cheap).
pub fn build() -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/linearizability");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("linearizability");
    let go = ["/usr/local/go/bin/go", "go"]
        .into_iter()
        .find(|go| {
            Command::new(go)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("the linearizability checker needs the Go toolchain (tests/cluster installs it at /usr/local/go)");
    let cache = cache_dir();
    let built = Command::new(go)
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(&source)
        .env("GOMODCACHE", cache.join("go/mod"))
        .env("GOCACHE", cache.join("go/build"))
        .env("GOFLAGS", "-mod=readonly")
        .output()
        .expect("run go build");
    assert!(
        built.status.success(),
        "go build of tests/linearizability failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    out
}

/// Runs `checker` on `history`; its visualization goes beside the history. Any exit but 0 or
/// 1 (bad input, undecided) fails the test.
pub fn check(checker: &Path, history: &Path) -> Verdict {
    let html = history.with_extension("html");
    let out = Command::new(checker)
        .args(["-timeout", "60s", "-html"])
        .arg(&html)
        .arg(history)
        .output()
        .expect("run the checker");
    eprintln!(
        "checker on {}: {}",
        history.display(),
        String::from_utf8_lossy(&out.stdout).trim()
    );
    match out.status.code() {
        Some(0) => Verdict::Linearizable,
        Some(1) => Verdict::Illegal,
        other => panic!(
            "the checker could not decide {} ({other:?}): {}",
            history.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
