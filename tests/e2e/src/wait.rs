//! Bounded polling. A wait that runs out fails with what it waited for and what it last saw;
//! nothing here asserts on how long something took.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// Polls `probe` every `every` until it returns `Ok(Some(t))`, for at most `limit`.
/// `Ok(None)` and errors both mean "not yet"; their description is kept for the failure message.
pub async fn until<T, F, Fut>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut probe: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, String>>,
{
    let start = Instant::now();
    let mut last = String::from("nothing yet");
    loop {
        match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(seen) => last = seen,
        }
        if start.elapsed() >= limit {
            return Err(Error::Timeout {
                what: what.to_owned(),
                secs: limit.as_secs(),
                last,
            });
        }
        tokio::time::sleep(every).await;
    }
}
