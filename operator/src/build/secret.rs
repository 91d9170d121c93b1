//! The Secret with the admin token the servers require on `/v1/admin/*` and on forwards.
//! It is created once and never applied again, so the token is never rotated by accident.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use rand::distr::{Alphanumeric, SampleString};

use super::meta::meta;
use crate::labels;
use crate::validate::Instance;

/// Key of the token inside the Secret, and the file name the pods read.
pub const TOKEN_KEY: &str = "token";

/// A new Secret holding `token`.
pub fn token_secret(inst: &Instance, token: &str) -> Secret {
    Secret {
        metadata: meta(inst, labels::token_secret(&inst.name)),
        type_: Some("Opaque".to_owned()),
        string_data: Some(BTreeMap::from([(TOKEN_KEY.to_owned(), token.to_owned())])),
        ..Secret::default()
    }
}

/// A fresh random token: 48 alphanumeric characters (about 285 bits) from the OS-seeded RNG.
pub fn random_token() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 48)
}
