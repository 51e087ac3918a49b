//! Where a link stands: the bookmark in the source's log and the counters
//! shown by `GET /v1/links/{name}`, saved by the receiver after the facts
//! they cover are durable (so the bookmark never runs ahead of what the
//! receiver stored). The JSON form is what the store keeps
//! (`docs/design.md`, "Replication bookmarks").

use cairn_api::links::Bookmark;
use serde::{Deserialize, Serialize};

/// A link's progress as saved by its runner.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Where the link stands.
    pub bookmark: Bookmark,
    /// Facts this link stored that the receiver did not hold before
    /// (predecessors fetched for the closure included).
    pub facts_received: u64,
    /// The source's last `seq` when it last answered.
    pub source_head: u64,
    /// When the link was last caught up (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caught_up_at_ms: Option<u64>,
    /// Why the last attempt failed; `None` once a step succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Progress {
    /// Entries of the source's log after the bookmark, as last seen.
    pub fn lag_facts(&self) -> u64 {
        self.source_head.saturating_sub(self.bookmark.after)
    }

    /// How long the link has been behind: 0 when caught up, else the time
    /// since it last was (or since `created_at_ms`, if it never was).
    pub fn lag_ms(&self, now_ms: u64, created_at_ms: u64) -> u64 {
        if self.lag_facts() == 0 && self.caught_up_at_ms.is_some() {
            return 0;
        }
        now_ms.saturating_sub(self.caught_up_at_ms.unwrap_or(created_at_ms))
    }
}
