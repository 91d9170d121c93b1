//! A small records store implementing the apply interface for the tests: one record per key,
//! `[live: u8][version: u64 BE][value]`, the same rules as kvserver's write path (a
//! precondition against the live value, tombstones during a migration, if-absent and
//! overwrite imports that never move a version back).

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use fjall::Keyspace;
use kvproto::Key;
use kvproto::bulk::BulkRecord;
use kvproto::wire::{CleanupReport, ImportMode, ImportReport};

use crate::apply::{ApplyTarget, Tx};
use crate::command::{DeleteMode, Precondition, WriteOutcome};
use crate::error::ApplyError;

#[derive(Default)]
pub struct TestTarget {
    /// How many times the records were replaced (snapshot installs) or opened.
    pub resets: AtomicU64,
    /// Fail the apply call with this number (counted from 1), to cut an apply short.
    pub fail_at_call: AtomicU64,
    calls: AtomicU64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub live: bool,
    pub version: u64,
    pub value: Vec<u8>,
}

pub fn encode(live: bool, version: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + value.len());
    out.push(u8::from(live));
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(value);
    out
}

pub fn decode(key: &[u8], raw: &[u8]) -> Result<Stored, ApplyError> {
    let corrupt = || ApplyError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        detail: format!("{} bytes", raw.len()),
    };
    if raw.len() < 9 {
        return Err(corrupt());
    }
    let version = u64::from_be_bytes(raw[1..9].try_into().map_err(|_| corrupt())?);
    Ok(Stored {
        live: raw[0] == 1,
        version,
        value: raw[9..].to_vec(),
    })
}

impl TestTarget {
    fn call(&self) -> Result<(), ApplyError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_at_call.load(Ordering::SeqCst) == n {
            return Err(ApplyError::Other(format!("injected failure at call {n}")));
        }
        Ok(())
    }

    fn current(tx: &Tx<'_>, key: &Key) -> Result<Option<Stored>, ApplyError> {
        match tx.get(key.as_bytes())? {
            None => Ok(None),
            Some(raw) => decode(key.as_bytes(), &raw).map(Some),
        }
    }

    /// The live version: what is stored here (a tombstone: none), else the previous owner's.
    fn live(tx: &Tx<'_>, key: &Key, remote: Option<u64>) -> Result<Option<u64>, ApplyError> {
        Ok(match Self::current(tx, key)? {
            Some(s) => s.live.then_some(s.version),
            None => remote,
        })
    }

    fn refused(pre: Precondition, live: Option<u64>) -> Option<WriteOutcome> {
        let holds = match pre {
            Precondition::None => true,
            Precondition::IfAbsent => live.is_none(),
            Precondition::IfVersion(v) => live == Some(v),
        };
        (!holds).then_some(WriteOutcome::PreconditionFailed(live))
    }
}

impl ApplyTarget for TestTarget {
    type Effects = ();

    fn put(
        &self,
        tx: &mut Tx<'_>,
        key: &Key,
        value: &Bytes,
        precondition: Precondition,
        remote: Option<u64>,
        version: u64,
    ) -> Result<(WriteOutcome, ()), ApplyError> {
        self.call()?;
        let live = Self::live(tx, key, remote)?;
        if let Some(refused) = Self::refused(precondition, live) {
            return Ok((refused, ()));
        }
        tx.insert(key.as_bytes(), encode(true, version, value));
        Ok((WriteOutcome::Written(version), ()))
    }

    fn delete(
        &self,
        tx: &mut Tx<'_>,
        key: &Key,
        precondition: Precondition,
        remote: Option<u64>,
        version: u64,
        mode: DeleteMode,
    ) -> Result<(WriteOutcome, ()), ApplyError> {
        self.call()?;
        // As kvserver: a removing delete (stable topology) knows only what is stored here.
        let remote = match mode {
            DeleteMode::Remove => None,
            DeleteMode::Tombstone => remote,
        };
        let live = Self::live(tx, key, remote)?;
        if let Some(refused) = Self::refused(precondition, live) {
            return Ok((refused, ()));
        }
        if live.is_none() {
            return Ok((WriteOutcome::NotFound, ()));
        }
        match mode {
            DeleteMode::Remove => tx.remove(key.as_bytes()),
            DeleteMode::Tombstone => tx.insert(key.as_bytes(), encode(false, version, b"")),
        }
        Ok((WriteOutcome::Written(version), ()))
    }

    fn import(
        &self,
        tx: &mut Tx<'_>,
        mode: ImportMode,
        records: &[BulkRecord],
    ) -> Result<(ImportReport, ()), ApplyError> {
        self.call()?;
        let mut report = ImportReport::default();
        for r in records {
            let stored = Self::current(tx, &r.key)?;
            let skip = match (mode, &stored) {
                (_, None) => false,
                (ImportMode::IfAbsent, Some(_)) => true,
                (ImportMode::Overwrite, Some(s)) => s.version >= r.version,
            };
            if skip {
                report.skipped += 1;
                continue;
            }
            let raw = match &r.value {
                Some(v) => encode(true, r.version, v),
                None => encode(false, r.version, b""),
            };
            tx.insert(r.key.as_bytes(), raw);
            report.applied += 1;
        }
        Ok((report, ()))
    }

    fn cleanup(
        &self,
        tx: &mut Tx<'_>,
        owned: &dyn Fn(&Key) -> bool,
    ) -> Result<(CleanupReport, ()), ApplyError> {
        self.call()?;
        let mut report = CleanupReport::default();
        let mut drop = Vec::new();
        for guard in tx.records().iter() {
            let (k, v) = guard.into_inner()?;
            let key = Key::from_bytes(&k).map_err(|e| ApplyError::Other(e.to_string()))?;
            if !owned(&key) {
                if decode(&k, &v)?.live {
                    report.removed_keys += 1;
                } else {
                    report.removed_tombstones += 1;
                }
                drop.push(k);
            }
        }
        for k in drop {
            tx.remove(&k);
        }
        Ok((report, ()))
    }

    fn version_floor(&self, records: &Keyspace) -> Result<u64, ApplyError> {
        let mut floor = 0;
        for guard in records.iter() {
            let (k, v) = guard.into_inner()?;
            floor = floor.max(decode(&k, &v)?.version);
        }
        Ok(floor)
    }

    fn committed(&self, _effects: ()) {}

    fn reset(&self, _records: &Keyspace) {
        self.resets.fetch_add(1, Ordering::SeqCst);
    }
}
