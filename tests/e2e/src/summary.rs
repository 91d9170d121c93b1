//! The one line each fault or replication case prints of its figures, kept for the run's
//! summary (`tests/faults/run.sh` sets `$FAULTS_SUMMARY` and prints the file at the end).

use std::io::Write;

use crate::Result;

/// Prints `line` and appends it to `$FAULTS_SUMMARY` when that is set.
pub fn record(line: &str) -> Result<()> {
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("FAULTS_SUMMARY") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(f, "{line}")?;
    }
    Ok(())
}
