//! The process's stop request: the first SIGINT (Ctrl-C) or SIGTERM (what Kubernetes sends a
//! pod it deletes). Shared by the load generator and the operator.

/// Resolves on the first SIGINT or SIGTERM (only Ctrl-C where there is no SIGTERM). If the
/// SIGTERM handler cannot be installed, Ctrl-C alone still ends the wait.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
