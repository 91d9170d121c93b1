//! The admin bearer token: read once from `--admin-token-file`, compared in constant time.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use subtle::ConstantTimeEq;

use crate::error::Error;

#[derive(Clone, Default)]
pub struct AdminToken(Option<String>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "AdminToken(set)"
        } else {
            "AdminToken(none)"
        })
    }
}

impl AdminToken {
    pub fn new(token: Option<String>) -> Self {
        AdminToken(token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()))
    }

    /// Reads the token file (surrounding whitespace ignored).
    pub fn from_file(path: Option<&std::path::Path>) -> anyhow::Result<Self> {
        match path {
            None => Ok(AdminToken(None)),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    anyhow::anyhow!("cannot read the admin token file {}: {e}", p.display())
                })?;
                let token = AdminToken::new(Some(text));
                if token.0.is_none() {
                    anyhow::bail!("the admin token file {} is empty", p.display());
                }
                Ok(token)
            }
        }
    }

    /// The token to send to peers, if one is configured.
    pub fn value(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Whether the request carries `Authorization: Bearer <token>`.
    pub fn authorizes(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.0 else {
            return false;
        };
        headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| bool::from(given.trim().as_bytes().ct_eq(expected.as_bytes())))
    }

    pub fn require(&self, headers: &HeaderMap) -> Result<(), Error> {
        if self.0.is_none() {
            return Err(Error::Unauthorized(
                "no admin token is configured on this server (--admin-token-file)",
            ));
        }
        if self.authorizes(headers) {
            Ok(())
        } else {
            Err(Error::Unauthorized(
                "missing or wrong `Authorization: Bearer <token>`",
            ))
        }
    }
}
