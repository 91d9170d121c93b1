//! The operation history of a run (`--history FILE`): one JSON line per completed operation,
//! with its call and return on one monotonic clock shared by every worker, for the
//! linearizability checker in `tests/linearizability` (Porcupine).

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use kvproto::Key;
use serde::Serialize;
use tokio::time::Instant;

use crate::Error;

/// What an operation came to, as the checker reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    /// Definitely not applied: a 4xx (for a compare-and-set, its precondition failed), or a
    /// refusal before anything was applied (connection refused, 503 `draining`, `no_leader`).
    Fail,
    /// May or may not have been applied: a timeout, a 5xx, a broken connection.
    Unknown,
}

impl Outcome {
    /// The outcome of a request.
    pub fn of<T>(result: &Result<T, Error>) -> Outcome {
        result
            .as_ref()
            .map_or_else(Outcome::of_error, |_| Outcome::Ok)
    }

    /// The outcome of a failed request.
    pub fn of_error(e: &Error) -> Outcome {
        // The client reports an earlier ambiguous attempt over a later refusal, so a refused
        // request here was refused at every attempt.
        if e.http_status().is_some_and(|s| (400..500).contains(&s)) || e.refused_unapplied() {
            Outcome::Fail
        } else {
            Outcome::Unknown
        }
    }
}

/// The operation asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Op {
    Get,
    Put {
        value: String,
    },
    /// A write only if the key holds `expected` (absent: `None`), as the worker last read it.
    Cas {
        expected: Option<String>,
        value: String,
    },
}

/// One line of the history.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub client: usize,
    #[serde(flatten)]
    pub op: Op,
    pub key: String,
    /// Nanoseconds since the run began.
    pub call: u64,
    #[serde(rename = "return")]
    pub returned: u64,
    pub outcome: Outcome,
    /// What a get read (absent: `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
}

/// The history being recorded.
pub struct History {
    start: Instant,
    lines: Mutex<Vec<Line>>,
}

impl Default for History {
    fn default() -> Self {
        History {
            start: Instant::now(),
            lines: Mutex::new(Vec::new()),
        }
    }
}

impl History {
    /// Now, on the history's clock.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records an operation on `key` by `client`, called at `call`, returning now.
    pub fn record(
        &self,
        client: usize,
        key: &Key,
        op: Op,
        call: u64,
        outcome: Outcome,
        found: Option<String>,
    ) {
        let line = Line {
            client,
            op,
            key: key.as_str().to_owned(),
            call,
            returned: self.now(),
            outcome,
            found,
        };
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }

    /// Operations recorded so far.
    pub fn len(&self) -> usize {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Nothing recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes every line, in call order, to `path`.
    pub fn write_to(&self, path: &Path) -> std::io::Result<()> {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone();
        lines.sort_by_key(|l| l.call);
        let file = std::fs::File::create(path)?;
        let mut out = std::io::BufWriter::new(file);
        for line in &lines {
            serde_json::to_writer(&mut out, line)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_the_checkers_format() {
        let line = Line {
            client: 3,
            op: Op::Cas {
                expected: None,
                value: "v".into(),
            },
            key: "hot-1".into(),
            call: 10,
            returned: 20,
            outcome: Outcome::Unknown,
            found: None,
        };
        let json = serde_json::to_value(&line).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"client": 3, "op": "cas", "expected": null, "value": "v",
                "key": "hot-1", "call": 10, "return": 20, "outcome": "unknown"})
        );
    }

    #[test]
    fn a_refusal_is_a_failure_and_an_ambiguous_answer_unknown() {
        use kvproto::wire::ErrorCode;
        let status = |status, code| Error::Status {
            server: "s".into(),
            status,
            code,
            message: String::new(),
        };
        let cases = [
            (status(412, None), Outcome::Fail),
            (status(503, Some(ErrorCode::Draining)), Outcome::Fail),
            (status(503, Some(ErrorCode::NoLeader)), Outcome::Fail),
            (
                status(504, Some(ErrorCode::OutcomeUnknown)),
                Outcome::Unknown,
            ),
            (
                status(503, Some(ErrorCode::PeerUnavailable)),
                Outcome::Unknown,
            ),
            (Error::Timeout { server: "s".into() }, Outcome::Unknown),
        ];
        for (error, want) in cases {
            assert_eq!(Outcome::of_error(&error), want, "{error:?}");
        }
    }
}
