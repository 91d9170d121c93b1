//! Re-reading files that change under a running server (token files, the TLS pair, the peer
//! CA): one tick every [`RELOAD_EVERY`] until shutdown. A change is logged once; a file that
//! cannot be used is logged once per bad spell, not every tick, and what is in force stays.
//!
//! Polled rather than watched with inotify: a Kubernetes Secret volume swaps a `..data`
//! symlink, which inotify on the file itself does not see.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often the files are re-read.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// What one re-read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reread {
    /// The file holds what is in force.
    Unchanged,
    /// New content is in force (a note for the log, e.g. how many tokens).
    Changed(String),
    /// The file cannot be used (why); what is in force stays.
    Kept(String),
}

/// Runs `reread` every [`RELOAD_EVERY`] until `stop`, logging what it finds about `what`.
pub async fn every_tick_until<F, Fut>(what: &str, stop: CancellationToken, mut reread: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Reread>,
{
    let mut tick = tokio::time::interval(RELOAD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Reread::Unchanged;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let now = reread().await;
        match &now {
            Reread::Changed(note) => tracing::info!(note = %note, "{what} reloaded"),
            Reread::Kept(why) if now != last => {
                tracing::warn!(why = %why, "cannot use the {what}; keeping the one in use");
            }
            _ => {}
        }
        last = now;
    }
}

/// [`every_tick_until`] for a blocking re-read (file reads and certificate parsing), run off
/// the async workers. `reread` answers whether the content changed, or why it cannot be used.
pub async fn every_tick_blocking_until<F, E>(what: &str, stop: CancellationToken, reread: F)
where
    F: Fn() -> Result<bool, E> + Clone + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    every_tick_until(what, stop, || {
        let reread = reread.clone();
        async move {
            match tokio::task::spawn_blocking(reread).await {
                Ok(Ok(true)) => Reread::Changed(String::new()),
                Ok(Ok(false)) => Reread::Unchanged,
                Ok(Err(e)) => Reread::Kept(e.to_string()),
                Err(e) => Reread::Kept(format!("the reload task failed: {e}")),
            }
        }
    })
    .await;
}
