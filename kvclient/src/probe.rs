//! The book client's check of one key, over a [`ShardedClient`]: read it; if it is missing,
//! write it (unless read-only); compare what is stored with the expected value.
//!
//! The value of a key is the key itself, so any client, started at any time, knows what every
//! key should hold, and a wrong value (`x`) means data from somewhere else.

use futures::StreamExt;
use kvproto::Key;

use crate::sharded::ShardedClient;
use crate::status::Outcome;

/// Which routes the check uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyApi {
    /// `/load` and `/save`, as the book's client: works against the book's Flask server too.
    Book,
    /// `GET`/`PUT /v1/keys`.
    V1,
}

/// The value a check expects under `key`.
pub fn expected_value(key: &Key) -> &str {
    key.as_str()
}

/// Checks one key and returns its letter.
pub async fn check_key(client: &ShardedClient, key: &Key, readonly: bool, api: KeyApi) -> Outcome {
    let expected = expected_value(key);
    let stored = match api {
        KeyApi::Book => client.book_load(key).await,
        KeyApi::V1 => client
            .get(key)
            .await
            .map(|v| v.map(|v| String::from_utf8_lossy(&v.value).into_owned())),
    };
    match stored {
        Ok(Some(value)) if value == expected => Outcome::Hit,
        Ok(Some(_)) => Outcome::Wrong,
        Ok(None) if readonly => Outcome::Miss,
        Ok(None) => {
            let written = match api {
                KeyApi::Book => client.book_save(key, expected).await.map(drop),
                KeyApi::V1 => client.put(key, expected.to_string()).await.map(drop),
            };
            match written {
                Ok(()) => Outcome::Written,
                Err(e) => Outcome::from_error(&e),
            }
        }
        Err(e) => Outcome::from_error(&e),
    }
}

/// Checks every key, up to `concurrency` at a time, and returns the letters in key order.
pub async fn check_keys(
    client: &ShardedClient,
    keys: &[Key],
    readonly: bool,
    api: KeyApi,
    concurrency: usize,
) -> Vec<Outcome> {
    futures::stream::iter(keys)
        .map(|key| check_key(client, key, readonly, api))
        .buffered(concurrency.max(1))
        .collect()
        .await
}
