//! When a request may be sent again, and how long to wait before it is.
//!
//! A request is retried only when doing so cannot apply it twice with a different effect:
//! - every request, when the server said it applied nothing (connection refused, 503 `draining`,
//!   503 `misdirected`, the book's plain 503 `_shutting_down_`);
//! - idempotent requests (reads, overwrites, unconditional deletes, admin pushes) also after a
//!   timeout, a broken connection or any other 502/503/504.
//!
//! A conditional write that timed out is never resent: it may have been applied, and sending it
//! again would report a precondition failure for the client's own write.
//!
//! A policy counts its retries ([`RetryPolicy::standard`]) or spends a time budget
//! ([`RetryPolicy::within`]): against a replicated store, a client that keeps trying the shard's
//! other copies for a few seconds rides over a leader's failover.
//!
//! A request's error is its first ambiguous one ([`FirstUnknown`]) when a later attempt was
//! refused cleanly: the first may have been applied, so the request's outcome stays unknown.

use std::time::{Duration, Instant};

use rand::Rng;

use crate::error::Error;

/// Whether sending a request twice has the same effect as sending it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    Idempotent,
    /// Conditional writes (`If-None-Match`, `If-Match`).
    Conditional,
}

/// How many times to retry, with exponential backoff and full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 disables retries.
    pub max_retries: u32,
    /// Backoff ceiling before the first retry; doubles each retry.
    pub base_delay: Duration,
    /// Backoff ceiling for any retry.
    pub max_delay: Duration,
    /// With a budget, retries go on (up to `max_retries`) until this long after the first
    /// attempt began, and a retry never sleeps past it.
    pub budget: Option<Duration>,
}

impl RetryPolicy {
    /// No retries: what the book's client does, so every failure shows on the screen.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_retries: 0,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
        budget: None,
    };

    /// A few quick retries: enough to ride over a pod restart or a topology phase change.
    pub fn standard() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
            budget: None,
        }
    }

    /// Retries until `budget` after the first attempt: backoff 50 ms doubling to 500 ms, with
    /// jitter (docs/replication.md section 6, "What the client sees").
    pub fn within(budget: Duration) -> Self {
        RetryPolicy {
            max_retries: u32::MAX,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
            budget: Some(budget),
        }
    }

    /// The pause before retry number `retry` (0-based) of a request first sent at `started`,
    /// or `None` when the policy allows no more: out of retries, or of budget.
    pub fn next_delay(&self, retry: u32, started: Instant) -> Option<Duration> {
        if retry >= self.max_retries {
            return None;
        }
        let delay = self.delay(retry);
        match self.budget {
            None => Some(delay),
            Some(budget) => {
                let left = budget.checked_sub(started.elapsed())?;
                (!left.is_zero()).then(|| delay.min(left))
            }
        }
    }

    /// The delay before retry number `retry` (0-based): uniform in `0..=min(max, base * 2^retry)`.
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX))
            .min(self.max_delay);
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=ceiling_ms))
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::standard()
    }
}

/// The first attempt of a request whose outcome is unknown (it may have been applied).
#[derive(Debug, Default)]
pub(crate) struct FirstUnknown(Option<Error>);

impl FirstUnknown {
    /// Keeps `err` when it is the request's first ambiguous error.
    pub(crate) fn note(&mut self, err: Error) {
        if self.0.is_none() && err.outcome_unknown() {
            self.0 = Some(err);
        }
    }

    /// The request's error, given its last attempt's: an earlier ambiguous attempt wins over a
    /// later definite answer, which cannot undo it.
    pub(crate) fn settle(self, last: Error) -> Error {
        match self.0 {
            Some(first) if !last.outcome_unknown() => first,
            _ => last,
        }
    }
}

/// Whether `err` may be retried for a request of the given kind.
pub fn should_retry(err: &Error, idempotency: Idempotency) -> bool {
    if err.refused_unapplied() {
        return true;
    }
    idempotency == Idempotency::Idempotent
        && match err {
            Error::Timeout { .. } | Error::Transport { .. } => true,
            Error::Status { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvproto::wire::ErrorCode;

    fn status(status: u16, code: Option<ErrorCode>) -> Error {
        Error::Status {
            server: "s".into(),
            status,
            code,
            message: String::new(),
        }
    }

    #[test]
    fn conditional_writes_retry_only_what_the_server_refused() {
        let draining = status(503, Some(ErrorCode::Draining));
        let peer = status(503, Some(ErrorCode::PeerUnavailable));
        let timeout = Error::Timeout { server: "s".into() };
        assert!(should_retry(&draining, Idempotency::Conditional));
        assert!(should_retry(
            &status(503, Some(ErrorCode::Misdirected)),
            Idempotency::Conditional
        ));
        assert!(!should_retry(&peer, Idempotency::Conditional));
        assert!(!should_retry(&timeout, Idempotency::Conditional));
        assert!(should_retry(&peer, Idempotency::Idempotent));
        assert!(should_retry(&timeout, Idempotency::Idempotent));
    }

    #[test]
    fn a_refusal_after_an_ambiguous_attempt_leaves_the_outcome_unknown() {
        let refused = || status(503, Some(ErrorCode::Draining));
        let mut attempts = FirstUnknown::default();
        attempts.note(refused());
        assert!(!attempts.settle(refused()).outcome_unknown());

        let mut attempts = FirstUnknown::default();
        attempts.note(refused());
        attempts.note(Error::Timeout { server: "s".into() });
        attempts.note(status(504, Some(ErrorCode::OutcomeUnknown)));
        let settled = attempts.settle(refused());
        assert!(settled.outcome_unknown(), "{settled:?}");
        assert!(matches!(settled, Error::Timeout { .. }));
    }

    #[test]
    fn client_errors_are_never_retried() {
        for s in [400, 404, 409, 412, 413, 500, 507] {
            assert!(
                !should_retry(&status(s, None), Idempotency::Idempotent),
                "{s}"
            );
        }
    }

    #[test]
    fn backoff_stays_under_its_ceiling() {
        let p = RetryPolicy::standard();
        for retry in 0..40 {
            assert!(p.delay(retry) <= p.max_delay);
        }
        assert!(p.delay(0) <= p.base_delay);
        assert_eq!(RetryPolicy::NONE.delay(3), Duration::ZERO);
    }

    #[test]
    fn a_budget_bounds_retries_by_time_not_count() {
        let p = RetryPolicy::within(Duration::from_millis(300));
        let now = Instant::now();
        for retry in [0, 10, 1000] {
            let d = p.next_delay(retry, now).expect("inside the budget");
            assert!(d <= Duration::from_millis(300));
        }
        let long_ago = now
            .checked_sub(Duration::from_secs(1))
            .expect("the clock has run a second");
        assert_eq!(p.next_delay(0, long_ago), None);
        let counted = RetryPolicy::standard();
        assert!(counted.next_delay(3, long_ago).is_some());
        assert_eq!(counted.next_delay(4, now), None);
        assert_eq!(RetryPolicy::NONE.next_delay(0, now), None);
    }
}
