//! The byte budget of import bodies. An import reserves its body's size before reading a byte
//! of it (its `Content-Length`, or `--max-import-bytes` when it has none) and holds it until its
//! records are applied, so the bodies one server holds at once, being read or waiting for the
//! store, never exceed `--import-budget-bytes`. Without it, four concurrent large imports took
//! one server to 2.2 GB. A body the budget could never hold is refused at once with 413.

use axum::http::HeaderMap;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::Error;

/// The bytes of import bodies a server holds at once.
#[derive(Debug)]
pub struct ImportBudget {
    /// One permit per byte.
    permits: Semaphore,
    /// All the permits (a semaphore takes at most `u32::MAX` at once).
    total: u32,
    /// `--max-import-bytes`: the largest body accepted.
    max_body: usize,
}

/// An import's share of the budget, given back when dropped.
#[derive(Debug)]
pub struct Reserved<'a> {
    _permit: SemaphorePermit<'a>,
    /// The most the body may hold: it is read with this limit.
    pub limit: usize,
}

impl ImportBudget {
    /// A budget of `total` bytes for bodies of at most `max_body` bytes each.
    pub fn new(total: usize, max_body: usize) -> Self {
        let total = u32::try_from(total.max(1)).unwrap_or(u32::MAX);
        ImportBudget {
            permits: Semaphore::new(total as usize),
            total,
            max_body,
        }
    }

    /// Waits until the budget holds the body `headers` announce. A body over
    /// `--max-import-bytes` or over the whole budget is refused (413) without waiting.
    pub async fn reserve(&self, headers: &HeaderMap) -> Result<Reserved<'_>, Error> {
        let declared = crate::body::declared_length(headers);
        let limit = match declared {
            Some(len) if len > self.max_body => {
                return Err(Error::ImportTooLarge {
                    len,
                    limit: self.max_body,
                    flag: "--max-import-bytes",
                });
            }
            Some(len) if len > self.total as usize => {
                return Err(Error::ImportTooLarge {
                    len,
                    limit: self.total as usize,
                    flag: "--import-budget-bytes",
                });
            }
            Some(len) => len,
            // No length: the most it may be, and it is read with that limit.
            None => self.max_body.min(self.total as usize),
        };
        // At most `total`, which is a u32.
        let permits = u32::try_from(limit).unwrap_or(self.total);
        let permit = self
            .permits
            .acquire_many(permits)
            .await
            .map_err(|_| Error::Overloaded)?;
        Ok(Reserved {
            _permit: permit,
            limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, header};
    use futures::FutureExt;

    fn length(len: usize) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        headers
    }

    #[tokio::test]
    async fn bodies_wait_until_the_budget_holds_them() {
        let budget = ImportBudget::new(100, 80);
        let first = budget.reserve(&length(60)).await.unwrap();
        assert_eq!(first.limit, 60);
        let fifty = length(50);
        let second = budget.reserve(&fifty);
        tokio::pin!(second);
        assert!(second.as_mut().now_or_never().is_none(), "60 + 50 > 100");
        let small = budget.reserve(&length(40)).now_or_never();
        assert!(
            small.is_none(),
            "a later import does not overtake a waiting one"
        );
        drop(first);
        assert_eq!(second.now_or_never().unwrap().unwrap().limit, 50);
    }

    #[tokio::test]
    async fn a_body_without_length_reserves_the_largest_body() {
        let budget = ImportBudget::new(100, 80);
        let unknown = budget.reserve(&HeaderMap::new()).await.unwrap();
        assert_eq!(unknown.limit, 80);
        assert!(budget.reserve(&length(30)).now_or_never().is_none());
        let tight = ImportBudget::new(50, 80);
        assert_eq!(tight.reserve(&HeaderMap::new()).await.unwrap().limit, 50);
    }

    #[tokio::test]
    async fn bodies_no_budget_could_hold_are_refused_at_once() {
        let budget = ImportBudget::new(100, 80);
        let over_max = budget.reserve(&length(81)).await.unwrap_err();
        assert!(
            over_max.to_string().contains("--max-import-bytes"),
            "{over_max}"
        );
        let tight = ImportBudget::new(50, 80);
        let over_budget = tight.reserve(&length(60)).await.unwrap_err();
        assert!(
            over_budget.to_string().contains("--import-budget-bytes"),
            "{over_budget}"
        );
        assert_eq!(
            over_budget.status(),
            axum::http::StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}
