//! The boot guard (docs/replication.md section 4, `--sync batch`): a copy whose machine lost
//! power may have lost the tail of a log it had reported flushed, and a leader that sees a
//! follower's log go backwards panics. So `raft_meta.boot` holds the kernel's boot id and a
//! clean-shutdown marker: a new boot id without the marker means the page cache may have been
//! lost, and the copy must not trust its log (it rejoins as a new node). kill -9 keeps the boot
//! id, so it keeps the log.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::log_store::Durability;
use crate::meta::{Meta, name};

/// Where Linux publishes the boot id (not namespaced: the node's, also inside a pod).
pub const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// What the stored marker says about this start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootVerdict {
    /// No marker: a volume that never ran a group.
    Fresh,
    /// The machine did not reboot since the last run (a process restart, kill -9 included).
    SameBoot,
    /// A reboot after a clean shutdown: everything was synced first.
    CleanReboot,
    /// A reboot without a clean shutdown: unsynced appends may be gone.
    UncleanReboot { previous_boot_id: String },
}

impl BootVerdict {
    /// Whether the log can be trusted under `durability`: only an unclean reboot in batch mode
    /// (appends acknowledged before their sync) may have lost what was reported flushed.
    pub fn trusts_log(&self, durability: Durability) -> bool {
        !matches!(
            (self, durability),
            (BootVerdict::UncleanReboot { .. }, Durability::Batch)
        )
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    boot_id: String,
    clean: bool,
}

/// Reads the boot id at `path` (normally [`BOOT_ID_PATH`]).
pub fn read_boot_id(path: &Path) -> Result<String, StorageError> {
    let raw = std::fs::read_to_string(path).map_err(StorageError::BootId)?;
    let id = raw.trim();
    if id.is_empty() {
        return Err(StorageError::BootId(std::io::Error::other(format!(
            "{} is empty",
            path.display()
        ))));
    }
    Ok(id.to_owned())
}

/// Judges the stored marker against `boot_id`, then marks the volume running (not clean)
/// under this boot, synced, before the group starts.
pub(crate) fn check_and_mark_running(
    meta: &Meta,
    boot_id: &str,
) -> Result<BootVerdict, StorageError> {
    let verdict = match meta.get::<Marker>(name::BOOT)? {
        None => BootVerdict::Fresh,
        Some(m) if m.boot_id == boot_id => BootVerdict::SameBoot,
        Some(m) if m.clean => BootVerdict::CleanReboot,
        Some(m) => BootVerdict::UncleanReboot {
            previous_boot_id: m.boot_id,
        },
    };
    meta.put_synced(
        name::BOOT,
        &Marker {
            boot_id: boot_id.to_owned(),
            clean: false,
        },
    )?;
    Ok(verdict)
}

/// Marks a clean shutdown: syncs everything, then the marker.
pub(crate) fn mark_clean(meta: &Meta, boot_id: &str) -> Result<(), StorageError> {
    meta.db.persist(fjall::PersistMode::SyncAll)?;
    meta.put_synced(
        name::BOOT,
        &Marker {
            boot_id: boot_id.to_owned(),
            clean: true,
        },
    )
}
