//! Leader election on a coordination.k8s.io Lease (kube-lease-manager), so that only one of
//! several operator replicas reconciles at a time.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::labels::MANAGER;

/// Seconds a lease stays valid without renewal; a crashed leader is replaced after this.
const LEASE_SECONDS: u64 = 15;
/// Seconds before expiry at which the holder renews.
const GRACE_SECONDS: u64 = 5;

/// A running election: the channel says whether this replica leads.
pub struct Election {
    pub leading: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

/// Joins the election for `lease_name` in `namespace` as `identity`.
pub async fn join(
    client: Client,
    namespace: &str,
    lease_name: &str,
    identity: &str,
) -> kube_lease_manager::Result<Election> {
    let manager = LeaseManagerBuilder::new(client, lease_name)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_field_manager(format!("{MANAGER}-lease"))
        .with_duration(LEASE_SECONDS)
        .with_grace(GRACE_SECONDS)
        .build()
        .await?;
    let (leading, task) = manager.watch().await;
    Ok(Election { leading, task })
}

impl Election {
    /// Waits until this replica leads; false if the election ended first.
    pub async fn until_leading(&mut self) -> bool {
        self.leading.wait_for(|leading| *leading).await.is_ok()
    }

    /// Resolves when leadership is lost (or the election ends).
    pub fn lost(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.leading.clone();
        async move {
            let _ = rx.wait_for(|leading| !*leading).await;
        }
    }

    /// Stops renewing and releases the lease so a standby takes over at once.
    pub async fn release(self) {
        drop(self.leading);
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(Ok(manager))) => {
                if let Err(err) = manager.release().await {
                    info!(error = %err, "could not release the lease; it will expire");
                }
            }
            _ => info!("lease manager did not stop cleanly; the lease will expire"),
        }
    }
}
