//! Errors of the command line, and the exit code each one means.

use std::process::ExitCode;

use thiserror::Error;

/// Exit codes: 0 success, 1 not found or failed, 2 usage error, 3 outcome unknown (the write
/// timed out and may have been applied: read the key before acting on it).
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_OUTCOME_UNKNOWN: u8 = 3;

#[derive(Debug, Error)]
pub enum CliError {
    #[error("{0}")]
    Client(#[from] kvclient::Error),
    #[error("usage: {0}")]
    Usage(String),
    #[error("{0}")]
    NotFound(String),
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("kubeconfig: {0}")]
    KubeConfig(String),
    #[error("{0}")]
    Failed(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) | CliError::Client(kvclient::Error::InvalidKey(_)) => {
                ExitCode::from(EXIT_USAGE)
            }
            CliError::Client(e) if e.outcome_unknown() => ExitCode::from(EXIT_OUTCOME_UNKNOWN),
            _ => ExitCode::from(EXIT_FAILED),
        }
    }
}
