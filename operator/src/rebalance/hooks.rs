//! Test aids, read from annotations on the KVStore, so that an end-to-end test can act at a
//! chosen point of a move (kill the operator in a phase, delete a pod mid-copy). Unset, they
//! change nothing.

use std::collections::BTreeMap;
use std::time::Duration;

/// Seconds to wait after a new phase is persisted and before its action runs.
pub const PAUSE_BEFORE_PHASE: &str = "kvstore.dev/test-pause-before-phase-seconds";
/// Milliseconds to wait after each import batch of the copy.
pub const COPY_BATCH_PAUSE: &str = "kvstore.dev/test-copy-batch-pause-millis";

/// The test hooks set on one store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TestHooks {
    pub pause_before_phase: Duration,
    pub copy_batch_pause: Duration,
}

impl TestHooks {
    /// The hooks named in `annotations`; unparsable values count as unset.
    pub fn from_annotations(annotations: Option<&BTreeMap<String, String>>) -> Self {
        let number = |name: &str| {
            annotations
                .and_then(|a| a.get(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        TestHooks {
            pause_before_phase: Duration::from_secs(number(PAUSE_BEFORE_PHASE)),
            copy_batch_pause: Duration::from_millis(number(COPY_BATCH_PAUSE)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_come_from_annotations_and_default_to_nothing() {
        assert_eq!(TestHooks::from_annotations(None), TestHooks::default());
        let annotations = BTreeMap::from([
            (PAUSE_BEFORE_PHASE.to_owned(), "4".to_owned()),
            (COPY_BATCH_PAUSE.to_owned(), "500".to_owned()),
        ]);
        let hooks = TestHooks::from_annotations(Some(&annotations));
        assert_eq!(hooks.pause_before_phase, Duration::from_secs(4));
        assert_eq!(hooks.copy_batch_pause, Duration::from_millis(500));
        let bad = BTreeMap::from([(PAUSE_BEFORE_PHASE.to_owned(), "soon".to_owned())]);
        assert_eq!(
            TestHooks::from_annotations(Some(&bad)),
            TestHooks::default()
        );
    }
}
