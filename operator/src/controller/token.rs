//! The admin token the servers require, kept in a Secret the operator creates once.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};

use crate::build;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::labels::{self, MANAGER};
use crate::validate::Instance;

/// The admin token, and the uid of the Secret holding it (the pods restart when it changes).
pub(super) struct AdminToken {
    pub token: String,
    pub secret_uid: Option<String>,
}

/// The admin token: read from the Secret, or a new random one in a new Secret. The Secret is
/// created, never applied, so no reconcile can rotate the token under running servers.
pub(super) async fn ensure_token(ctx: &Context, inst: &Instance) -> Result<AdminToken> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &inst.namespace);
    let name = labels::token_secret(&inst.name);
    if let Some(secret) = api.get_opt(&name).await? {
        return token_of(&secret);
    }
    let token = build::random_token();
    let params = PostParams {
        field_manager: Some(MANAGER.to_owned()),
        ..PostParams::default()
    };
    match api
        .create(&params, &build::token_secret(inst, &token))
        .await
    {
        Ok(created) => Ok(AdminToken {
            token,
            secret_uid: created.metadata.uid,
        }),
        // Another writer won the race: use its token.
        Err(kube::Error::Api(status)) if status.code == 409 => token_of(&api.get(&name).await?),
        Err(err) => Err(err.into()),
    }
}

fn token_of(secret: &Secret) -> Result<AdminToken> {
    let token = secret
        .data
        .as_ref()
        .and_then(|d| d.get(build::TOKEN_KEY))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .as_deref()
        .and_then(sending_token)
        .ok_or(Error::MissingField("token in the admin token Secret"))?;
    Ok(AdminToken {
        token,
        secret_uid: secret.metadata.uid.clone(),
    })
}

/// The token to send from a token file's text: its first non-empty line (during a rotation the
/// Secret holds the current token and the next, one per line, as kvserver reads it).
fn sending_token(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_of_a_rotating_secret_is_sent() {
        assert_eq!(sending_token("new\nold\n").as_deref(), Some("new"));
        assert_eq!(sending_token("\n  only  \n").as_deref(), Some("only"));
        assert_eq!(sending_token("s3cret").as_deref(), Some("s3cret"));
        assert_eq!(sending_token(" \n\n"), None);
    }
}
