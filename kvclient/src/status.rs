//! The book's status letters: what one check of one key found.

use crate::error::Error;

/// The outcome of checking one key, shown as one letter on the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// `h`: the key held the expected value.
    Hit,
    /// `w`: the key was missing and has now been written.
    Written,
    /// `m`: the key is missing and the client is read-only.
    Miss,
    /// `x`: the stored value is wrong.
    Wrong,
    /// `.`: the server could not be reached or did not answer in time.
    Unreachable,
    /// A digit: the first digit of the HTTP status, e.g. `5` for 503.
    Http(u16),
}

impl Outcome {
    /// The letter the book prints for this outcome.
    pub fn letter(self) -> char {
        match self {
            Outcome::Hit => 'h',
            Outcome::Written => 'w',
            Outcome::Miss => 'm',
            Outcome::Wrong => 'x',
            Outcome::Unreachable => '.',
            Outcome::Http(status @ 100..=999) => {
                char::from_digit(u32::from(status / 100), 10).unwrap_or('?')
            }
            Outcome::Http(_) => '?',
        }
    }

    /// What a failed request shows. Errors raised before anything was sent (a bad key, a
    /// shard with no server) have no status of their own and show as `4` (a client error)
    /// and `.` (nowhere to send it) respectively; a malformed answer shows as `?`.
    pub fn from_error(err: &Error) -> Outcome {
        if err.is_unreachable() {
            return Outcome::Unreachable;
        }
        match err {
            Error::InvalidKey(_) | Error::InvalidAddress { .. } => Outcome::Http(400),
            Error::NoServerForShard(_) => Outcome::Unreachable,
            other => other.http_status().map_or(Outcome::Http(0), Outcome::Http),
        }
    }

    /// True for `h`.
    pub fn is_hit(self) -> bool {
        self == Outcome::Hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvproto::wire::ErrorCode;

    #[test]
    fn letters_follow_the_book() {
        let letters: String = [
            Outcome::Hit,
            Outcome::Written,
            Outcome::Miss,
            Outcome::Wrong,
            Outcome::Unreachable,
            Outcome::Http(503),
            Outcome::Http(404),
            Outcome::Http(200),
        ]
        .iter()
        .map(|o| o.letter())
        .collect();
        assert_eq!(letters, "hwmx.542");
    }

    #[test]
    fn errors_map_to_their_status_digit_or_a_dot() {
        let draining = Error::Status {
            server: "s".into(),
            status: 503,
            code: Some(ErrorCode::Draining),
            message: "draining".into(),
        };
        assert_eq!(Outcome::from_error(&draining).letter(), '5');
        let timeout = Error::Timeout { server: "s".into() };
        assert_eq!(Outcome::from_error(&timeout).letter(), '.');
        let precondition = Error::PreconditionFailed {
            server: "s".into(),
            message: String::new(),
        };
        assert_eq!(Outcome::from_error(&precondition).letter(), '4');
        let bad = Error::BadResponse {
            server: "s".into(),
            reason: "garbage".into(),
        };
        assert_eq!(Outcome::from_error(&bad).letter(), '?');
    }
}
