//! The store's tokens, each in a Secret the operator creates once ([`build::Credential`]):
//! admin (the operator's own calls), peer (between the servers) and data (clients).

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};

use crate::build::{self, Credential};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::labels::MANAGER;
use crate::validate::Instance;

/// The admin token, and the uid of the Secret holding it (the pods restart when it changes).
pub(super) struct AdminToken {
    pub token: String,
    pub secret_uid: Option<String>,
}

/// The admin token, after making sure the peer and data token Secrets exist too. Each Secret is
/// read, or created with a new random token; it is created, never applied, so no reconcile can
/// rotate a token under running servers.
pub(super) async fn ensure_token(ctx: &Context, inst: &Instance) -> Result<AdminToken> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &inst.namespace);
    let (admin_text, admin) = ensure(&api, inst, Credential::Admin, None).await?;
    let token =
        sending_token(&admin_text).ok_or(Error::MissingField("token in the admin token Secret"))?;
    // A store from before the split already runs servers that send the admin token to their
    // peers and accept only it: its peer token starts as `ADMIN\nNEW` (send the admin token,
    // accept both), the step 1 of a rotation, so no old and new pod ever refuse each other.
    let legacy = !admin.created;
    let admin_line = legacy.then_some(token.as_str());
    ensure(&api, inst, Credential::Peer, admin_line).await?;
    ensure(&api, inst, Credential::Data, None).await?;
    Ok(AdminToken {
        token,
        secret_uid: admin.uid,
    })
}

/// What [`ensure`] found.
struct Ensured {
    uid: Option<String>,
    /// True when this call created the Secret.
    created: bool,
}

/// The token text of `credential`'s Secret, creating it (a new random token, after
/// `send_first` when given) if it does not exist.
async fn ensure(
    api: &Api<Secret>,
    inst: &Instance,
    credential: Credential,
    send_first: Option<&str>,
) -> Result<(String, Ensured)> {
    let name = credential.secret_name(&inst.name);
    if let Some(secret) = api.get_opt(&name).await? {
        return found(&secret, credential);
    }
    let fresh = build::random_token();
    let text = match send_first {
        Some(first) => format!("{first}\n{fresh}"),
        None => fresh,
    };
    let params = PostParams {
        field_manager: Some(MANAGER.to_owned()),
        ..PostParams::default()
    };
    let secret = build::credential_secret(inst, credential, &text);
    match api.create(&params, &secret).await {
        Ok(created) => Ok((
            text,
            Ensured {
                uid: created.metadata.uid,
                created: true,
            },
        )),
        // Another writer won the race: use its token.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            found(&api.get(&name).await?, credential)
        }
        Err(err) => Err(err.into()),
    }
}

fn found(secret: &Secret, credential: Credential) -> Result<(String, Ensured)> {
    let text = secret
        .data
        .as_ref()
        .and_then(|d| d.get(build::TOKEN_KEY))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .filter(|text| sending_token(text).is_some())
        .ok_or(Error::MissingField(match credential {
            Credential::Admin => "token in the admin token Secret",
            Credential::Peer => "token in the peer token Secret",
            Credential::Data => "token in the data token Secret",
        }))?;
    Ok((
        text,
        Ensured {
            uid: secret.metadata.uid.clone(),
            created: false,
        },
    ))
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
