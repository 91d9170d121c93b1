//! The longest time each shard went without an acknowledged write during the timed phase: when
//! a fault hits one shard, its gap bounds the time from the fault to that shard's first
//! acknowledged write again (the other shards keep acknowledging, so a global gap would hide it).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Shared by the workers: per shard, the last acknowledgement and the longest gap so far.
#[derive(Debug)]
pub struct WriteGaps {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    started: Instant,
    shards: BTreeMap<u32, Shard>,
}

#[derive(Debug, Clone, Copy)]
struct Shard {
    last: Instant,
    longest: Duration,
}

impl WriteGaps {
    /// Gaps are measured from `started` on.
    pub fn new(started: Instant) -> Self {
        WriteGaps {
            inner: Mutex::new(Inner {
                started,
                shards: BTreeMap::new(),
            }),
        }
    }

    /// Forgets what was measured and measures from now on (the timed phase's start).
    pub fn restart(&self) {
        let mut inner = self.lock();
        inner.started = Instant::now();
        inner.shards.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A write to `shard` was acknowledged now.
    pub fn acknowledged(&self, shard: u32) {
        self.acknowledged_at(shard, Instant::now());
    }

    fn acknowledged_at(&self, shard: u32, now: Instant) {
        let mut inner = self.lock();
        let started = inner.started;
        let entry = inner.shards.entry(shard).or_insert(Shard {
            last: started,
            longest: Duration::ZERO,
        });
        entry.longest = entry.longest.max(now.saturating_duration_since(entry.last));
        entry.last = entry.last.max(now);
    }

    /// The longest gap of every shard that acknowledged a write, closed at `end` (a shard that
    /// stopped acknowledging before the end counts the time since its last acknowledgement).
    pub fn longest(&self, end: Instant) -> BTreeMap<u32, Duration> {
        self.lock()
            .shards
            .iter()
            .map(|(shard, s)| (*shard, s.longest.max(end.saturating_duration_since(s.last))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shard_keeps_its_own_longest_gap() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let gaps = WriteGaps::new(t0);
        for ms in [10, 20, 30] {
            gaps.acknowledged_at(0, at(ms));
        }
        gaps.acknowledged_at(1, at(5));
        gaps.acknowledged_at(1, at(2005));
        gaps.acknowledged_at(1, at(2010));
        let longest = gaps.longest(at(2040));
        assert_eq!(longest[&0], Duration::from_millis(2010));
        assert_eq!(longest[&1], Duration::from_millis(2000));
        // An acknowledgement reported late never shrinks what was measured.
        gaps.acknowledged_at(1, at(1000));
        assert_eq!(gaps.longest(at(2040))[&1], Duration::from_millis(2000));
    }
}
