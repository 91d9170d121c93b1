//! The Porcupine checker of `tests/linearizability`, built by its `build.sh` as `tests/e2e` and
//! kvclient's history test build it. No Go toolchain fails the test: a check skipped is no check.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the checker said of a history (its exit code 0 or 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// Porcupine found no linearization (exit 1).
    Illegal,
}

/// Builds the checker into the target's temp dir (`tests/linearizability/build.sh`).
pub fn build() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/linearizability/build.sh");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("linearizability");
    let built = Command::new(&script)
        .arg(&out)
        .output()
        .expect("run tests/linearizability/build.sh");
    assert!(
        built.status.success(),
        "building tests/linearizability failed: {}",
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
