//! The marker on a request a copy of a replicated shard sent on to the copy it took for the
//! shard's leader ([`TO_LEADER`], kvserver-to-kvserver, not in kvproto's wire contract). Its
//! value `from=<node id>` names the sender: a receiver that does not lead (it stepped down, or
//! leads no longer) may send a data request on to the leader it knows (the hops bound the
//! chain), but not back to the copy it came from while that one is the leader it knew when the
//! request arrived (the two would bounce it). A marker without a sender (`1`, from a build
//! before this one) is honoured as before: the request waits here to be served.

use axum::http::{HeaderMap, HeaderValue};

use crate::header_names::TO_LEADER;

/// A request sent here as to the shard's leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// The sending copy's node ID, when it said.
    pub from: Option<u64>,
}

impl Marker {
    /// The marker of a request, if it carries one.
    pub fn of(headers: &HeaderMap) -> Option<Marker> {
        let v = headers.get(&TO_LEADER)?;
        let from = v
            .to_str()
            .ok()
            .and_then(|v| v.trim().strip_prefix("from="))
            .and_then(|id| id.parse().ok());
        Some(Marker { from })
    }

    /// The marker's value on a request this copy (`from`) sends to the leader.
    pub fn value(from: u64) -> HeaderValue {
        HeaderValue::try_from(format!("from={from}"))
            .unwrap_or_else(|_| HeaderValue::from_static("1"))
    }

    /// Whether the request may go on to another leader: only a data request (its hops are
    /// counted; an admin request has none), and only from a sender this build can name.
    pub fn may_pass_on(self, admin: bool) -> bool {
        !admin && self.from.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sender_round_trips_and_an_old_marker_names_none() {
        let mut h = HeaderMap::new();
        assert_eq!(Marker::of(&h), None);
        h.insert(&TO_LEADER, Marker::value(u64::MAX));
        assert_eq!(
            Marker::of(&h),
            Some(Marker {
                from: Some(u64::MAX)
            })
        );
        h.insert(&TO_LEADER, HeaderValue::from_static("1"));
        let old = Marker::of(&h).unwrap_or(Marker { from: Some(0) });
        assert_eq!(old.from, None);
        assert!(!old.may_pass_on(false), "an old marker is never sent on");
        let new = Marker { from: Some(3) };
        assert!(new.may_pass_on(false));
        assert!(!new.may_pass_on(true), "an admin request is never sent on");
    }
}
