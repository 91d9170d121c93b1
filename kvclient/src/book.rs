//! The book's routes on [`ServerClient`]: `/save/<key>/<value>`, `/load/<key>`, `/allKeys`.
//! They answer plain text, so they also work against the chapter's Flask server.

use kvproto::Key;
use kvproto::wire::BOOK_KEY_NOT_FOUND;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::Result;
use crate::retry::Idempotency;
use crate::server::ServerClient;

impl ServerClient {
    /// `GET /save/<key>/<value>`: stores `value` and returns what the server echoed.
    /// An overwrite, so it is retried like one.
    pub async fn book_save(&self, key: &Key, value: &str) -> Result<String> {
        let url = self.url(&format!(
            "/save/{}/{}",
            key.to_path_segment(),
            utf8_percent_encode(value, NON_ALPHANUMERIC)
        ));
        let resp = self
            .send(Idempotency::Idempotent, || self.http.get(&url))
            .await?;
        self.text(resp).await
    }

    /// `GET /load/<key>`: the value, or `None` on the book's 200 `_key_not_found_`.
    pub async fn book_load(&self, key: &Key) -> Result<Option<String>> {
        let url = self.url(&format!("/load/{}", key.to_path_segment()));
        let resp = self
            .send(Idempotency::Idempotent, || self.http.get(&url))
            .await?;
        let body = self.text(resp).await?;
        Ok((body != BOOK_KEY_NOT_FOUND).then_some(body))
    }

    /// `GET /allKeys`: the keys held on this server.
    pub async fn book_all_keys(&self) -> Result<Vec<String>> {
        let url = self.url("/allKeys");
        let resp = self
            .send(Idempotency::Idempotent, || self.http.get(&url))
            .await?;
        let body = self.text(resp).await?;
        Ok(body
            .split(',')
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect())
    }
}
