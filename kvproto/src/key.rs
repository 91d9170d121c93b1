//! What a key is. Every route, the client and the bulk decoder validate keys with [`Key::new`],
//! so a key that is stored is always one that can be listed, routed and sent back.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest key, in bytes after percent-decoding.
pub const MAX_KEY_BYTES: usize = 250;

/// Why a key was refused. The message is meant for the user who sent it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("key is empty: keys are 1 to {MAX_KEY_BYTES} bytes")]
    Empty,
    #[error("key is {0} bytes long: keys are 1 to {MAX_KEY_BYTES} bytes")]
    TooLong(usize),
    #[error("key is not valid UTF-8 after percent-decoding")]
    NotUtf8,
    #[error(
        "key contains a control character (U+{0:04X}); NUL and other control characters are not allowed"
    )]
    ControlCharacter(u32),
    #[error("key contains '/', which is not allowed")]
    Slash,
    #[error("key contains ',', which would break the comma-separated /allKeys listing")]
    Comma,
    #[error("key {0:?} is reserved: '.' and '..' are not allowed as whole keys")]
    DotName(&'static str),
}

/// A validated key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Key(String);

impl Key {
    /// Validates raw (already decoded) key text.
    pub fn new(text: impl Into<String>) -> Result<Self, KeyError> {
        let text = text.into();
        validate(&text)?;
        Ok(Key(text))
    }

    /// Validates raw key bytes, e.g. from the bulk stream.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() > MAX_KEY_BYTES {
            return Err(KeyError::TooLong(bytes.len()));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| KeyError::NotUtf8)?;
        Key::new(text)
    }

    /// Decodes one percent-encoded URL path segment (as sent on the wire) and validates it.
    /// `..%2F..%2Fetc%2Fpasswd` decodes to a key with '/', and is refused.
    pub fn from_path_segment(segment: &str) -> Result<Self, KeyError> {
        let bytes: Vec<u8> = percent_decode_str(segment).collect();
        if bytes.is_empty() {
            return Err(KeyError::Empty);
        }
        Key::from_bytes(&bytes)
    }

    /// The key as a URL path segment: everything but unreserved characters is percent-encoded.
    pub fn to_path_segment(&self) -> String {
        utf8_percent_encode(&self.0, PATH_SEGMENT).to_string()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// RFC 3986 unreserved characters stay as they are; everything else is encoded.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn validate(text: &str) -> Result<(), KeyError> {
    match text.len() {
        0 => return Err(KeyError::Empty),
        n if n > MAX_KEY_BYTES => return Err(KeyError::TooLong(n)),
        _ => {}
    }
    match text {
        "." => return Err(KeyError::DotName(".")),
        ".." => return Err(KeyError::DotName("..")),
        _ => {}
    }
    for c in text.chars() {
        if c.is_control() {
            return Err(KeyError::ControlCharacter(u32::from(c)));
        }
        match c {
            '/' => return Err(KeyError::Slash),
            ',' => return Err(KeyError::Comma),
            _ => {}
        }
    }
    Ok(())
}

impl TryFrom<String> for Key {
    type Error = KeyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Key::new(value)
    }
}

impl From<Key> for String {
    fn from(key: Key) -> Self {
        key.0
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Key {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Key::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_book_keys_and_ordinary_names() {
        for k in [
            "a",
            "z",
            "user:42",
            "caf\u{e9}",
            "a.b",
            "...",
            &"k".repeat(250),
        ] {
            assert!(Key::new(k).is_ok(), "{k}");
        }
    }

    #[test]
    fn refuses_every_traversal_variant() {
        for seg in [
            "..",
            ".",
            "%2E%2E",
            "%2e.",
            "..%2F..%2Fetc%2Fpasswd",
            "..%2f..%2fetc%2fpasswd",
            "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
            "a%2Fb",
            "%00",
            "a%00b",
            "%0A",
            "%7F",
            "%C2%85",
        ] {
            assert!(
                Key::from_path_segment(seg).is_err(),
                "{seg} must be refused"
            );
        }
    }

    #[test]
    fn errors_say_why() {
        assert_eq!(Key::new(""), Err(KeyError::Empty));
        assert_eq!(Key::new("k".repeat(251)), Err(KeyError::TooLong(251)));
        assert_eq!(Key::from_bytes(&[0xff, 0xfe]), Err(KeyError::NotUtf8));
        assert_eq!(Key::new("a\u{0}"), Err(KeyError::ControlCharacter(0)));
        assert_eq!(Key::new("a/b"), Err(KeyError::Slash));
        assert_eq!(Key::new("a,b"), Err(KeyError::Comma));
        assert_eq!(Key::new(".."), Err(KeyError::DotName("..")));
        assert!(
            KeyError::TooLong(300)
                .to_string()
                .contains("1 to 250 bytes")
        );
    }

    proptest! {
        #[test]
        fn path_segment_round_trips(text in "[^\\x00-\\x1f\\x7f-\\x9f/,]{1,60}") {
            prop_assume!(text != "." && text != "..");
            let key = Key::new(text.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back = Key::from_path_segment(&key.to_path_segment()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back.as_str(), text.as_str());
        }

        #[test]
        fn validation_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Key::from_bytes(&bytes);
            if let Ok(s) = std::str::from_utf8(&bytes) { let _ = Key::from_path_segment(s); }
        }
    }
}
