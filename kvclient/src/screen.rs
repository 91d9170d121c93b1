//! The book's screen, as pure functions of what was checked, so it can be tested byte for byte.
//!
//! ```text
//!                     abcdefghijklmnopqrstuvwxyz      <- 20 spaces, then the keys
//!                     --------------------------
//!                     12012012012012012012012012      <- the shard of each key: ord(c) % N
//!                     --------------------------
//! 04:07 hh.hh.hh.hh.hh.hh.hh.hh.hh | hits = 18 (69%)
//! ```
//! Each round line is the wall clock's `MM:SS` (minutes and seconds of the local time, as the
//! book prints it), a space, one letter per key, then ` | hits = H (P%)` where
//! `P = floor(100 * H / keys)`: Python's `int(100 * hits / len(keys))`.
//!
//! With many keys (`--keys N`) letters would not fit a line: the header is one summary line and
//! each round prints the count of every letter instead (see [`compact_header`], [`compact_line`]).

use std::fmt::Write as _;

use chrono::Timelike;

use crate::status::Outcome;

/// Indentation of the header lines.
pub const INDENT: usize = 20;

/// The book's keys: `a` to `z`.
pub fn book_keys() -> Vec<String> {
    ('a'..='z').map(String::from).collect()
}

/// The four header lines: keys, dashes, the shard of each key, dashes.
pub fn header(keys: &[String], shards: &[u32]) -> String {
    let pad = " ".repeat(INDENT);
    let names: String = keys.concat();
    let dashes = "-".repeat(names.chars().count());
    let digits: String = shards.iter().map(u32::to_string).collect();
    format!("{pad}{names}\n{pad}{dashes}\n{pad}{digits}\n{pad}{dashes}\n")
}

/// One round: `MM:SS letters | hits = H (P%)`.
pub fn round_line(clock: &str, outcomes: &[Outcome]) -> String {
    let letters: String = outcomes.iter().map(|o| o.letter()).collect();
    format!("{clock} {letters}{}\n", hits_suffix(outcomes))
}

/// The summary header for generated keys: how many keys each shard owns.
pub fn compact_header(keys: usize, shard_count: u32, shards: &[u32]) -> String {
    let mut per_shard = vec![0usize; shard_count.max(1) as usize];
    for &s in shards {
        if let Some(n) = per_shard.get_mut(s as usize) {
            *n += 1;
        }
    }
    let mut line = format!("{keys} keys over {shard_count} shards:");
    for (shard, n) in per_shard.iter().enumerate() {
        let _ = write!(line, " {shard}={n}");
    }
    line.push('\n');
    line
}

/// One round for generated keys: `MM:SS h=H w=W m=M x=X .=U [d=N...] | hits = H (P%)`, where
/// `d=N` counts HTTP errors by first digit and appears only for digits that occurred.
pub fn compact_line(clock: &str, outcomes: &[Outcome]) -> String {
    let count = |letter: char| outcomes.iter().filter(|o| o.letter() == letter).count();
    let mut line = format!(
        "{clock} h={} w={} m={} x={} .={}",
        count('h'),
        count('w'),
        count('m'),
        count('x'),
        count('.')
    );
    for letter in ['1', '2', '3', '4', '5', '6', '7', '8', '9', '0', '?'] {
        let n = count(letter);
        if n > 0 {
            let _ = write!(line, " {letter}={n}");
        }
    }
    line.push_str(&hits_suffix(outcomes));
    line.push('\n');
    line
}

/// The line printed when the routing shard count changes (then the new header follows).
pub fn topology_changed(from: u32, to: u32, epoch: u64) -> String {
    format!("topology changed: {from} -> {to} shards (epoch {epoch})\n")
}

/// `MM:SS` of a wall-clock time.
pub fn clock<T: Timelike>(time: &T) -> String {
    format!("{:02}:{:02}", time.minute(), time.second())
}

/// `floor(100 * hits / keys)`, 0 for no keys.
pub fn hit_percent(hits: usize, keys: usize) -> usize {
    (hits * 100).checked_div(keys).unwrap_or(0)
}

fn hits_suffix(outcomes: &[Outcome]) -> String {
    let hits = outcomes.iter().filter(|o| o.is_hit()).count();
    format!(" | hits = {hits} ({}%)", hit_percent(hits, outcomes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvproto::Sharding;

    fn shards(n: u32) -> Vec<u32> {
        book_keys()
            .iter()
            .map(|k| Sharding::Modulo.shard_of(k.as_bytes(), n))
            .collect()
    }

    const PAD: &str = "                    ";

    #[test]
    fn golden_header_for_one_server() {
        let expected = format!(
            "{PAD}abcdefghijklmnopqrstuvwxyz\n{PAD}--------------------------\n{PAD}00000000000000000000000000\n{PAD}--------------------------\n"
        );
        assert_eq!(header(&book_keys(), &shards(1)), expected);
    }

    #[test]
    fn golden_header_for_two_servers() {
        let expected = format!(
            "{PAD}abcdefghijklmnopqrstuvwxyz\n{PAD}--------------------------\n{PAD}10101010101010101010101010\n{PAD}--------------------------\n"
        );
        assert_eq!(header(&book_keys(), &shards(2)), expected);
    }

    #[test]
    fn golden_header_for_three_servers() {
        let expected = format!(
            "{PAD}abcdefghijklmnopqrstuvwxyz\n{PAD}--------------------------\n{PAD}12012012012012012012012012\n{PAD}--------------------------\n"
        );
        assert_eq!(header(&book_keys(), &shards(3)), expected);
        // Every header line is the indent plus one column per key.
        for line in expected.lines() {
            assert_eq!(line.len(), INDENT + 26);
            assert!(line.starts_with(PAD));
        }
    }

    #[test]
    fn golden_round_lines() {
        // Three servers, server 0 (c, f, i, ...) unreachable: 8 dots, 18 hits.
        let outcomes: Vec<Outcome> = shards(3)
            .iter()
            .map(|&s| {
                if s == 0 {
                    Outcome::Unreachable
                } else {
                    Outcome::Hit
                }
            })
            .collect();
        assert_eq!(
            round_line("04:07", &outcomes),
            "04:07 hh.hh.hh.hh.hh.hh.hh.hh.hh | hits = 18 (69%)\n"
        );
        let first_round = vec![Outcome::Written; 26];
        assert_eq!(
            round_line("59:58", &first_round),
            "59:58 wwwwwwwwwwwwwwwwwwwwwwwwww | hits = 0 (0%)\n"
        );
        let mut mixed = vec![Outcome::Hit; 26];
        mixed[0] = Outcome::Miss;
        mixed[1] = Outcome::Wrong;
        mixed[2] = Outcome::Http(503);
        assert_eq!(
            round_line("00:00", &mixed),
            "00:00 mx5hhhhhhhhhhhhhhhhhhhhhhh | hits = 23 (88%)\n"
        );
        assert_eq!(
            round_line("00:01", &[Outcome::Hit; 26]),
            "00:01 hhhhhhhhhhhhhhhhhhhhhhhhhh | hits = 26 (100%)\n"
        );
    }

    #[test]
    fn percent_is_floored_like_python_int() {
        assert_eq!(hit_percent(1, 26), 3);
        assert_eq!(hit_percent(25, 26), 96);
        assert_eq!(hit_percent(0, 0), 0);
    }

    #[test]
    fn compact_lines_count_letters() {
        let outcomes = [
            Outcome::Hit,
            Outcome::Hit,
            Outcome::Unreachable,
            Outcome::Http(503),
        ];
        assert_eq!(
            compact_line("10:00", &outcomes),
            "10:00 h=2 w=0 m=0 x=0 .=1 5=1 | hits = 2 (50%)\n"
        );
        assert_eq!(
            compact_header(4, 3, &[0, 1, 1, 2]),
            "4 keys over 3 shards: 0=1 1=2 2=1\n"
        );
    }

    #[test]
    fn clock_is_minutes_and_seconds() {
        let t = chrono::NaiveTime::from_hms_opt(13, 4, 7).unwrap();
        assert_eq!(clock(&t), "04:07");
        assert_eq!(
            topology_changed(3, 5, 2),
            "topology changed: 3 -> 5 shards (epoch 2)\n"
        );
    }
}
