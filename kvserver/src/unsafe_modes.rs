//! The deliberately broken replication modes (docs/replication.md section 10), in a build with
//! the `unsafe-fault-modes` feature only: a test turns one on to show the linearizability
//! checker catching it (tests/raft_broken.rs). A release build has neither flag, so clap
//! refuses them as unknown arguments.

use clap::{Args, ValueEnum};
use kvraft::UnsafeMode;

/// `--unsafe-ack`: when a replicated write is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnsafeAck {
    /// Once the entry is in the leader's own log, before a quorum has it.
    Local,
}

/// `--unsafe-read`: what a read waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnsafeRead {
    /// Nothing: any copy serves its applied state as if it were current.
    Local,
}

/// The broken-mode flags. kvraft runs one broken mode at a time, so they exclude each other.
#[derive(Debug, Clone, Default, Args)]
pub struct UnsafeFlags {
    /// BROKEN ON PURPOSE, for tests: `local` answers a replicated put or delete once it is in
    /// the leader's own log, before a quorum has it (a cut-off leader acknowledges writes that
    /// are then lost).
    #[arg(
        long,
        env = "KV_UNSAFE_ACK",
        value_enum,
        conflicts_with = "unsafe_read"
    )]
    pub unsafe_ack: Option<UnsafeAck>,

    /// BROKEN ON PURPOSE, for tests: `local` lets every read pass the read barrier (a deposed
    /// leader serves stale values).
    #[arg(long, env = "KV_UNSAFE_READ", value_enum)]
    pub unsafe_read: Option<UnsafeRead>,
}

impl UnsafeFlags {
    /// kvraft's mode for these flags.
    pub fn mode(&self) -> UnsafeMode {
        match (self.unsafe_ack, self.unsafe_read) {
            (Some(UnsafeAck::Local), _) => UnsafeMode::AckLocal,
            (None, Some(UnsafeRead::Local)) => UnsafeMode::ReadLocal,
            (None, None) => UnsafeMode::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::Config;
    use kvraft::UnsafeMode;

    fn mode(extra: &[&str]) -> Result<UnsafeMode, clap::error::ErrorKind> {
        let args = std::iter::once("kvserver").chain(extra.iter().copied());
        Config::try_parse_from(args)
            .map(|c| c.unsafe_mode())
            .map_err(|e| e.kind())
    }

    #[test]
    fn each_flag_selects_its_mode_and_none_is_the_default() {
        assert_eq!(mode(&[]), Ok(UnsafeMode::None));
        assert_eq!(mode(&["--unsafe-ack=local"]), Ok(UnsafeMode::AckLocal));
        assert_eq!(mode(&["--unsafe-read", "local"]), Ok(UnsafeMode::ReadLocal));
    }

    #[test]
    fn both_at_once_or_another_value_is_refused() {
        assert_eq!(
            mode(&["--unsafe-ack=local", "--unsafe-read=local"]),
            Err(clap::error::ErrorKind::ArgumentConflict)
        );
        assert_eq!(
            mode(&["--unsafe-ack=quorum"]),
            Err(clap::error::ErrorKind::InvalidValue)
        );
    }
}
