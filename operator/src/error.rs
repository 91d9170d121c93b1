//! The crate's one error type, and the category that names it in Events, metrics and logs.

use kube::runtime::finalizer;
use thiserror::Error;

use crate::shards::ShardError;

/// Everything a reconcile can fail with.
#[derive(Debug, Error)]
pub enum Error {
    /// The spec cannot be built into children; only the user can fix it.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),

    /// `spec.tls` names a Secret that does not exist or lacks a key: the servers cannot start
    /// and the operator cannot trust them. Retried with backoff (cert-manager may issue it soon).
    #[error("TLS Secret not ready: {0}")]
    TlsSecret(String),

    /// A call to the Kubernetes API failed.
    #[error("kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),

    /// A child could not be turned into JSON.
    #[error("could not serialize: {0}")]
    Serialize(#[from] serde_json::Error),

    /// A shard server refused or did not answer an admin call, or is not drained.
    #[error("shard {}: {}", .0.shard(), .0.detail())]
    Shard(#[from] ShardError),

    /// Another writer (a second operator) moved the store's move on since this reconcile read
    /// it: nothing is written over it; the next reconcile starts from what is there now.
    #[error("the status changed under another writer: {0}")]
    StatusMovedOn(String),

    /// The object lacks a field the API server always sets.
    #[error("object has no {0}")]
    MissingField(&'static str),

    /// Adding or removing the finalizer, or the cleanup behind it, failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Coarse kind of an error: the Event reason and the metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// The user must change the spec.
    InvalidSpec,
    /// The API server refused the change as invalid (e.g. an immutable field), or a shard
    /// refused a copy batch as over its import limits; only a configuration change fixes it.
    Rejected,
    /// A transient API failure; retried with backoff.
    Api,
    /// A shard server is unreachable or refused an admin call; retried with backoff.
    Shard,
    /// Not a failure to report: the reconcile worked from a copy of the store older than the
    /// API server's (the watch cache had not caught up with the last status write), or the
    /// namespace is being deleted. No Event; retried soon, from fresh state.
    Superseded,
    /// The TLS Secret of `spec.tls` is missing or incomplete; retried with backoff.
    TlsSecret,
    /// A bug or an impossible object.
    Internal,
}

impl Category {
    /// PascalCase name, used as the Event reason and the metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::InvalidSpec => "InvalidSpec",
            Category::Rejected => "Rejected",
            Category::Api => "ApiError",
            Category::Shard => "ShardError",
            Category::Superseded => "Superseded",
            Category::TlsSecret => "TlsSecretNotReady",
            Category::Internal => "InternalError",
        }
    }
}

impl Error {
    /// The message for an Event: the reconcile's own error, without the finalizer's wrapping.
    pub fn detail(&self) -> String {
        match self {
            Error::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e.detail(),
                other => other.to_string(),
            },
            other => other.to_string(),
        }
    }

    /// Which category the error falls in.
    pub fn category(&self) -> Category {
        match self {
            Error::InvalidSpec(_) => Category::InvalidSpec,
            Error::TlsSecret(_) => Category::TlsSecret,
            Error::Kube(kube::Error::Api(status)) if status.code == 422 => Category::Rejected,
            Error::Kube(kube::Error::Api(status)) if namespace_terminating(status) => {
                Category::Superseded
            }
            Error::StatusMovedOn(_) => Category::Superseded,
            Error::Kube(_) => Category::Api,
            // Sending the same batch again cannot help: wait for the user, as for a bad spec.
            Error::Shard(e) if e.needs_configuration() => Category::Rejected,
            Error::Shard(_) => Category::Shard,
            Error::Serialize(_) | Error::MissingField(_) => Category::Internal,
            Error::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
                    e.category()
                }
                finalizer::Error::AddFinalizer(_) | finalizer::Error::RemoveFinalizer(_) => {
                    Category::Api
                }
                _ => Category::Internal,
            },
        }
    }
}

/// The API server refuses new objects in a namespace being deleted (403, cause
/// `NamespaceTerminating`): the store goes with it, so there is nothing to retry loudly.
fn namespace_terminating(status: &kube::core::Status) -> bool {
    status.code == 403
        && status
            .details
            .as_ref()
            .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> Error {
        Error::Kube(kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: "refused".into(),
            ..kube::core::Status::default()
        })))
    }

    #[test]
    fn categories_separate_what_the_user_must_fix_from_what_is_retried() {
        assert_eq!(api_error(422).category(), Category::Rejected);
        assert_eq!(api_error(409).category(), Category::Api);
        assert_eq!(api_error(500).category(), Category::Api);
        let wrapped = Error::Finalizer(Box::new(finalizer::Error::ApplyFailed(
            Error::InvalidSpec("port 8081 is the kvserver ops port".into()),
        )));
        assert_eq!(wrapped.category(), Category::InvalidSpec);
        assert_eq!(
            wrapped.detail(),
            "invalid spec: port 8081 is the kvserver ops port"
        );
        let shard = Error::Shard(ShardError::NotDrained { shard: 2, keys: 7 });
        assert_eq!(shard.category().as_str(), "ShardError");
        assert_eq!(shard.to_string(), "shard 2: still holds 7 keys");
        let too_large = Error::Shard(ShardError::ImportTooLarge {
            shard: 1,
            records: 13,
            bytes: 3_900_000,
            source: kvclient::Error::TooLarge {
                server: "http://s".into(),
                bytes: 3_900_000,
                message: "over --max-import-bytes".into(),
            },
        });
        assert_eq!(too_large.category(), Category::Rejected);
    }

    #[test]
    fn a_stale_read_and_a_terminating_namespace_are_superseded_not_failures() {
        let moved =
            Error::StatusMovedOn("kv's move is no longer where this reconcile found it".into());
        assert_eq!(moved.category(), Category::Superseded);
        let terminating = Error::Kube(kube::Error::Api(Box::new(kube::core::Status {
            code: 403,
            reason: "Forbidden".into(),
            details: Some(kube::core::response::StatusDetails {
                causes: vec![kube::core::response::StatusCause {
                    reason: "NamespaceTerminating".into(),
                    message: "namespace e2e is being terminated".into(),
                    field: "metadata.namespace".into(),
                }],
                name: "kv".into(),
                group: "apps".into(),
                kind: "statefulsets".into(),
                uid: String::new(),
                retry_after_seconds: 0,
            }),
            ..kube::core::Status::default()
        })));
        assert_eq!(terminating.category(), Category::Superseded);
        // Any other 403 is a real failure (e.g. RBAC missing a grant).
        assert_eq!(api_error(403).category(), Category::Api);
    }
}
