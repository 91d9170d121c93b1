//! Key decoding: `Key::new`, `Key::from_bytes` and `Key::from_path_segment` must accept exactly
//! the keys the rules allow, agree with one another, and round-trip through a path segment.

use kvproto::Key;
use kvproto::key::MAX_KEY_BYTES;
use percent_encoding::percent_decode;

/// Runs every key decoder over `data` (as bytes, and as text when it is UTF-8).
pub fn check(data: &[u8]) {
    let from_bytes = Key::from_bytes(data);
    match std::str::from_utf8(data) {
        Ok(text) => {
            assert_eq!(
                from_bytes.is_ok(),
                allowed(text),
                "from_bytes disagrees with the key rules on {text:?}: {from_bytes:?}"
            );
            assert_eq!(
                Key::new(text),
                from_bytes,
                "Key::new and Key::from_bytes disagree on {text:?}"
            );
            let via_json = serde_json::from_value::<Key>(serde_json::Value::from(text));
            assert_eq!(
                via_json.ok(),
                from_bytes.clone().ok(),
                "JSON decoding disagrees with Key::from_bytes on {text:?}"
            );
            check_path_segment(text);
        }
        Err(_) => assert!(from_bytes.is_err(), "non-UTF-8 bytes accepted as a key"),
    }
    if let Ok(key) = from_bytes {
        assert_eq!(key.as_bytes(), data, "an accepted key changed its bytes");
        check_accepted(&key);
    }
}

/// A segment is accepted exactly when its percent-decoded bytes are an allowed key.
fn check_path_segment(segment: &str) {
    let decoded: Vec<u8> = percent_decode(segment.as_bytes()).collect();
    let expected = std::str::from_utf8(&decoded).is_ok_and(allowed);
    match Key::from_path_segment(segment) {
        Ok(key) => {
            assert!(expected, "segment {segment:?} accepted as {key:?}");
            assert_eq!(
                key.as_bytes(),
                &decoded[..],
                "segment {segment:?} misdecoded"
            );
            check_accepted(&key);
        }
        Err(e) => assert!(!expected, "segment {segment:?} refused: {e}"),
    }
}

/// What holds for every accepted key: the rules, and the round trips it travels through.
fn check_accepted(key: &Key) {
    assert!(
        allowed(key.as_str()),
        "accepted key breaks the rules: {key:?}"
    );
    let segment = key.to_path_segment();
    assert!(
        segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
        "path segment {segment:?} of {key:?} has a byte that needs encoding"
    );
    assert_eq!(
        Key::from_path_segment(&segment).as_ref(),
        Ok(key),
        "path segment {segment:?} does not round-trip"
    );
    let json = serde_json::to_string(key).unwrap_or_default();
    assert_eq!(
        serde_json::from_str::<Key>(&json).ok().as_ref(),
        Some(key),
        "JSON {json} does not round-trip"
    );
}

/// The key rules of docs/api.md, written out independently of `kvproto::key`.
fn allowed(text: &str) -> bool {
    (1..=MAX_KEY_BYTES).contains(&text.len())
        && text != "."
        && text != ".."
        && !text.chars().any(|c| c == '/' || c == ',' || c.is_control())
}
