//! The TLS Secret of `spec.tls`: checked before anything is applied (a pod mounting a missing
//! Secret would never start), and its `ca.crt` handed to the admin client, which then trusts
//! it, and only it, for this store's `https://` servers.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::shards::store_domain;
use crate::validate::{Instance, tls_secret_ca};

/// Reads and checks the store's TLS Secret and trusts its CA for the store's servers; a store
/// without `spec.tls` trusts none. [`Error::TlsSecret`] names what is missing.
pub(super) async fn trust_store_ca(ctx: &Context, inst: &Instance) -> Result<()> {
    let domain = store_domain(&inst.name, &inst.namespace);
    let Some(tls) = &inst.spec.tls else {
        ctx.shards.trust(&domain, None);
        return Ok(());
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &inst.namespace);
    let secret = api.get_opt(&tls.secret_name).await?;
    let ca = tls_secret_ca(inst, secret.as_ref()).map_err(Error::TlsSecret)?;
    ctx.shards.trust(&domain, Some(&ca));
    Ok(())
}
