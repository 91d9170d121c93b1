//! Cluster tests: three real groups talking over loopback sockets (`harness.rs`), for
//! elections and replication (`replication.rs`), failover and partitions (`failover.rs`),
//! leadership transfer and membership changes (`membership.rs`), catching up by snapshot
//! (`catch_up.rs`), the RPC guard (`guard.rs`) and, with the feature, the broken modes
//! (`unsafe_modes.rs`).

mod catch_up;
mod failover;
mod guard;
mod harness;
mod membership;
mod replication;
#[cfg(feature = "unsafe-fault-modes")]
mod unsafe_modes;
