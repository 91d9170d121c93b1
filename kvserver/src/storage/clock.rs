//! Versions: a hybrid clock, `max(last + 1, unix micros)`. Monotonic per server, restarted above
//! every version the store holds, and roughly comparable across servers (useful in logs).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Default)]
pub struct Clock {
    last: AtomicU64,
}

impl Clock {
    /// A clock that will never hand out `floor` or anything below it.
    pub fn starting_after(floor: u64) -> Self {
        Clock {
            last: AtomicU64::new(floor),
        }
    }

    /// The next version: above every version handed out or observed so far.
    pub fn next(&self) -> u64 {
        let now = unix_micros();
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            let next = prev.saturating_add(1).max(now);
            match self
                .last
                .compare_exchange_weak(prev, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(actual) => prev = actual,
            }
        }
    }

    /// Records a version written elsewhere (an import), so later local versions are above it.
    pub fn observe(&self, version: u64) {
        self.last.fetch_max(version, Ordering::AcqRel);
    }

    /// The highest version handed out or observed.
    pub fn last(&self) -> u64 {
        self.last.load(Ordering::Acquire)
    }
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_only_grow_and_pass_observed_ones() {
        let clock = Clock::starting_after(0);
        let a = clock.next();
        let b = clock.next();
        assert!(b > a);
        clock.observe(u64::MAX - 10);
        assert_eq!(clock.next(), u64::MAX - 9);
        let restarted = Clock::starting_after(u64::MAX - 9);
        assert_eq!(restarted.next(), u64::MAX - 8);
    }
}
