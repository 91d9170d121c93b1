//! How a shard pod spends its termination grace period, pure numbers shared by validation (a
//! grace period too short is refused) and the StatefulSet builder (which passes them on).
//!
//! The kubelet counts the grace period from the pod's deletion, preStop hook included, and
//! sends SIGKILL when it runs out. A shard pod spends it as follows:
//! 1. the preStop hook sleeps [`PRE_STOP_SLEEP_SECONDS`]: the pod still serves while the
//!    endpoints (and so the Service's DNS names) drop it;
//! 2. SIGTERM: the kvserver answers data requests 503 `_shutting_down_` (retryable) for
//!    [`DRAIN_DELAY_SECONDS`] (`KV_DRAIN_DELAY`), for clients that still hold the pod's address;
//! 3. the listeners close and in-flight requests get what is left (`KV_SHUTDOWN_TIMEOUT`), at
//!    least [`MIN_SHUTDOWN_SECONDS`];
//! 4. [`FINAL_SYNC_SECONDS`] stay for the final fsync and the exit, so SIGKILL never lands
//!    before the last acknowledged write is on disk.

/// Seconds the preStop hook sleeps before the kubelet sends SIGTERM.
pub const PRE_STOP_SLEEP_SECONDS: i64 = 2;
/// Seconds the kvserver answers 503 after SIGTERM, before its listeners close.
pub const DRAIN_DELAY_SECONDS: i64 = 2;
/// Least time in-flight requests get to finish.
pub const MIN_SHUTDOWN_SECONDS: i64 = 1;
/// Seconds kept at the end for the final fsync and the process exit.
pub const FINAL_SYNC_SECONDS: i64 = 2;
/// Shortest grace period a shard pod can stop in without losing its final sync.
pub const MIN_GRACE_SECONDS: i64 =
    PRE_STOP_SLEEP_SECONDS + DRAIN_DELAY_SECONDS + MIN_SHUTDOWN_SECONDS + FINAL_SYNC_SECONDS;

/// The phases of a shard pod's stop, in seconds; they add up to the grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub pre_stop_sleep: i64,
    pub drain_delay: i64,
    /// `KV_SHUTDOWN_TIMEOUT`: the rest of the grace period, less the final sync.
    pub shutdown_timeout: i64,
    pub final_sync: i64,
}

/// How a grace period of `grace` seconds is spent, or why it is too short.
pub fn budget(grace: i64) -> Result<Budget, String> {
    if grace < MIN_GRACE_SECONDS {
        return Err(format!(
            "terminationGracePeriodSeconds {grace} is too short: a shard pod needs at least \
             {MIN_GRACE_SECONDS} s to stop ({PRE_STOP_SLEEP_SECONDS} s preStop sleep while the \
             Service drops it, {DRAIN_DELAY_SECONDS} s answering 503, at least \
             {MIN_SHUTDOWN_SECONDS} s for in-flight requests, {FINAL_SYNC_SECONDS} s for the \
             final sync); the kubelet would kill it before its last writes are on disk"
        ));
    }
    Ok(Budget {
        pre_stop_sleep: PRE_STOP_SLEEP_SECONDS,
        drain_delay: DRAIN_DELAY_SECONDS,
        shutdown_timeout: grace - PRE_STOP_SLEEP_SECONDS - DRAIN_DELAY_SECONDS - FINAL_SYNC_SECONDS,
        final_sync: FINAL_SYNC_SECONDS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phases_fill_the_grace_period() {
        for grace in [MIN_GRACE_SECONDS, 10, 30, 3600] {
            let b = budget(grace).unwrap();
            assert_eq!(
                b.pre_stop_sleep + b.drain_delay + b.shutdown_timeout + b.final_sync,
                grace
            );
            assert!(b.shutdown_timeout >= MIN_SHUTDOWN_SECONDS);
        }
        assert_eq!(budget(10).unwrap().shutdown_timeout, 4);
    }

    #[test]
    fn a_grace_period_too_short_names_what_it_lacks() {
        for grace in [-1, 0, 1, MIN_GRACE_SECONDS - 1] {
            let why = budget(grace).unwrap_err();
            assert!(why.contains(&format!("{grace} is too short")), "{why}");
            assert!(
                why.contains(&format!("at least {MIN_GRACE_SECONDS} s")),
                "{why}"
            );
        }
    }
}
