//! `kvclient get|put|del|ls`: one request each, through the sharded client.

use std::io::{Read, Write};

use kvclient::{Condition, Error};
use kvproto::Key;

use super::args::Target;
use super::error::CliError;
use super::target::sharded;

fn key(text: &str) -> Result<Key, CliError> {
    Key::new(text).map_err(|e| CliError::Usage(format!("key {text:?}: {e}")))
}

pub async fn get(key_text: &str, target: &Target) -> Result<(), CliError> {
    let key = key(key_text)?;
    let client = sharded(target).await?;
    match client.get(&key).await? {
        Some(v) => {
            let mut out = std::io::stdout().lock();
            out.write_all(&v.value)?;
            out.flush()?;
            Ok(())
        }
        None => Err(CliError::NotFound(format!("{key}: not found"))),
    }
}

pub async fn put(
    key_text: &str,
    value: Option<&str>,
    stdin: bool,
    condition: Option<Condition>,
    target: &Target,
) -> Result<(), CliError> {
    let key = key(key_text)?;
    let value: Vec<u8> = match value {
        Some(v) if !stdin => v.as_bytes().to_vec(),
        _ => {
            let mut buf = Vec::new();
            std::io::stdin().lock().read_to_end(&mut buf)?;
            buf
        }
    };
    let client = sharded(target).await?;
    let result = match condition {
        None => client.put(&key, value).await,
        Some(c) => client.put_if(&key, value, c).await,
    };
    match result {
        Ok(_) => Ok(()),
        Err(Error::PreconditionFailed { .. }) => Err(CliError::Failed(format!(
            "{key}: not written, precondition failed"
        ))),
        Err(e) => Err(e.into()),
    }
}

pub async fn del(key_text: &str, if_version: Option<u64>, target: &Target) -> Result<(), CliError> {
    let key = key(key_text)?;
    let client = sharded(target).await?;
    let deleted = match if_version {
        None => client.delete(&key).await,
        Some(v) => client.server_for(&key)?.delete_if_version(&key, v).await,
    };
    match deleted {
        Ok(true) => Ok(()),
        Ok(false) => Err(CliError::NotFound(format!("{key}: not found"))),
        Err(Error::PreconditionFailed { .. }) => Err(CliError::Failed(format!(
            "{key}: not deleted, precondition failed"
        ))),
        Err(e) => Err(e.into()),
    }
}

pub async fn ls(prefix: Option<&str>, target: &Target) -> Result<(), CliError> {
    let client = sharded(target).await?;
    let keys = client.list_all(prefix).await?;
    let mut out = std::io::stdout().lock();
    for k in keys {
        writeln!(out, "{k}")?;
    }
    out.flush()?;
    Ok(())
}
