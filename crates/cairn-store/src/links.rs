//! Replication links as the store keeps them (`/v1/links`, "Replication
//! links" in `docs/api-v1.md`): each link's definition, whether it is
//! paused, where its runner stands (the bookmark and counters, as the
//! runner's JSON), and — on PostgreSQL, where many servers share the
//! store — which server runs it now.
//!
//! The store does not interpret definitions or progress (the server's
//! `links/` and `cairn-replication` do); it keeps records and applies the
//! changes below atomically and durably (durable on return, like a fact).
//! A definition carries the credentials the link uses at its source:
//! it lives in this record only — never in a fact, never in a log line —
//! so that every server that may run the link can read it, and a `put`
//! with new credentials rotates them without a restart.

use futures_util::future::BoxFuture;

use crate::error::{ReadError, WriteError};

/// One link as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkRecord {
    /// Its unique name.
    pub name: String,
    /// Its definition as JSON text (the server's; not interpreted here).
    /// It may hold a secret: see the module comment.
    pub definition_json: String,
    /// Made by the caller when the link is created (random); a link
    /// deleted and made again under the same name is another incarnation,
    /// and progress saved for an earlier one is refused.
    pub incarnation: String,
    /// 1 when created, one more at each `put_link` that changed the
    /// definition; assigned by the store.
    pub generation: u64,
    /// True while the link is paused.
    pub paused: bool,
    /// The runner's progress as JSON text (bookmark, counters, last
    /// error); `None` until it first saves.
    pub progress_json: Option<String>,
    /// On PostgreSQL: the server that runs the link (its claim), if any.
    /// Always `None` on the embedded store, which has one runner.
    pub runner: Option<String>,
}

impl std::fmt::Debug for LinkRecord {
    /// Leaves the definition out: it may hold a secret, and records end up
    /// in test failures and logs.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LinkRecord")
            .field("name", &self.name)
            .field("definition_json", &"<not shown>")
            .field("incarnation", &self.incarnation)
            .field("generation", &self.generation)
            .field("paused", &self.paused)
            .field("progress_json", &self.progress_json)
            .field("runner", &self.runner)
            .finish()
    }
}

/// What [`LinkStore::put_link`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkPut {
    /// The link did not exist; it now has the incarnation passed in.
    Created,
    /// The link existed with another definition; it now has the new one
    /// (and the next generation), keeping its incarnation, progress and
    /// paused state.
    Replaced,
    /// The link existed with the same definition; nothing changed.
    Unchanged,
}

/// The persistence of replication links. Implemented by both backends;
/// every write is durable on return.
pub trait LinkStore: Send + Sync + 'static {
    /// Creates the link `name` with `definition_json` and `incarnation`
    /// (not paused, no progress), or, if it exists, replaces its
    /// definition (see [`LinkPut`]; the stored incarnation is kept and the
    /// one passed in is unused). Answers what it did and the record as
    /// stored.
    fn put_link<'a>(
        &'a self,
        name: &'a str,
        definition_json: &'a str,
        incarnation: &'a str,
    ) -> BoxFuture<'a, Result<(LinkPut, LinkRecord), WriteError>>;

    /// The link `name`, if it exists.
    fn link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<LinkRecord>, ReadError>>;

    /// Links with names after `after` (all if `None`), by name, at most
    /// `limit`.
    fn links<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<LinkRecord>, ReadError>>;

    /// Deletes the link `name`; `false` if it did not exist. Progress
    /// saved for it later is refused.
    fn delete_link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, WriteError>>;

    /// Pauses or resumes the link `name`; answers the record as stored,
    /// or `None` if there is no such link.
    fn set_link_paused<'a>(
        &'a self,
        name: &'a str,
        paused: bool,
    ) -> BoxFuture<'a, Result<Option<LinkRecord>, WriteError>>;

    /// Records the progress of the link `name`, only if it still exists
    /// as `incarnation` and — on PostgreSQL — `runner` still holds its
    /// claim (another server may have taken it over). Answers whether it
    /// was recorded.
    fn save_link_progress<'a>(
        &'a self,
        name: &'a str,
        incarnation: &'a str,
        runner: &'a str,
        progress_json: &'a str,
    ) -> BoxFuture<'a, Result<bool, WriteError>>;

    /// Claims the right to run the link `name` (as `incarnation`) for
    /// `claim_ms`, or renews it: granted if no server holds it, if
    /// `runner` does, or if the holder's claim expired (by the database's
    /// clock). Answers whether `runner` holds it now. The embedded store
    /// has one runner: it grants every claim of an existing incarnation
    /// and records nothing.
    fn claim_link<'a>(
        &'a self,
        name: &'a str,
        incarnation: &'a str,
        runner: &'a str,
        claim_ms: u64,
    ) -> BoxFuture<'a, Result<bool, WriteError>>;

    /// Gives up `runner`'s claim of the link `name`, if it holds it, so
    /// that another server takes it over at once (at shutdown).
    fn release_link<'a>(
        &'a self,
        name: &'a str,
        runner: &'a str,
    ) -> BoxFuture<'a, Result<(), WriteError>>;
}
