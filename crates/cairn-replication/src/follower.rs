//! The link engine: follows a source's log into a sink, one page per
//! step, predecessors first, and saves the bookmark only after what it
//! covers is durable in the sink.
//!
//! One step reads a page after the bookmark (long-polling when caught
//! up), keeps the entries the link's types select, writes them — first
//! trying the page alone, and when the sink names predecessors it lacks
//! (a filter that skipped them, or a gap), fetching those from the source
//! and writing them first, until the batch is closed under predecessors
//! — then advances the bookmark over everything the page examined and
//! saves it. A crash anywhere leaves the saved bookmark at or behind
//! what is stored, and writing a fact again is a no-op, so a restart
//! re-reads at most one page. While a page is written, the next one is
//! read (when the page was full or ended before the source's head), so
//! the source and the sink work side by side.

use std::collections::HashSet;
use std::time::Instant;

use cairn_api::access::Pattern;
use cairn_fact::{CanonicalFact, Hash};
use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::closure::predecessors_first;
use cairn_api::links::Anchor;

use crate::progress::Progress;
use crate::sink::{Sink, SinkError};
use crate::source::{Source, SourceError, SourcePage};

/// How a follower reads and writes.
#[derive(Clone, Debug)]
pub struct FollowerOptions {
    /// Entries asked for per page.
    pub page_facts_max: usize,
    /// How long a read waits for new entries when caught up.
    pub wait_ms: u64,
    /// Predecessors fetched to close one page, at most (a hostile or
    /// broken source cannot make a step unbounded).
    pub closure_facts_max: usize,
    /// Predecessor fetches in flight at once.
    pub fetches_in_flight_max: usize,
}

impl Default for FollowerOptions {
    fn default() -> FollowerOptions {
        FollowerOptions {
            page_facts_max: crate::limits::PAGE_FACTS_DEFAULT,
            wait_ms: crate::limits::WAIT_MS_DEFAULT,
            closure_facts_max: crate::limits::CLOSURE_FACTS_MAX,
            fetches_in_flight_max: crate::limits::FETCHES_IN_FLIGHT_MAX,
        }
    }
}

/// Why a step failed. Every failure leaves the sink and the saved
/// progress as they were, or ahead by facts that are stored with all
/// their predecessors.
#[derive(Clone, Debug, thiserror::Error)]
pub enum LinkError {
    /// Reading from the source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Writing to the receiving store failed.
    #[error(transparent)]
    Sink(SinkError),
    /// The bookmark does not fit the source: a different store answers
    /// at the URL, or the source lost facts it had (restored from an
    /// older backup). The link stops rather than silently skip.
    #[error("the bookmark is invalid: {0}; delete the link and create it again to read the source from its start")]
    BookmarkInvalid(String),
    /// The source is the receiving store itself.
    #[error("the link's source is this store itself ({store})")]
    LinkToSelf {
        /// The store identity both answered.
        store: String,
    },
    /// A selected fact names a predecessor the source does not serve to
    /// this link (absent, or of a type its token may not read); the fact
    /// is not stored, since a store never holds a fact without its
    /// predecessors.
    #[error("fact {fact} names predecessor {predecessor}, which the source does not serve to this link (absent, or its token may not read its type); grant the link's token read on that type")]
    PredecessorUnavailable {
        /// The fact that cannot be stored.
        fact: Hash,
        /// Its predecessor the source did not answer.
        predecessor: Hash,
    },
    /// Closing one page under predecessors needs more facts than allowed.
    #[error(
        "closing one page under predecessors needs more than {0} facts the filter did not select"
    )]
    ClosureTooLarge(usize),
    /// The link is no longer this runner's (deleted, made again, taken
    /// over by another server): stop without saving anything.
    #[error("the link was deleted, made again or taken over by another server")]
    Superseded,
}

/// What one step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepOutcome {
    /// Entries of the source's log examined.
    pub examined_to: u64,
    /// Facts stored that the sink did not hold before.
    pub facts_inserted: u64,
    /// Whether the bookmark reached the source's head.
    pub caught_up: bool,
}

/// Follows one source into one sink.
pub struct Follower<S, K> {
    source: S,
    sink: K,
    types: Vec<String>,
    patterns: Vec<Pattern>,
    options: FollowerOptions,
    progress: Progress,
    prefetched: Option<SourcePage>,
}

impl<S: Source, K: Sink> Follower<S, K> {
    /// A follower reading the facts whose type matches one of `types`,
    /// from `progress` on. The patterns must be valid (the server checked
    /// them when the link was defined); an invalid one selects nothing.
    pub fn new(
        source: S,
        sink: K,
        types: Vec<String>,
        progress: Progress,
        options: FollowerOptions,
    ) -> Follower<S, K> {
        let patterns = types
            .iter()
            .filter_map(|text| Pattern::parse(text).ok())
            .collect();
        Follower {
            source,
            sink,
            types,
            patterns,
            options,
            progress,
            prefetched: None,
        }
    }

    /// Where the follower stands.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// The progress, to change what is saved next (a failure to record).
    pub fn progress_mut(&mut self) -> &mut Progress {
        &mut self.progress
    }

    /// The sink, for callers that share it.
    pub fn sink(&self) -> &K {
        &self.sink
    }

    /// Checks that the bookmark fits the source: the same store answers,
    /// its log still reaches the bookmark, and the anchor fact is still at
    /// its position. Done before the first step and after every failure,
    /// since a source that went away may come back restored from a backup.
    pub async fn verify(&mut self) -> Result<(), LinkError> {
        self.prefetched = None;
        let anchor = self.progress.bookmark.anchor;
        // The anchor may be of a type the link does not select (the entry
        // the bookmark stands on): it is read back whatever its type.
        let probe = match anchor {
            Some(anchor) => self.source.page(anchor.seq - 1, &[], 1, 0).await?,
            None => {
                self.source
                    .page(self.progress.bookmark.after, &self.types, 1, 0)
                    .await?
            }
        };
        self.check_identity(&probe)?;
        if let Some(anchor) = anchor {
            match probe.entries.first() {
                Some(entry) if entry.seq == anchor.seq && entry.fact.hash == anchor.hash => {}
                Some(entry) if entry.seq == anchor.seq => {
                    return Err(LinkError::BookmarkInvalid(format!(
                        "the source holds fact {} at seq {}, where this link's bookmark saw {}",
                        entry.fact.hash, anchor.seq, anchor.hash
                    )))
                }
                _ => {
                    return Err(LinkError::BookmarkInvalid(format!(
                        "the source no longer serves fact {} at seq {}",
                        anchor.hash, anchor.seq
                    )))
                }
            }
        }
        Ok(())
    }

    /// Reads one page, stores what it selects (predecessors first), and
    /// saves the advanced bookmark. `now_ms` stamps when the link was
    /// caught up.
    pub async fn step(&mut self, now_ms: u64) -> Result<StepOutcome, LinkError> {
        let step_started = Instant::now();
        let page = match self.prefetched.take() {
            Some(page) => page,
            None => {
                self.source
                    .page(
                        self.progress.bookmark.after,
                        &self.types,
                        self.options.page_facts_max,
                        self.options.wait_ms,
                    )
                    .await?
            }
        };
        let read_ms = step_started.elapsed().as_secs_f64() * 1000.0;
        self.check_identity(&page)?;
        self.check_order(&page)?;
        let next = page.next;
        let head = page.head;
        // The entry the bookmark stands on, when the source tells it;
        // otherwise the last fact selected.
        let next_anchor = page.next_hash.map(|hash| Anchor { seq: next, hash });
        // More to read: a full page, or one that stopped before the head (a
        // page of a filtered link examines up to the limit of the source's
        // log, so it is rarely full).
        let more_to_read = page.entries.len() >= self.options.page_facts_max || next < head;
        let mut anchor = None;
        let mut selected = Vec::with_capacity(page.entries.len());
        for entry in page.entries {
            if self.selects(&entry.fact) {
                anchor = Some(Anchor {
                    seq: entry.seq,
                    hash: entry.fact.hash,
                });
                selected.push(entry.fact);
            }
        }
        // Read the next page while this one is written, when there is
        // more to read (never a long-poll that would hold the write back).
        let selected_count = selected.len();
        let write_started = Instant::now();
        let (written, write_ms, prefetched) = if more_to_read {
            let read_ahead = self
                .source
                .page(next, &self.types, self.options.page_facts_max, 0);
            let write = async {
                let written = self.write(selected).await;
                (written, write_started.elapsed().as_secs_f64() * 1000.0)
            };
            let ((written, write_ms), prefetched) =
                futures_util::future::join(write, read_ahead).await;
            (written, write_ms, prefetched.ok())
        } else {
            let written = self.write(selected).await;
            (
                written,
                write_started.elapsed().as_secs_f64() * 1000.0,
                None,
            )
        };
        // Beyond the write, the time the read-ahead held the step back.
        let read_ahead_extra_ms = write_started.elapsed().as_secs_f64() * 1000.0 - write_ms;
        let facts_inserted = written?;
        self.prefetched = prefetched;
        let caught_up = next >= head;
        let before = self.progress.clone();
        let progress = &mut self.progress;
        progress.bookmark.after = next;
        if let Some(anchor) = next_anchor.or(anchor) {
            progress.bookmark.anchor = Some(anchor);
        }
        progress.facts_received += facts_inserted;
        progress.source_head = head.max(next);
        if caught_up {
            progress.caught_up_at_ms = Some(now_ms);
        }
        progress.last_error = None;
        // An idle long-poll that moved nothing is not saved: a caught-up
        // link would otherwise write its unchanged bookmark every wait.
        let still_caught_up = caught_up && before.caught_up_at_ms.is_some();
        let unchanged = Progress {
            caught_up_at_ms: if still_caught_up {
                before.caught_up_at_ms
            } else {
                progress.caught_up_at_ms
            },
            ..progress.clone()
        } == before;
        let save_started = Instant::now();
        if !unchanged
            && !self
                .sink
                .save(&self.progress)
                .await
                .map_err(LinkError::Sink)?
        {
            return Err(LinkError::Superseded);
        }
        // Where a step's time goes (`RUST_LOG=cairn_replication=debug`):
        // waiting for the page (0 when it was read ahead), writing the
        // selected facts (predecessor fetches included), waiting for the
        // read-ahead beyond the write, and saving the bookmark.
        tracing::debug!(
            entries = next - before.bookmark.after,
            selected = selected_count,
            read_ms,
            write_ms,
            read_ahead_extra_ms,
            save_ms = save_started.elapsed().as_secs_f64() * 1000.0,
            step_ms = step_started.elapsed().as_secs_f64() * 1000.0,
            "replication step"
        );
        Ok(StepOutcome {
            examined_to: next,
            facts_inserted,
            caught_up,
        })
    }

    fn selects(&self, fact: &CanonicalFact) -> bool {
        cairn_api::access::any_matches(&self.patterns, &fact.fact.type_name)
    }

    fn check_identity(&mut self, page: &SourcePage) -> Result<(), LinkError> {
        if page.store == self.sink.store_id() {
            return Err(LinkError::LinkToSelf {
                store: page.store.clone(),
            });
        }
        match &self.progress.bookmark.store {
            Some(store) if *store != page.store => {
                return Err(LinkError::BookmarkInvalid(format!(
                    "store {} answers at the source's URL, where this link read store {store}",
                    page.store
                )))
            }
            Some(_) => {}
            None => self.progress.bookmark.store = Some(page.store.clone()),
        }
        let after = self.progress.bookmark.after;
        if page.head < after {
            return Err(LinkError::BookmarkInvalid(format!(
                "the source's log ends at seq {}, before this link's bookmark {after} (was it restored from an older backup?)",
                page.head
            )));
        }
        Ok(())
    }

    fn check_order(&self, page: &SourcePage) -> Result<(), LinkError> {
        let after = self.progress.bookmark.after;
        let mut previous = after;
        for entry in &page.entries {
            if entry.seq <= previous {
                return Err(SourceError::Invalid(format!(
                    "entry at seq {} after seq {previous}: a log page must ascend",
                    entry.seq
                ))
                .into());
            }
            previous = entry.seq;
        }
        if page.next < previous {
            return Err(SourceError::Invalid(format!(
                "next {} is before the page's last entry {previous}",
                page.next
            ))
            .into());
        }
        Ok(())
    }

    /// Stores `selected`, fetching from the source and writing first any
    /// predecessor the sink lacks.
    async fn write(&self, selected: Vec<CanonicalFact>) -> Result<u64, LinkError> {
        store_with_predecessors(&self.source, &self.sink, selected, &self.options).await
    }
}

/// Stores `selected` in `sink` as one all-or-nothing batch after the
/// predecessors it lacks: the batch is tried as it is, and each time the
/// sink names predecessors it does not hold, they are fetched from
/// `source` (at most `options.closure_facts_max` in all, at most
/// `options.fetches_in_flight_max` at once) and put first, in predecessor
/// order. Answers how many facts were new to the sink. `selected` must
/// list each fact after those of its predecessors it also lists.
pub async fn store_with_predecessors<S: Source, K: Sink>(
    source: &S,
    sink: &K,
    selected: Vec<CanonicalFact>,
    options: &FollowerOptions,
) -> Result<u64, LinkError> {
    if selected.is_empty() {
        return Ok(0);
    }
    // A page closed under predecessors by itself needs no second
    // attempt, so it is not copied for one.
    let in_page: HashSet<Hash> = selected.iter().map(|fact| fact.hash).collect();
    let self_contained = selected.iter().all(|fact| {
        fact.fact
            .all_predecessors()
            .all(|(_, predecessor)| in_page.contains(predecessor))
    });
    if self_contained {
        return sink.put(selected).await.map_err(LinkError::Sink);
    }
    let mut fetched: Vec<CanonicalFact> = Vec::new();
    let mut fetched_hashes: HashSet<Hash> = HashSet::new();
    loop {
        let mut batch = predecessors_first(fetched.clone());
        batch.extend(selected.iter().cloned());
        let missing = match sink.put(batch).await {
            Ok(inserted) => return Ok(inserted),
            Err(SinkError::MissingPredecessors(missing)) => missing,
            Err(error) => return Err(LinkError::Sink(error)),
        };
        let to_fetch: Vec<Hash> = missing
            .into_iter()
            .filter(|hash| !fetched_hashes.contains(hash))
            .collect();
        if to_fetch.is_empty() {
            return Err(LinkError::Sink(SinkError::Refused(
                "the receiving store reports predecessors missing that the batch holds".into(),
            )));
        }
        if fetched.len() + to_fetch.len() > options.closure_facts_max {
            return Err(LinkError::ClosureTooLarge(options.closure_facts_max));
        }
        let answers: Vec<(Hash, Option<CanonicalFact>)> = stream::iter(to_fetch)
            .map(|hash| async move {
                let fact = source.fact(&hash).await?;
                Ok::<_, SourceError>((hash, fact))
            })
            .buffer_unordered(options.fetches_in_flight_max)
            .try_collect()
            .await?;
        for (hash, fact) in answers {
            let Some(fact) = fact else {
                let fact = fetched
                    .iter()
                    .chain(selected.iter())
                    .find(|fact| {
                        fact.fact
                            .all_predecessors()
                            .any(|(_, predecessor)| *predecessor == hash)
                    })
                    .map_or(hash, |fact| fact.hash);
                return Err(LinkError::PredecessorUnavailable {
                    fact,
                    predecessor: hash,
                });
            };
            fetched_hashes.insert(hash);
            fetched.push(fact);
        }
    }
}
