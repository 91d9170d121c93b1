//! The copy engine: streams the moving records of every old shard (`export?scope=moving`),
//! groups them by their owner under the target map and sends them in batches with if-absent
//! imports. Batches carry the records' versions and never overwrite what the new owner holds
//! (a newer write or a tombstone), so a copy cut short anywhere is simply run again.
//!
//! Memory is bounded whatever the values' sizes. A batch is cut at `batch` records or
//! `batch_bytes` encoded bytes, whichever comes first (a record larger than that goes alone),
//! so a batch stays under the servers' `--max-import-bytes`. Every record takes its encoded size
//! (and the first of a batch the stream overhead too) from one byte budget shared by all old
//! shards before it is buffered, and gives it back when its batch is imported: import bodies
//! buffered and in flight together stay within `budget_bytes`. A reader the budget cannot serve first
//! sends every batch it has begun, so no reader waits for bytes that nobody is about to free.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::future::try_join_all;
use futures::stream::FuturesUnordered;
use futures::{SinkExt, StreamExt};
use kvproto::bulk::{BulkRecord, STREAM_OVERHEAD};
use kvproto::{Fence, Topology};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::shards::{self, DynShardAdmin, RecordStream, ShardError};

/// Records per import request when nothing else is said.
pub const DEFAULT_BATCH: usize = 1000;
/// Encoded bytes per import request when nothing else is said: well under the kvserver's
/// default `--max-import-bytes` (256 MiB), and small enough that many fit in the budget.
pub const DEFAULT_BATCH_BYTES: usize = 4 << 20;
/// Bytes of records one copy holds at once when nothing else is said: with the bodies in
/// flight, at most twice this, well within the operator's 256 MiB memory limit.
pub const DEFAULT_BUDGET_BYTES: usize = 64 << 20;
/// Import requests one old shard keeps in flight.
const IN_FLIGHT: usize = 4;

/// How the copy sends its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOptions {
    /// Records per import request.
    pub batch: usize,
    /// Pause after each import (a test hook: lets an e2e test act mid-copy).
    pub pause: Duration,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            batch: DEFAULT_BATCH,
            pause: Duration::ZERO,
        }
    }
}

/// How many bytes the copy sends at once and holds in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteLimits {
    /// Encoded bytes per import request (a larger record goes alone).
    pub batch_bytes: usize,
    /// Bytes of records buffered or in flight at once, over every old shard and new owner.
    pub budget_bytes: usize,
}

impl Default for ByteLimits {
    fn default() -> Self {
        ByteLimits {
            batch_bytes: DEFAULT_BATCH_BYTES,
            budget_bytes: DEFAULT_BUDGET_BYTES,
        }
    }
}

/// What the copy has sent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyProgress {
    /// Records sent (values and tombstones).
    pub keys: u64,
    /// Key and value bytes sent.
    pub bytes: u64,
    /// Records the new owners applied (the rest they already had).
    pub applied: u64,
    /// Records the old shards reported moving before the copy began (writes during the copy
    /// may add a few: progress, not an invariant).
    pub total: u64,
}

/// Copies every moving record of shards `0..from` to its owner under `target`, whose
/// `peers` address every shard, within the default [`ByteLimits`]. Old shards are read
/// concurrently; `progress` follows along.
pub async fn copy_moving(
    admin: &dyn DynShardAdmin,
    token: &str,
    target: &Topology,
    from: u32,
    options: CopyOptions,
    progress: &watch::Sender<CopyProgress>,
) -> Result<CopyProgress, ShardError> {
    let limits = ByteLimits::default();
    copy_moving_within(admin, token, target, from, options, limits, progress).await
}

/// [`copy_moving`] within `limits`.
pub async fn copy_moving_within(
    admin: &dyn DynShardAdmin,
    token: &str,
    target: &Topology,
    from: u32,
    options: CopyOptions,
    limits: ByteLimits,
    progress: &watch::Sender<CopyProgress>,
) -> Result<CopyProgress, ShardError> {
    let copy = Copy {
        admin,
        token,
        target,
        options,
        limits,
        budget: Budget::new(limits.budget_bytes),
        progress,
    };
    try_join_all((0..from).map(|shard| copy.shard(shard))).await?;
    Ok(*progress.borrow())
}

/// One copy: what every old shard's reader and sender share.
struct Copy<'a> {
    admin: &'a dyn DynShardAdmin,
    token: &'a str,
    target: &'a Topology,
    options: CopyOptions,
    limits: ByteLimits,
    budget: Budget,
    progress: &'a watch::Sender<CopyProgress>,
}

/// The bytes the copy holds, one permit per byte.
struct Budget {
    permits: Arc<Semaphore>,
    /// All the permits (a semaphore hands out at most `u32::MAX` at once).
    total: u32,
}

impl Budget {
    fn new(bytes: usize) -> Self {
        let total = u32::try_from(bytes.max(1)).unwrap_or(u32::MAX);
        Budget {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// A record larger than the whole budget takes all of it (and so goes alone).
    fn permits_for(&self, bytes: usize) -> u32 {
        u32::try_from(bytes).map_or(self.total, |n| n.min(self.total))
    }

    fn try_take(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let permits = self.permits_for(bytes);
        self.permits.clone().try_acquire_many_owned(permits).ok()
    }

    /// `None` only if the semaphore were closed, which nothing does.
    async fn take(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let permits = self.permits_for(bytes);
        self.permits.clone().acquire_many_owned(permits).await.ok()
    }
}

/// Records for one new owner, with the budget they hold.
#[derive(Default)]
struct Batch {
    records: Vec<BulkRecord>,
    /// Encoded bytes of `records`.
    bytes: usize,
    permit: Option<OwnedSemaphorePermit>,
}

impl Batch {
    fn push(&mut self, record: BulkRecord, bytes: usize, permit: Option<OwnedSemaphorePermit>) {
        self.records.push(record);
        self.bytes += bytes;
        match (&mut self.permit, permit) {
            (Some(held), Some(more)) => held.merge(more),
            (held @ None, more) => *held = more,
            (Some(_), None) => {}
        }
    }
}

/// Batches on their way from a reader to its sender, with their new owner.
type Outbox = mpsc::Sender<(u32, Batch)>;

impl Copy<'_> {
    /// Reads old shard `shard`'s export and imports it, reading and importing concurrently.
    async fn shard(&self, shard: u32) -> Result<(), ShardError> {
        let url = shards::peer(&self.target.peers, shard)?;
        let records = self
            .admin
            .export_moving(url, self.token)
            .await
            .map_err(|source| ShardError::Unreachable { shard, source })?;
        // No slack: a batch waits in the channel only while every import slot is busy.
        let (outbox, batches) = mpsc::channel(0);
        futures::try_join!(self.read(shard, records, outbox), self.sender(batches))?;
        Ok(())
    }

    /// Imports the batches of `batches`, a few at a time.
    async fn sender(&self, mut batches: mpsc::Receiver<(u32, Batch)>) -> Result<(), ShardError> {
        let mut in_flight = FuturesUnordered::new();
        let mut open = true;
        while open || !in_flight.is_empty() {
            tokio::select! {
                Some(done) = in_flight.next(), if !in_flight.is_empty() => done?,
                next = batches.next(), if open && in_flight.len() < self.in_flight_limit() => {
                    match next {
                        Some((owner, batch)) => in_flight.push(self.send(owner, batch)),
                        None => open = false,
                    }
                }
            }
        }
        Ok(())
    }

    /// Groups `records` by new owner into batches and hands them to `outbox`.
    async fn read(
        &self,
        shard: u32,
        mut records: RecordStream,
        mut outbox: Outbox,
    ) -> Result<(), ShardError> {
        let mut groups: HashMap<u32, Batch> = HashMap::new();
        while let Some(record) = records.next().await {
            let record = record.map_err(|source| ShardError::Unreachable { shard, source })?;
            let owner = self.target.owner(record.key.as_bytes());
            let bytes = record.encoded_len();
            let group = groups.entry(owner).or_default();
            if !group.records.is_empty()
                && STREAM_OVERHEAD + group.bytes + bytes > self.limits.batch_bytes
                && !forward(&mut outbox, owner, std::mem::take(group)).await
            {
                return Ok(());
            }
            let Some(permit) = self
                .take_budget(&mut groups, owner, bytes, &mut outbox)
                .await
            else {
                return Ok(());
            };
            let group = groups.entry(owner).or_default();
            group.push(record, bytes, permit);
            let full = group.records.len() >= self.options.batch.max(1)
                || STREAM_OVERHEAD + group.bytes >= self.limits.batch_bytes;
            if full && !forward(&mut outbox, owner, std::mem::take(group)).await {
                return Ok(());
            }
        }
        for (owner, batch) in groups {
            if !batch.records.is_empty() && !forward(&mut outbox, owner, batch).await {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Takes the budget for a record of `bytes` bound for `owner`, with the stream overhead
    /// when it opens a batch (an import's body is its records plus that overhead). When the
    /// budget is spent it first sends every batch this reader holds, so that their bytes come
    /// back (to it or to another reader), then waits. `None` when the sender has stopped.
    async fn take_budget(
        &self,
        groups: &mut HashMap<u32, Batch>,
        owner: u32,
        bytes: usize,
        outbox: &mut Outbox,
    ) -> Option<Option<OwnedSemaphorePermit>> {
        loop {
            let opens_batch = groups.get(&owner).is_none_or(|g| g.records.is_empty());
            let charge = bytes + if opens_batch { STREAM_OVERHEAD } else { 0 };
            if let Some(permit) = self.budget.try_take(charge) {
                return Some(Some(permit));
            }
            let held: Vec<(u32, Batch)> = groups
                .drain()
                .filter(|(_, batch)| !batch.records.is_empty())
                .collect();
            if held.is_empty() {
                return Some(self.budget.take(charge).await);
            }
            for (owner, batch) in held {
                if !forward(outbox, owner, batch).await {
                    return None;
                }
            }
        }
    }

    /// Imports `batch` on `owner`; its budget is given back when this returns.
    async fn send(&self, owner: u32, batch: Batch) -> Result<(), ShardError> {
        let Batch {
            records, permit, ..
        } = batch;
        let url = shards::peer(&self.target.peers, owner)?;
        let applied = self
            .admin
            .import_if_absent(url, self.token, Fence::copy(self.target.epoch), &records)
            .await
            .map_err(|source| ShardError::import(owner, records.len(), source))?;
        let bytes: usize = records
            .iter()
            .map(|r| r.key.as_bytes().len() + r.value.as_ref().map_or(0, |v| v.len()))
            .sum();
        self.progress.send_modify(|p| {
            p.keys += records.len() as u64;
            p.bytes += bytes as u64;
            p.applied += applied;
        });
        drop(permit);
        if !self.options.pause.is_zero() {
            tokio::time::sleep(self.options.pause).await;
        }
        Ok(())
    }

    /// One import at a time while a test pauses between batches, so the pause paces the copy.
    fn in_flight_limit(&self) -> usize {
        if self.options.pause.is_zero() {
            IN_FLIGHT
        } else {
            1
        }
    }
}

/// Hands `batch` to the sender; false when the sender has stopped (it failed, and its error
/// is the copy's).
async fn forward(outbox: &mut Outbox, owner: u32, batch: Batch) -> bool {
    outbox.send((owner, batch)).await.is_ok()
}
