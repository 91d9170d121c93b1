//! The openraft type configuration of a shard's group, and the aliases the storage uses. Only
//! this crate sees these types (docs/replication.md section 2, "Wrapped").

use kvproto::raft::Member;

use crate::command::{Command, Outcome};

openraft::declare_raft_types!(
    /// One shard's Raft group: commands in, outcomes out, members with pod and address.
    pub ShardRaft:
        D = Command,
        R = Outcome,
        NodeId = u64,
        Node = Member,
);

// Spelled out rather than through `openraft::alias` (behind the `type-alias` feature).
/// The committed leader id (term, node) of `leader_id_adv`, the default.
pub type LeaderId = openraft::impls::leader_id_adv::LeaderId<u64, u64>;
pub type LogId = openraft::LogId<LeaderId>;
pub type Vote = openraft::impls::Vote<LeaderId>;
pub type Entry = openraft::Entry<LeaderId, openraft::EntryPayload<Command, u64, Member>>;
pub type StoredMembership = openraft::StoredMembership<LeaderId, u64, Member>;
pub type Membership = openraft::Membership<u64, Member>;
pub type SnapshotMeta = openraft::SnapshotMeta<LeaderId, u64, Member>;
pub type Snapshot<SD> = openraft::Snapshot<LeaderId, u64, Member, SD>;
pub type RaftMetrics = openraft::RaftMetrics<ShardRaft>;
pub type ClientWriteError = openraft::error::ClientWriteError<ShardRaft>;
pub type ForwardToLeader = openraft::error::ForwardToLeader<ShardRaft>;
pub type RaftError<E> = openraft::error::RaftError<ShardRaft, E>;
