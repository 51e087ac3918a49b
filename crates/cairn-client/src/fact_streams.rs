//! Reading many facts: typed successors of a fact ([`Successors`], from
//! [`Client::successors`]) and the log ([`LogFacts`], from
//! [`Client::log_facts`]), each as a query to refine and then read whole
//! (`all`), page by page as a `Stream` that ends at the last fact
//! (`stream`), or as a `Stream` that follows new facts as they are stored
//! (`follow`, long-polling the server).
//!
//! Every item carries its `seq`, so a consumer that stops can resume with
//! `after(seq)`.

use std::collections::VecDeque;
use std::future::Future;
use std::marker::PhantomData;

use futures_util::stream::{self, Stream, StreamExt, TryStreamExt};
use tokio::time::Instant;

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::limits;
use crate::typed::{Typed, TypedFact};
use crate::wire::{FactPage, LogQuery, StoredFact, SuccessorsQuery};

/// The successors of one fact that have type `T`: refine with
/// [`role`](Successors::role), [`without`](Successors::without) and
/// [`after`](Successors::after), then read with [`all`](Successors::all),
/// [`stream`](Successors::stream) or [`follow`](Successors::follow).
#[derive(Clone, Debug)]
pub struct Successors<T> {
    client: Client,
    query: SuccessorsQuery,
    value_type: PhantomData<fn() -> T>,
}

impl<T: TypedFact> Successors<T> {
    pub(crate) fn new(client: Client, of: cairn_fact::Hash) -> Successors<T> {
        let mut query = SuccessorsQuery::new(of, T::TYPE_NAME);
        query.limit = Some(limits::SUCCESSORS_PAGE_FACTS_MAX);
        Successors {
            client,
            query,
            value_type: PhantomData,
        }
    }

    /// Only successors that name the fact in `role`.
    pub fn role(mut self, role: impl Into<String>) -> Successors<T> {
        self.query.role = Some(role.into());
        self
    }

    /// Leaves out successors that have a successor of type `X` themselves:
    /// tombstones (a `Library.Return` of a `Library.Loan`) or newer values.
    /// Several `without` add up.
    pub fn without<X: TypedFact>(self) -> Successors<T> {
        self.without_type(X::TYPE_NAME)
    }

    /// [`without`](Successors::without) by type name.
    pub fn without_type(mut self, type_name: impl Into<String>) -> Successors<T> {
        self.query.without.push(type_name.into());
        self
    }

    /// Only successors stored after `seq` (to resume).
    pub fn after(mut self, seq: u64) -> Successors<T> {
        self.query.after = Some(seq);
        self
    }

    /// Every matching successor, in `seq` order, reading page after page.
    pub async fn all(self) -> Result<Vec<Typed<T>>> {
        self.stream().try_collect().await
    }

    /// The first matching successor (the oldest), if any, reading no more
    /// than it needs: `.without::<Return>().first().await?.is_none()` asks
    /// "is nothing open?".
    pub async fn first(mut self) -> Result<Option<Typed<T>>> {
        // Not a page of one: with `without`, every successor left out
        // before the first match would cost a request of its own.
        self.query.limit = Some(limits::FIRST_SUCCESSOR_PAGE_FACTS);
        let mut successors = Box::pin(self.stream());
        successors.try_next().await
    }

    /// The matching successors in `seq` order, a page at a time; ends after
    /// the last one stored.
    pub fn stream(self) -> impl Stream<Item = Result<Typed<T>>> + Send {
        self.facts(false)
    }

    /// The matching successors in `seq` order, then each new one as it is
    /// stored; never ends unless the server fails (after the client's
    /// retries). A successor is checked against `without` when it is read:
    /// a tombstone stored later does not take back what was yielded.
    pub fn follow(self) -> impl Stream<Item = Result<Typed<T>>> + Send {
        self.facts(true)
    }

    fn facts(self, follow: bool) -> impl Stream<Item = Result<Typed<T>>> + Send {
        let Successors { client, query, .. } = self;
        let after = query.after.unwrap_or(0);
        fact_pages(after, follow, move |after, wait_ms| {
            let client = client.clone();
            let mut query = query.clone();
            query.after = Some(after);
            query.wait_ms = wait_ms;
            async move { client.successors_page(&query).await }
        })
        .and_then(|stored| async move { Typed::from_stored(stored) })
    }
}

/// The log: every stored fact in `seq` order, or only those of one type
/// with [`of_type`](LogFacts::of_type).
#[derive(Clone, Debug)]
pub struct LogFacts {
    client: Client,
    after: u64,
}

impl LogFacts {
    pub(crate) fn new(client: Client) -> LogFacts {
        LogFacts { client, after: 0 }
    }

    /// Only facts stored after `seq` (to resume, or to start at the end:
    /// `after(client.log_last_seq().await?)`).
    pub fn after(mut self, seq: u64) -> LogFacts {
        self.after = seq;
        self
    }

    /// The facts in `seq` order; ends after the last one stored.
    pub fn stream(self) -> impl Stream<Item = Result<StoredFact>> + Send {
        self.facts(false)
    }

    /// The facts in `seq` order, then each new one as it is stored.
    pub fn follow(self) -> impl Stream<Item = Result<StoredFact>> + Send {
        self.facts(true)
    }

    /// Only the facts of type `T`, read as `T`.
    pub fn of_type<T: TypedFact>(self) -> TypedLogFacts<T> {
        TypedLogFacts {
            log: self,
            value_type: PhantomData,
        }
    }

    fn facts(self, follow: bool) -> impl Stream<Item = Result<StoredFact>> + Send {
        let LogFacts { client, after } = self;
        fact_pages(after, follow, move |after, wait_ms| {
            let client = client.clone();
            async move {
                client
                    .log(LogQuery {
                        after: Some(after),
                        limit: Some(limits::LOG_PAGE_FACTS_MAX),
                        wait_ms,
                    })
                    .await
            }
        })
    }
}

/// The facts of type `T` in the log (filtered on the client: the log has
/// no type filter).
#[derive(Clone, Debug)]
pub struct TypedLogFacts<T> {
    log: LogFacts,
    value_type: PhantomData<fn() -> T>,
}

impl<T: TypedFact> TypedLogFacts<T> {
    /// The facts of type `T` in `seq` order; ends after the last one stored.
    pub fn stream(self) -> impl Stream<Item = Result<Typed<T>>> + Send {
        typed(self.log.stream())
    }

    /// The facts of type `T` in `seq` order, then each new one as it is
    /// stored.
    pub fn follow(self) -> impl Stream<Item = Result<Typed<T>>> + Send {
        typed(self.log.follow())
    }
}

/// Keeps the facts of type `T` and reads them as `T`.
fn typed<T: TypedFact>(
    facts: impl Stream<Item = Result<StoredFact>> + Send,
) -> impl Stream<Item = Result<Typed<T>>> + Send {
    facts.filter_map(|stored| async move {
        match stored {
            Ok(stored)
                if stored.fact.get("type").and_then(|t| t.as_str()) != Some(T::TYPE_NAME) =>
            {
                None
            }
            Ok(stored) => Some(Typed::from_stored(stored)),
            Err(error) => Some(Err(error)),
        }
    })
}

/// Where a paged read stands.
struct PageCursor<F> {
    fetch: F,
    after: u64,
    buffered: VecDeque<StoredFact>,
    follow: bool,
}

/// The facts of the pages `fetch(after, wait_ms)` answers, page after page
/// from `after`. Without `follow` the stream ends at the first page that
/// covers nothing new; with it, that page is asked again with a long-poll.
fn fact_pages<F, Fut>(
    after: u64,
    follow: bool,
    fetch: F,
) -> impl Stream<Item = Result<StoredFact>> + Send
where
    F: FnMut(u64, Option<u64>) -> Fut + Send,
    Fut: Future<Output = Result<FactPage>> + Send,
{
    let cursor = PageCursor {
        fetch,
        after,
        buffered: VecDeque::new(),
        follow,
    };
    stream::try_unfold(cursor, |mut cursor| async move {
        loop {
            if let Some(stored) = cursor.buffered.pop_front() {
                return Ok(Some((stored, cursor)));
            }
            let wait_ms = cursor.follow.then_some(limits::WAIT_MS_MAX);
            let poll_started = Instant::now();
            let page = (cursor.fetch)(cursor.after, wait_ms).await?;
            if page.next <= cursor.after {
                if !page.facts.is_empty() {
                    return Err(ClientError::Protocol(format!(
                        "a page after {} ended at {}",
                        cursor.after, page.next
                    )));
                }
                if !cursor.follow {
                    return Ok(None);
                }
                // The long-poll ended empty; ask again, never in a spin.
                tokio::time::sleep_until(poll_started + limits::REPLY_POLL_INTERVAL_MIN).await;
                continue;
            }
            // A page can cover facts the query left out: `next` moves on.
            cursor.after = page.next;
            cursor.buffered.extend(page.facts);
        }
    })
}

impl Client {
    /// The successors of `of` that have type `T`, as a query to refine
    /// and read (see [`Successors`]):
    /// `client.successors::<Loan>(&book).without::<Return>().all().await?`.
    pub fn successors<T: TypedFact>(&self, of: &cairn_fact::Hash) -> Successors<T> {
        Successors::new(self.clone(), *of)
    }

    /// Waits up to `timeout` until the fact `hash` is stored — one written
    /// elsewhere, such as through an outbox whose relay publishes it shortly
    /// after commit — and returns it; [`ClientError::NotStored`] if it is
    /// not there in time.
    pub async fn wait_for_fact(
        &self,
        hash: &cairn_fact::Hash,
        timeout: std::time::Duration,
    ) -> Result<StoredFact> {
        let deadline = Instant::now() + timeout;
        let mut poll_interval = limits::REPLY_POLL_INTERVAL_MIN;
        loop {
            if let Some(stored) = self.get_fact(hash).await? {
                return Ok(stored);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::NotStored {
                    hash: *hash,
                    waited_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                });
            }
            tokio::time::sleep(poll_interval.min(deadline - now)).await;
            poll_interval = (poll_interval * 2).min(limits::FACT_WAIT_POLL_INTERVAL_MAX);
        }
    }

    /// The log, as a query to refine and read (see [`LogFacts`]).
    pub fn log_facts(&self) -> LogFacts {
        LogFacts::new(self.clone())
    }
}
