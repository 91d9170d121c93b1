//! The shard side of each phase, through [`ShardAdmin`]. Every step is idempotent: servers accept
//! the same map twice, imports are if-absent, cleanup of a clean shard removes nothing. The
//! Kubernetes side (StatefulSet size, volumes) is the controller's.

use futures::future::join_all;
use kvproto::{MigrationPhase, Topology};
use thiserror::Error;
use tokio::sync::watch;

use super::copy::{CopyOptions, CopyProgress, copy_moving};
use super::maps::MoveMaps;
use crate::shards::ShardAdmin;
use crate::status::RebalancePhase;

/// Why a step did not complete; the step is run again later.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StepError {
    /// A shard did not answer or refused a call.
    #[error("shard {shard} unreachable: {message}")]
    Unreachable { shard: u32, message: String },
    /// A shard about to be removed still holds keys.
    #[error("shard {shard} still holds {keys} keys")]
    NotDrained { shard: u32, keys: u64 },
}

impl StepError {
    pub fn unreachable(shard: u32, message: String) -> Self {
        StepError::Unreachable { shard, message }
    }

    /// The shard the error is about.
    pub fn shard(&self) -> u32 {
        match self {
            StepError::Unreachable { shard, .. } | StepError::NotDrained { shard, .. } => *shard,
        }
    }
}

/// One store's servers as a move addresses them.
pub struct Shards<'a> {
    pub admin: &'a dyn ShardAdmin,
    pub token: &'a str,
    pub maps: MoveMaps<'a>,
}

impl Shards<'_> {
    /// Runs `call` on the server of every shard in `range`, concurrently; every call must
    /// succeed, and a failed one names its shard. The answers come in shard order.
    async fn on_each<'s, T, Fut>(
        &'s self,
        range: std::ops::Range<u32>,
        call: impl Fn(&'s str) -> Fut,
    ) -> Result<Vec<T>, StepError>
    where
        Fut: Future<Output = Result<T, String>>,
    {
        let call = &call;
        let calls = range.map(|shard| async move {
            let url = self.url(shard)?;
            call(url)
                .await
                .map_err(|message| StepError::unreachable(shard, message))
        });
        join_all(calls).await.into_iter().collect()
    }

    /// Pushes `topology` to servers `range`, concurrently; all must acknowledge.
    async fn push(
        &self,
        range: std::ops::Range<u32>,
        topology: &Topology,
    ) -> Result<(), StepError> {
        self.on_each(range, |url| {
            self.admin.put_topology(url, self.token, topology)
        })
        .await
        .map(|_| ())
    }

    fn url(&self, shard: u32) -> Result<&str, StepError> {
        self.maps
            .peers
            .get(shard as usize)
            .map(String::as_str)
            .ok_or_else(|| StepError::unreachable(shard, "no address for this shard".into()))
    }

    /// ScalingUp: the new pods learn the current map (they forward everything to its owners).
    pub async fn introduce_new_servers(&self) -> Result<(), StepError> {
        self.push(self.maps.from..self.maps.span(), &self.maps.before())
            .await
    }

    /// Handoff: old owners stop serving the keys they lose.
    pub async fn handoff(&self) -> Result<(), StepError> {
        let map = self.maps.migrating(MigrationPhase::Handoff);
        self.push(0..self.maps.span(), &map).await
    }

    /// Copy: clients route over the new count; then every moving record is copied.
    pub async fn copy(
        &self,
        options: CopyOptions,
        progress: &watch::Sender<CopyProgress>,
    ) -> Result<CopyProgress, StepError> {
        let map = self.maps.migrating(MigrationPhase::Copy);
        self.push(0..self.maps.span(), &map).await?;
        let total = self.count_moving().await?;
        progress.send_replace(CopyProgress {
            total,
            ..CopyProgress::default()
        });
        copy_moving(
            self.admin,
            self.token,
            &map,
            self.maps.from,
            options,
            progress,
        )
        .await
    }

    /// How many records the old shards will send, for the copy's progress.
    async fn count_moving(&self) -> Result<u64, StepError> {
        let counts = self
            .on_each(0..self.maps.from, |url| {
                self.admin.moving_count(url, self.token)
            })
            .await?;
        Ok(counts.iter().sum())
    }

    /// Commit: every server, also those about to be removed, takes the new map as stable.
    pub async fn commit(&self) -> Result<(), StepError> {
        self.push(0..self.maps.span(), &self.maps.after()).await
    }

    /// Cleanup: every server drops what it no longer owns, and its tombstones.
    pub async fn cleanup(&self) -> Result<(), StepError> {
        self.on_each(0..self.maps.span(), |url| {
            self.admin.cleanup(url, self.token)
        })
        .await
        .map(|_| ())
    }

    /// Before a shrink: the shards to remove must hold no key at all.
    pub async fn check_drained(&self) -> Result<(), StepError> {
        for shard in self.maps.to..self.maps.from {
            let url = self.url(shard)?;
            let keys = self
                .admin
                .key_count(url, self.token)
                .await
                .map_err(|message| StepError::unreachable(shard, message))?;
            if keys > 0 {
                return Err(StepError::NotDrained { shard, keys });
            }
        }
        Ok(())
    }

    /// The shard side of `phase` (DeletingPVCs has none).
    pub async fn run(
        &self,
        phase: RebalancePhase,
        options: CopyOptions,
        progress: &watch::Sender<CopyProgress>,
    ) -> Result<(), StepError> {
        match phase {
            RebalancePhase::ScalingUp => self.introduce_new_servers().await,
            RebalancePhase::Handoff => self.handoff().await,
            RebalancePhase::Copy => self.copy(options, progress).await.map(|_| ()),
            RebalancePhase::Commit => self.commit().await,
            RebalancePhase::Cleanup => self.cleanup().await,
            RebalancePhase::ScalingDown => self.check_drained().await,
            RebalancePhase::DeletingPVCs => Ok(()),
        }
    }
}
