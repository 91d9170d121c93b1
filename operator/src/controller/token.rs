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
        .filter(|t| !t.is_empty())
        .ok_or(Error::MissingField("token in the admin token Secret"))?;
    Ok(AdminToken {
        token,
        secret_uid: secret.metadata.uid.clone(),
    })
}
