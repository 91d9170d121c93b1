//! The report on stdout: human-readable text, or one line of JSON with `--json`.

use std::io::Write;

use kvclient::load_report::LoadReport;

use crate::cli::error::CliError;

/// Prints `report` as JSON (one line) or as text.
pub fn print(report: &LoadReport, json: bool) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, report)
            .map_err(|e| CliError::Failed(format!("cannot write JSON: {e}")))?;
        out.write_all(b"\n")?;
    } else {
        out.write_all(render(report).as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

/// The human-readable report.
pub fn render(r: &LoadReport) -> String {
    let mut text = format!(
        "load: {} requests in {:.1} s ({:.1} req/s): {} gets, {} puts, {} errors\n\
         latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
        r.requests,
        r.duration_s,
        r.requests_per_s,
        r.gets,
        r.puts,
        r.errors,
        r.p50_ms,
        r.p99_ms,
        r.max_ms
    );
    if !r.errors_by_letter.is_empty() {
        text.push_str(&format!("errors: {}\n", pairs(&r.errors_by_letter)));
    }
    if r.unknown_outcome_writes > 0 {
        text.push_str(&format!(
            "{} writes of unknown outcome (may have been applied; the read-back accepts either)\n",
            r.unknown_outcome_writes
        ));
    }
    if r.retries > 0 {
        text.push_str(&format!("{} requests retried\n", r.retries));
    }
    if !r.write_gap_ms_by_shard.is_empty() {
        text.push_str(&format!(
            "longest time without an acknowledged write, ms by shard: {}\n",
            pairs(&r.write_gap_ms_by_shard)
        ));
    }
    text.push_str(&format!(
        "verify: {} keys read back, {} lost, {} wrong, {} unreadable, {} stale reads\n",
        r.verify.keys_checked,
        r.verify.lost,
        r.verify.wrong,
        r.verify.unreadable,
        r.verify.stale_reads
    ));
    text
}

/// `k=v k=v ...`, values rounded to whole numbers (counts and milliseconds).
fn pairs<K: std::fmt::Display, V: std::fmt::Display>(
    map: impl IntoIterator<Item = (K, V)>,
) -> String {
    map.into_iter()
        .map(|(k, v)| format!("{k}={v:.0}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_every_figure() {
        let report = LoadReport {
            requests: 10,
            errors: 1,
            errors_by_letter: [(".".to_string(), 1)].into(),
            retries: 3,
            write_gap_ms_by_shard: [("1".to_string(), 2150.0)].into(),
            ..LoadReport::default()
        };
        let text = render(&report);
        for word in [
            "req/s",
            "p50",
            "p99",
            "errors: .=1",
            "lost",
            "wrong",
            "3 requests retried",
            "1=2150",
        ] {
            assert!(text.contains(word), "{word} missing in {text}");
        }
    }
}
