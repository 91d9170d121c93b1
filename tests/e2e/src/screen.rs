//! The book client's screen, read back from a pod log: header lines, then one round per line,
//! `MM:SS <letters> | hits = H (P%)`.

/// One printed round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    pub letters: String,
    pub hits: u32,
}

/// Parses a round line; header and other lines give `None`.
pub fn parse_round(line: &str) -> Option<Round> {
    let (left, right) = line.split_once(" | hits = ")?;
    let hits = right.split_whitespace().next()?.parse().ok()?;
    let letters = left.split_whitespace().last()?.to_owned();
    Some(Round { letters, hits })
}

/// Every round in a log, in order.
pub fn rounds(log: &str) -> Vec<Round> {
    log.lines().filter_map(parse_round).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_round_and_skips_headers() {
        let log = "                    abcdefghijklmnopqrstuvwxyz\n12:01 hhw.5m | hits = 2 (33%)\nnoise\n";
        assert_eq!(
            rounds(log),
            vec![Round {
                letters: "hhw.5m".into(),
                hits: 2
            }]
        );
    }
}
