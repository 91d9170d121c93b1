//! What a key may hold: its last acknowledged value, or one written after it that failed (the
//! server may have applied it anyway).

use kvclient::Versioned;

/// Values a key may hold: the last acknowledged one, or one written after it that failed.
#[derive(Debug, Default, Clone)]
pub struct KeyLog {
    pub(super) acked: Option<String>,
    pub(super) maybe: Vec<String>,
}

impl KeyLog {
    /// A write of `value` was acknowledged: nothing older is acceptable any more.
    pub fn acknowledged(&mut self, value: String) {
        self.acked = Some(value);
        self.maybe.clear();
    }

    /// A write of `value` failed in a way that may still have applied it.
    pub fn maybe_applied(&mut self, value: String) {
        self.maybe.push(value);
    }

    /// Whether a read of `value` (`None`: absent) is one the key may hold.
    pub fn accepts(&self, value: Option<&str>) -> bool {
        match value {
            None => self.acked.is_none(),
            Some(v) => self.acked.as_deref() == Some(v) || self.maybe.iter().any(|m| m == v),
        }
    }
}

/// A read's value as text, as the load writes it.
pub fn read_text(found: Option<Versioned>) -> Option<String> {
    found.map(|v| String::from_utf8_lossy(&v.value).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_accepts_its_last_ack_or_a_later_unacknowledged_write() {
        let mut log = KeyLog::default();
        assert!(log.accepts(None));
        log.maybe_applied("1".into());
        assert!(log.accepts(None) && log.accepts(Some("1")));
        log.acknowledged("2".into());
        assert!(log.accepts(Some("2")));
        assert!(!log.accepts(None));
        assert!(!log.accepts(Some("1")));
    }
}
