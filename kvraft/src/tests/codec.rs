//! The command codec: round trips of every command, serde through it, and refusal (never a
//! panic) of truncated, trailing or random bytes.

use bytes::Bytes;
use kvproto::bulk::BulkRecord;
use kvproto::wire::ImportMode;
use kvproto::{Fence, MigrationPhase, Sharding, Topology};
use proptest::prelude::*;

use super::key;
use crate::codec::CodecError;
use crate::command::{Command, FenceCheck, Precondition, Routed};
use crate::entry_codec;
use crate::types::Entry;

fn samples() -> Vec<Command> {
    let topology = Topology::stable(
        3,
        Sharding::Jump,
        vec!["http://a:1".into(), "http://b:1".into()],
    );
    vec![
        Command::Put {
            key: key("k"),
            value: Bytes::from_static(b"\x00\xffvalue"),
            precondition: Precondition::IfVersion(u64::MAX),
            at_micros: 1_700_000_000_000_000,
            routed: Routed {
                epoch: 4,
                phase: Some(MigrationPhase::Copy),
            },
            remote: None,
        },
        Command::Put {
            key: key("empty"),
            value: Bytes::new(),
            precondition: Precondition::IfAbsent,
            at_micros: 0,
            routed: Routed::default(),
            remote: None,
        },
        Command::Delete {
            key: key("gone"),
            precondition: Precondition::None,
            at_micros: 9,
            routed: Routed {
                epoch: 1,
                phase: Some(MigrationPhase::Handoff),
            },
            remote: None,
        },
        Command::SetTopology(topology),
        Command::Import {
            mode: ImportMode::Overwrite,
            records: vec![
                BulkRecord {
                    key: key("a"),
                    version: 5,
                    value: Some(Bytes::from_static(b"x")),
                },
                BulkRecord {
                    key: key("b"),
                    version: 6,
                    value: None,
                },
            ],
            fence: FenceCheck::OnLeaderOnly,
        },
        Command::Import {
            mode: ImportMode::IfAbsent,
            records: vec![],
            fence: FenceCheck::OnLeaderOnly,
        },
        Command::Cleanup {
            fence: FenceCheck::OnLeaderOnly,
        },
        Command::Import {
            mode: ImportMode::IfAbsent,
            records: vec![BulkRecord {
                key: key("c"),
                version: 7,
                value: Some(Bytes::from_static(b"y")),
            }],
            fence: FenceCheck::AtApply(Some(Fence::copy(u64::MAX))),
        },
        Command::Import {
            mode: ImportMode::Overwrite,
            records: vec![],
            fence: FenceCheck::AtApply(None),
        },
        Command::Cleanup {
            fence: FenceCheck::AtApply(Some(Fence::stable(2))),
        },
        Command::Cleanup {
            fence: FenceCheck::AtApply(None),
        },
        Command::Put {
            key: key("moving"),
            value: Bytes::from_static(b"cas"),
            precondition: Precondition::IfVersion(41),
            at_micros: 42,
            routed: Routed {
                epoch: 2,
                phase: Some(MigrationPhase::Copy),
            },
            remote: Some(41),
        },
        Command::Delete {
            key: key("moving"),
            precondition: Precondition::None,
            at_micros: 0,
            routed: Routed::default(),
            remote: Some(u64::MAX),
        },
    ]
}

fn unhex(s: &str) -> Bytes {
    let digits: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect();
    Bytes::from(digits)
}

/// Commands as the build before fences and remote versions (phase 4b) encoded them, byte for
/// byte: a log it wrote replays with the meaning it had.
#[test]
fn commands_written_by_the_previous_build_still_decode() {
    let old = samples();
    for (i, hex) in [
        "010100016b02ffffffffffffffff00060a24181e40000000000000000004020000000700ff76616c7565",
        "01010005656d70747901000000000000000000000000000000000000000000",
        "01020004676f6e65000000000000000009000000000000000101",
        "0104000000002a4b5642310100016100000000000000050000000178020001620000000000000006000000000000000002",
        "0104010000000d4b564231000000000000000000",
        "0105",
    ]
    .into_iter()
    .enumerate()
    {
        // The samples in order, the topology (JSON, unchanged) skipped.
        let expected = &old[if i < 3 { i } else { i + 1 }];
        let bytes = unhex(hex);
        assert_eq!(Command::decode(&bytes).as_ref(), Ok(expected), "{expected}");
        // And this build writes what carries no new field exactly as before.
        assert_eq!(expected.encode(), bytes, "{expected}");
    }
}

#[test]
fn every_command_round_trips() {
    for cmd in samples() {
        let bytes = cmd.encode();
        assert_eq!(Command::decode(&bytes), Ok(cmd.clone()), "{cmd}");
        // serde sees the same bytes (JSON writes them as numbers, and reads them back).
        let json = serde_json::to_string(&cmd).expect("serializes");
        let back: Command = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, cmd);
    }
}

#[test]
fn every_truncation_and_any_trailing_byte_is_refused() {
    for cmd in samples() {
        let bytes = cmd.encode();
        for len in 0..bytes.len() {
            assert!(
                Command::decode(&bytes.slice(..len)).is_err(),
                "{cmd} cut at {len} of {}",
                bytes.len()
            );
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert_eq!(
            Command::decode(&Bytes::from(longer)),
            Err(CodecError::Trailing(1))
        );
    }
}

#[test]
fn unknown_format_and_tag_are_named() {
    assert_eq!(
        Command::decode(&Bytes::from_static(&[2, 5])),
        Err(CodecError::Format(2))
    );
    assert_eq!(
        Command::decode(&Bytes::from_static(&[1, 99])),
        Err(CodecError::Tag(99))
    );
}

#[test]
fn log_entries_round_trip_with_every_payload() {
    let membership =
        openraft::Membership::new_with_defaults(vec![[1u64, 2].into_iter().collect()], []);
    let payloads = samples()
        .into_iter()
        .map(openraft::EntryPayload::Normal)
        .chain([
            openraft::EntryPayload::Blank,
            openraft::EntryPayload::Membership(membership),
        ]);
    for (i, payload) in payloads.enumerate() {
        let index = i as u64 + 1;
        let entry = Entry {
            log_id: super::log_id(3, index),
            payload,
        };
        let raw = entry_codec::encode(&entry).expect("encodes");
        let back = entry_codec::decode(index, &raw).expect("decodes");
        assert_eq!(back.log_id, entry.log_id);
        assert_eq!(
            format!("{:?}", back.payload),
            format!("{:?}", entry.payload)
        );
        assert!(entry_codec::decode(index, &raw[..raw.len() / 2]).is_err() || raw.len() < 4);
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = Command::decode(&Bytes::from(raw.clone()));
        let _ = entry_codec::decode(1, &raw);
    }

    #[test]
    fn random_puts_round_trip(k in "[a-z]{1,20}", v in proptest::collection::vec(any::<u8>(), 0..300),
                              at in any::<u64>(), epoch in any::<u64>(), ver in any::<u64>()) {
        let cmd = Command::Put {
            key: key(&k),
            value: Bytes::from(v),
            precondition: Precondition::IfVersion(ver),
            at_micros: at,
            routed: Routed { epoch, phase: None },
            remote: None,
        };
        prop_assert_eq!(Command::decode(&cmd.encode()), Ok(cmd));
    }
}
