//! A move's fence travels in its import and cleanup entries and is judged at apply against the
//! applied topology, so every copy takes or refuses the same batches (`Fence::admits`, the rule
//! a leader checks before proposing). Entries of the build before (judged on the leader only)
//! apply as they did then.

use bytes::Bytes;
use kvproto::bulk::BulkRecord;
use kvproto::topology::Migration;
use kvproto::wire::{CleanupReport, ImportMode};
use kvproto::{Fence, MigrationPhase, Sharding, Topology};

use super::target::decode;
use super::{dump, entry, fresh, key, put, streamed};
use crate::command::{Command, FenceCheck, Outcome};
use crate::types::Entry;

fn at(epoch: u64, shards: u32, phase: Option<MigrationPhase>) -> Topology {
    let peers = (0..shards).map(|i| format!("http://s-{i}:80")).collect();
    let mut t = Topology::stable(epoch, Sharding::Modulo, peers);
    t.migration = phase.map(|phase| Migration {
        from_shards: 2,
        phase,
    });
    t
}

fn import(k: &str, fence: FenceCheck) -> Command {
    Command::Import {
        mode: ImportMode::IfAbsent,
        records: vec![BulkRecord {
            key: key(k),
            version: 7,
            value: Some(Bytes::copy_from_slice(k.as_bytes())),
        }],
        fence,
    }
}

fn cleanup(fence: FenceCheck) -> Command {
    Command::Cleanup { fence }
}

fn judged(fence: Fence) -> FenceCheck {
    FenceCheck::AtApply(Some(fence))
}

/// Shard 0 of 2, moving to 3 (epoch 2): every kind of late, early or unfenced batch, the one
/// that belongs, and the cleanups around the commit. 'f' (102) is shard 0's under both maps,
/// 'd' (100) moves away.
fn log() -> (Vec<Entry>, Vec<&'static str>) {
    let steps: Vec<(Command, &'static str)> = vec![
        (Command::SetTopology(at(1, 2, None)), "set"),
        (put("d", "d", 10), "written"),
        (import("l", FenceCheck::AtApply(None)), "fenced"),
        (
            Command::SetTopology(at(2, 3, Some(MigrationPhase::Handoff))),
            "set",
        ),
        (import("l", judged(Fence::copy(2))), "fenced"),
        (
            Command::SetTopology(at(2, 3, Some(MigrationPhase::Copy))),
            "set",
        ),
        (import("l", judged(Fence::copy(1))), "fenced"),
        (import("f", judged(Fence::copy(2))), "imported"),
        (cleanup(judged(Fence::stable(2))), "fenced"),
        (cleanup(FenceCheck::OnLeaderOnly), "conflict"),
        (Command::SetTopology(at(2, 3, None)), "set"),
        (import("r", judged(Fence::copy(2))), "fenced"),
        (cleanup(judged(Fence::stable(1))), "fenced"),
        (cleanup(judged(Fence::stable(2))), "cleaned"),
        // The old build's import: no fence judged at apply, taken whatever the topology.
        (import("x", FenceCheck::OnLeaderOnly), "imported"),
    ];
    let (cmds, kinds): (Vec<Command>, Vec<&str>) = steps.into_iter().unzip();
    let entries = cmds
        .into_iter()
        .enumerate()
        .map(|(i, c)| entry(i as u64 + 1, c))
        .collect();
    (entries, kinds)
}

fn kind(o: &Outcome) -> &'static str {
    match o {
        Outcome::TopologySet => "set",
        Outcome::Written { .. } => "written",
        Outcome::Fenced { .. } => "fenced",
        Outcome::Imported(r) if r.applied == 1 => "imported",
        Outcome::TopologyConflict { .. } => "conflict",
        Outcome::Cleaned(_) => "cleaned",
        other => panic!("unexpected outcome {other:?}"),
    }
}

#[tokio::test]
async fn fences_are_judged_at_apply_alike_on_every_copy() {
    let (log, expected) = log();
    // Copy A through openraft's streaming apply; copy B entry by entry.
    let a = streamed(&log).await;
    let a = &a.s;
    let mut b = fresh();
    let b = &mut b.s;
    let outcomes: Vec<Outcome> = log
        .iter()
        .map(|e| b.sm.apply_entry(e).expect("applies"))
        .collect();
    let kinds: Vec<&str> = outcomes.iter().map(kind).collect();
    assert_eq!(kinds, expected);
    let Outcome::Fenced { message } = &outcomes[11] else {
        unreachable!("checked above")
    };
    assert!(message.contains("epoch 2 (copy)"), "{message}");
    assert_eq!(
        outcomes[13],
        Outcome::Cleaned(CleanupReport {
            removed_keys: 1,
            removed_tombstones: 0
        }),
        "'d' moved away"
    );
    // Only the batch of the copy step and the old build's landed; no refused one left a trace.
    let records = dump(b);
    let keys: Vec<&[u8]> = records.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, vec![b"f".as_slice(), b"x"]);
    assert!(decode(b"f", &records[0].1).expect("record").live);
    assert_eq!(dump(a), records, "both copies hold the same records");
    assert_eq!(a.state_machine().topology(), b.state_machine().topology());
}
