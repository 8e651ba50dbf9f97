//! Keyset pagination shared by user and audit listings.

use crate::{StoreError, StoreResult, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Largest page a listing returns; larger requests are rejected, never silently capped.
pub const MAX_PAGE_SIZE: usize = 1000;

/// A position in a listing ordered by `(timestamp, id)`: the last item of the previous page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cursor {
    /// Timestamp of the last item returned.
    pub at: Timestamp,
    /// Id of the last item returned.
    pub id: Uuid,
}

/// Which page to read: items strictly after `after`, at most `limit` of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Start after this position; `None` starts at the beginning.
    pub after: Option<Cursor>,
    /// Page size, 1 to [`MAX_PAGE_SIZE`].
    pub limit: usize,
}

impl PageRequest {
    /// The first page of `limit` items.
    pub fn first(limit: usize) -> Self {
        Self { after: None, limit }
    }

    /// Rejects a zero or over-large limit.
    pub fn validate(&self) -> StoreResult<()> {
        if self.limit == 0 || self.limit > MAX_PAGE_SIZE {
            return Err(StoreError::invalid(
                "limit",
                format!("page size must be 1..={MAX_PAGE_SIZE}, got {}", self.limit),
            ));
        }
        Ok(())
    }
}

/// One page of a listing. `next` is set when more items may follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in listing order.
    pub items: Vec<T>,
    /// Pass as `after` to read the next page; `None` when this page was the last.
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` items read in order: the extra item only tells that
    /// another page exists.
    pub fn from_overfetch(
        mut items: Vec<T>,
        limit: usize,
        cursor_of: impl Fn(&T) -> Cursor,
    ) -> Self {
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more {
            items.last().map(cursor_of)
        } else {
            None
        };
        Page { items, next }
    }
}
