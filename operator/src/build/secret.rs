//! The Secrets with the store's three tokens: admin (the operator's calls to `/v1/admin/*`),
//! peer (the servers' forwards and read-throughs) and data (clients, under
//! `spec.auth.requireDataToken`). One Secret each, so that a client can be granted the data
//! token (RBAC `resourceNames`) without the others. They are created once and never applied
//! again, so no reconcile rotates a token by accident (docs/security-token-rotation.md).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use rand::distr::{Alphanumeric, SampleString};

use super::meta::meta;
use crate::labels;
use crate::validate::Instance;

/// Key of the token inside each Secret.
pub const TOKEN_KEY: &str = "token";

/// One of a store's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// `/v1/admin/*`: the operator's own calls.
    Admin,
    /// Forwarded requests and read-throughs between the servers.
    Peer,
    /// Data routes under `--require-token-for-data`.
    Data,
}

impl Credential {
    /// Every credential, admin first.
    pub const ALL: [Credential; 3] = [Credential::Admin, Credential::Peer, Credential::Data];

    /// The Secret holding it: `NAME-admin-token`, `NAME-peer-token`, `NAME-data-token`.
    pub fn secret_name(self, store: &str) -> String {
        match self {
            Credential::Admin => labels::token_secret(store),
            Credential::Peer => format!("{store}-peer-token"),
            Credential::Data => format!("{store}-data-token"),
        }
    }

    /// The file the servers read it from, inside the credentials volume.
    pub fn file_name(self) -> &'static str {
        match self {
            // The admin token's file kept its name from before the split.
            Credential::Admin => TOKEN_KEY,
            Credential::Peer => "peer-token",
            Credential::Data => "data-token",
        }
    }

    /// The kvserver flag naming that file.
    pub fn flag(self) -> &'static str {
        match self {
            Credential::Admin => "--admin-token-file",
            Credential::Peer => "--peer-token-file",
            Credential::Data => "--data-token-file",
        }
    }
}

/// A new Secret holding the admin token.
pub fn token_secret(inst: &Instance, token: &str) -> Secret {
    credential_secret(inst, Credential::Admin, token)
}

/// A new Secret for `credential` whose `token` is `text` (one token per line: the first is
/// sent, every line accepted).
pub fn credential_secret(inst: &Instance, credential: Credential, text: &str) -> Secret {
    Secret {
        metadata: meta(inst, credential.secret_name(&inst.name)),
        type_: Some("Opaque".to_owned()),
        string_data: Some(BTreeMap::from([(TOKEN_KEY.to_owned(), text.to_owned())])),
        ..Secret::default()
    }
}

/// A fresh random token: 48 alphanumeric characters (about 285 bits) from the OS-seeded RNG.
pub fn random_token() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 48)
}
