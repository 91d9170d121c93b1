//! The shard side of each phase, through [`DynShardAdmin`]. Every step is idempotent: servers accept
//! the same map twice, imports are if-absent, cleanup of a clean shard removes nothing. The
//! Kubernetes side (StatefulSet size, volumes) is the controller's.

use std::ops::Range;

use kvproto::{Fence, MigrationPhase, Topology};
use tokio::sync::watch;

use super::copy::{CopyOptions, CopyProgress, copy_moving};
use super::maps::MoveMaps;
use crate::shards::{self, DynShardAdmin, ShardError};
use crate::status::RebalancePhase;

/// One store's servers as a move addresses them.
pub struct Shards<'a> {
    pub admin: &'a dyn DynShardAdmin,
    pub token: &'a str,
    pub maps: MoveMaps<'a>,
}

impl Shards<'_> {
    /// Pushes `topology` to servers `range`, concurrently; all must acknowledge.
    async fn push(&self, range: Range<u32>, topology: &Topology) -> Result<(), ShardError> {
        shards::push(self.admin, self.token, topology, self.maps.peers, range).await
    }

    /// ScalingUp: the new pods learn the current map (they forward everything to its owners),
    /// each once it has started (`0..started`: the old ones hold it already). A new server is
    /// not ready before it has a map, and OrderedReady creates the next pod only then.
    pub async fn introduce_new_servers(&self, started: u32) -> Result<(), ShardError> {
        let reachable = 0..started.min(self.maps.span());
        self.push(reachable, &self.maps.before()).await
    }

    /// Handoff: old owners stop serving the keys they lose.
    pub async fn handoff(&self) -> Result<(), ShardError> {
        let map = self.maps.migrating(MigrationPhase::Handoff);
        self.push(0..self.maps.span(), &map).await
    }

    /// Copy: clients route over the new count; then every moving record is copied.
    pub async fn copy(
        &self,
        options: CopyOptions,
        progress: &watch::Sender<CopyProgress>,
    ) -> Result<CopyProgress, ShardError> {
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
    async fn count_moving(&self) -> Result<u64, ShardError> {
        let counts = shards::on_each(self.maps.peers, 0..self.maps.from, |url| {
            self.admin.moving_count(url, self.token)
        })
        .await?;
        Ok(counts.iter().sum())
    }

    /// Commit: every server, also those about to be removed, takes the new map as stable.
    pub async fn commit(&self) -> Result<(), ShardError> {
        self.push(0..self.maps.span(), &self.maps.after()).await
    }

    /// Cleanup: every server drops what it no longer owns, and its tombstones.
    pub async fn cleanup(&self) -> Result<(), ShardError> {
        let fence = Fence::stable(self.maps.epoch);
        shards::on_each(self.maps.peers, 0..self.maps.span(), |url| {
            self.admin.cleanup(url, self.token, fence)
        })
        .await
        .map(|_| ())
    }

    /// Before a shrink: the shards to remove must hold no key at all.
    pub async fn check_drained(&self) -> Result<(), ShardError> {
        // One at a time: the first shard that still holds keys is the one reported.
        for shard in self.maps.to..self.maps.from {
            let keys: u64 = shards::on_each(self.maps.peers, shard..shard + 1, |url| {
                self.admin.key_count(url, self.token)
            })
            .await?
            .into_iter()
            .sum();
            if keys > 0 {
                return Err(ShardError::NotDrained { shard, keys });
            }
        }
        Ok(())
    }

    /// The shard side of `phase` (DeletingPVCs has none), with every server of the span started.
    pub async fn run(
        &self,
        phase: RebalancePhase,
        options: CopyOptions,
        progress: &watch::Sender<CopyProgress>,
    ) -> Result<(), ShardError> {
        match phase {
            RebalancePhase::ScalingUp => self.introduce_new_servers(self.maps.span()).await,
            RebalancePhase::Handoff => self.handoff().await,
            RebalancePhase::Copy => self.copy(options, progress).await.map(|_| ()),
            RebalancePhase::Commit => self.commit().await,
            RebalancePhase::Cleanup => self.cleanup().await,
            RebalancePhase::ScalingDown => self.check_drained().await,
            RebalancePhase::DeletingPVCs => Ok(()),
        }
    }
}
