//! Generations of the records keyspace. Generation 0 is kvserver's `kv` keyspace as it is
//! today, so a factor-1 volume needs no migration; a snapshot install writes generation
//! `g + 1` beside the serving one and flips `raft_meta.records_gen` in one batch. Any other
//! generation found at open is what a crash left between stream and flip (or between flip and
//! drop), and is deleted.

use fjall::{Database, Keyspace, KeyspaceCreateOptions};

use crate::error::StorageError;
use crate::meta::{Meta, name};

/// kvserver's records keyspace (`kvserver/src/storage/engine.rs`), generation 0.
pub const RECORDS_KEYSPACE: &str = "kv";
/// kvserver's memtable size for records (fixed when a keyspace is created).
const MEMTABLE_BYTES: u64 = 8 << 20;

/// The keyspace name of generation `generation`.
pub(crate) fn name_of(generation: u64) -> String {
    if generation == 0 {
        RECORDS_KEYSPACE.to_owned()
    } else {
        format!("{RECORDS_KEYSPACE}.{generation}")
    }
}

/// The generation a keyspace name is, if it is one of ours.
fn generation_of(name: &str) -> Option<u64> {
    if name == RECORDS_KEYSPACE {
        return Some(0);
    }
    name.strip_prefix(RECORDS_KEYSPACE)?
        .strip_prefix('.')?
        .parse()
        .ok()
}

pub(crate) fn open_keyspace(db: &Database, generation: u64) -> Result<Keyspace, StorageError> {
    Ok(db.keyspace(&name_of(generation), || {
        KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES)
    })?)
}

/// Opens the serving generation and deletes every other one.
pub(crate) fn open_current(db: &Database, meta: &Meta) -> Result<(u64, Keyspace), StorageError> {
    let current: u64 = meta.get(name::RECORDS_GEN)?.unwrap_or(0);
    drop_others(db, current)?;
    Ok((current, open_keyspace(db, current)?))
}

/// Deletes every records generation but `keep`.
pub(crate) fn drop_others(db: &Database, keep: u64) -> Result<u64, StorageError> {
    let mut dropped = 0;
    for ks_name in db.list_keyspace_names() {
        let ks_name: &str = &ks_name;
        match generation_of(ks_name) {
            Some(g) if g != keep => {
                tracing::info!(keyspace = ks_name, "dropping an orphan records generation");
                let ks = open_keyspace(db, g)?;
                db.delete_keyspace(ks)?;
                dropped += 1;
            }
            _ => {}
        }
    }
    Ok(dropped)
}

/// The highest records generation present (the next install uses one above it).
pub(crate) fn highest(db: &Database) -> u64 {
    db.list_keyspace_names()
        .iter()
        .filter_map(|n| generation_of(n))
        .max()
        .unwrap_or(0)
}

/// A generation no keyspace has used since `last` was handed out: above every present one
/// and above `last`, which it becomes (snapshot receivers stage into it).
pub(crate) fn next_generation(db: &Database, last: &mut u64) -> u64 {
    let next = highest(db).max(*last) + 1;
    *last = next;
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_names_round_trip() {
        for g in [0, 1, 42] {
            assert_eq!(generation_of(&name_of(g)), Some(g));
        }
        assert_eq!(name_of(0), "kv");
        for other in ["raft_log", "kvx", "kv.", "kv.x", "meta"] {
            assert_eq!(generation_of(other), None, "{other}");
        }
    }
}
