//! The links' `Source` and `Sink` in the simulation: each call crosses a
//! simulated network (or the receiving store's disk) that can delay it
//! (the future yields a seeded number of polls before the call is
//! handled, and again before its answer arrives, so calls of different
//! links and of one step — the read-ahead, the predecessor fetches —
//! interleave and reorder), cut it (a partition, a failed call), answer
//! a short page, a stale or duplicated page, a garbled page, or lie that
//! a fact is absent. A call is handled atomically when its first delay
//! ends: a runner dropped before that never reached the store, one
//! dropped after it lost only the answer (a write that is durable but was
//! never acknowledged).
//!
//! Every accepted save is checked against the world: the bookmark never
//! runs ahead of what the receiving store holds.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use cairn_api::access::Pattern;
use cairn_fact::{CanonicalFact, Hash};
use cairn_replication::{Progress, Sink, SinkError, Source, SourceError, SourcePage};
use futures_util::future::BoxFuture;

use super::oracle::matches_any;
use super::world::{lock, Breakage, SharedWorld, World};

/// A future that is pending once (waking itself), then ready: one poll
/// of delay.
#[derive(Default)]
struct YieldOnce {
    yielded: bool,
}

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        context.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Waits a seeded number of polls.
async fn delay(world: &SharedWorld) {
    let n_polls = {
        let mut world = lock(world);
        let max = world.faults.delay_polls_max;
        world.random.in_range(0, max)
    };
    for _ in 0..n_polls {
        YieldOnce::default().await;
    }
}

/// A link's view of its source store, across the simulated network.
pub struct LinkSource {
    /// The world.
    pub world: SharedWorld,
    /// The link's index.
    pub link: usize,
    /// The follower this source belongs to (for fault bookkeeping).
    pub follower: u64,
}

impl LinkSource {
    fn answer_page(
        &self,
        world: &mut World,
        after: u64,
        types: &[String],
        limit: usize,
    ) -> Result<SourcePage, SourceError> {
        world.count("page read");
        let link = &world.links[self.link];
        let source = link.definition.source;
        if link.partitioned {
            world.count("call into a partition");
            return Err(SourceError::Unavailable("the network is cut".into()));
        }
        if !world.stores[source].is_up() {
            world.count("call to a crashed source");
            return Err(SourceError::Unavailable("the source is down".into()));
        }
        let faults = world.faults;
        if world.random.chance(faults.source_fails) {
            world.count("call cut");
            return Err(SourceError::Unavailable("the connection was reset".into()));
        }
        // The server parses the link's patterns as the `types` parameter
        // (it answers 400 to an invalid one; the simulation has none).
        let patterns: Vec<Pattern> = types
            .iter()
            .map(|text| Pattern::parse(text).expect("the simulation's patterns are valid"))
            .collect();
        let head = world.stores[source].head();
        let visible = if world.random.chance(faults.stale_pages) {
            let oldest = world.links[self.link].seen_head.min(head);
            world.count("stale page");
            world.random.in_range(oldest, head)
        } else {
            head
        };
        let examined_max = if world.random.chance(faults.short_pages) {
            world.count("short page");
            world.random.in_range(1, limit as u64) as usize
        } else {
            limit
        };
        let mut page = world.stores[source].page(after, &patterns, examined_max, visible);
        let link = &mut world.links[self.link];
        link.seen_head = link.seen_head.max(page.head);
        if page.entries.len() >= 2 && world.random.chance(faults.garbled_pages) {
            page.entries.reverse();
            world.count("garbled page");
            world.inject(self.follower, |injected| injected.garbled = true);
        }
        Ok(page)
    }

    fn answer_fact(
        &self,
        world: &mut World,
        hash: &Hash,
    ) -> Result<Option<CanonicalFact>, SourceError> {
        world.count("predecessor fetched");
        let link = &world.links[self.link];
        let source = link.definition.source;
        if link.partitioned {
            world.count("call into a partition");
            return Err(SourceError::Unavailable("the network is cut".into()));
        }
        if !world.stores[source].is_up() {
            world.count("call to a crashed source");
            return Err(SourceError::Unavailable("the source is down".into()));
        }
        let faults = world.faults;
        if world.random.chance(faults.source_fails) {
            world.count("call cut");
            return Err(SourceError::Unavailable("the connection was reset".into()));
        }
        let fact = world.stores[source].fact(hash).cloned();
        if fact.is_some() && world.random.chance(faults.lies) {
            world.inject(self.follower, |injected| injected.lied = true);
            world.count("source lied");
            return Ok(None);
        }
        Ok(fact)
    }
}

impl Source for LinkSource {
    fn page<'a>(
        &'a self,
        after: u64,
        types: &'a [String],
        limit: usize,
        _wait_ms: u64,
    ) -> BoxFuture<'a, Result<SourcePage, SourceError>> {
        // A long-poll is not modelled: a caught-up page answers at once,
        // and the scheduler decides when the link asks again.
        Box::pin(async move {
            delay(&self.world).await;
            let answer = self.answer_page(&mut lock(&self.world), after, types, limit);
            delay(&self.world).await;
            answer
        })
    }

    fn fact<'a>(
        &'a self,
        hash: &'a Hash,
    ) -> BoxFuture<'a, Result<Option<CanonicalFact>, SourceError>> {
        Box::pin(async move {
            delay(&self.world).await;
            let answer = self.answer_fact(&mut lock(&self.world), hash);
            delay(&self.world).await;
            answer
        })
    }
}

/// Counts a call whose effect happened but whose answer never reached
/// the runner (dropped while the answer was on its way).
struct Unanswered<'a> {
    world: &'a SharedWorld,
    path: &'static str,
    answered: bool,
}

impl<'a> Unanswered<'a> {
    fn new(world: &'a SharedWorld, path: &'static str) -> Unanswered<'a> {
        Unanswered {
            world,
            path,
            answered: false,
        }
    }

    fn answered(mut self) {
        self.answered = true;
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        // The scheduler drops attempts without holding the lock; `try_lock`
        // keeps a mistake there from deadlocking instead of failing.
        if !self.answered {
            if let Ok(mut world) = self.world.try_lock() {
                world.count(self.path);
            }
        }
    }
}

/// A link's view of its receiving store.
pub struct LinkSink {
    /// The world.
    pub world: SharedWorld,
    /// The link's index.
    pub link: usize,
    /// The link's generation when this runner started: saves of an older
    /// one are refused.
    pub generation: u64,
    /// The receiving store's identity.
    pub store_id: String,
}

impl LinkSink {
    fn store_facts(&self, world: &mut World, facts: &[CanonicalFact]) -> Result<u64, SinkError> {
        let target = world.links[self.link].definition.target;
        if !world.stores[target].is_up() {
            return Err(SinkError::Unavailable("the store is down".into()));
        }
        let faults = world.faults;
        if world.random.chance(faults.sink_fails) {
            world.count("write failed");
            return Err(SinkError::Unavailable("the disk failed the write".into()));
        }
        if world.breakage == Breakage::DropsOneFact && world.dropped.is_none() {
            if let Some((last, rest)) = facts.split_last() {
                world.dropped = Some(last.hash);
                let inserted = world.stores[target]
                    .put(rest)
                    .map_err(SinkError::MissingPredecessors)?;
                return Ok(inserted + 1);
            }
        }
        let answer = world.stores[target].put(facts);
        match &answer {
            Ok(inserted) if (*inserted as usize) < facts.len() => {
                world.count("batch holding facts stored already");
            }
            Ok(_) => world.count("batch stored"),
            Err(_) => world.count("batch missing predecessors"),
        }
        answer.map_err(SinkError::MissingPredecessors)
    }

    fn save_progress(&self, world: &mut World, progress: &Progress) -> Result<bool, SinkError> {
        let definition = world.links[self.link].definition.clone();
        if !world.stores[definition.target].is_up() {
            return Err(SinkError::Unavailable("the store is down".into()));
        }
        let faults = world.faults;
        if world.random.chance(faults.sink_fails) {
            world.count("save failed");
            return Err(SinkError::Unavailable("the disk failed the write".into()));
        }
        if self.generation != world.links[self.link].generation {
            world.count("zombie's save refused");
            return Ok(false);
        }
        world.count("progress saved");
        check_bookmark(world, self.link, progress);
        world.stores[definition.target]
            .saved_progress
            .insert(self.link, progress.clone());
        Ok(true)
    }
}

/// The bookmark about to be saved never runs ahead of the receiving
/// store: every fact of the source up to it that the filter selects is
/// stored, the anchor is the source's fact at its position, and the
/// store identity is the source's.
fn check_bookmark(world: &mut World, link: usize, progress: &Progress) {
    let definition = world.links[link].definition.clone();
    let source = &world.stores[definition.source];
    let target = &world.stores[definition.target];
    let bookmark = &progress.bookmark;
    let mut problems = Vec::new();
    if bookmark.after > source.head() {
        problems.push(format!(
            "bookmark {} is beyond the source's head {}",
            bookmark.after,
            source.head()
        ));
    }
    let examined = (bookmark.after.min(source.head())) as usize;
    if let Some((position, fact)) = source.log()[..examined]
        .iter()
        .enumerate()
        .find(|(_, fact)| {
            matches_any(&definition.types, &fact.fact.type_name) && !target.holds(&fact.hash)
        })
    {
        problems.push(format!(
            "the bookmark ran ahead: it is at {} but fact {} ({}) at seq {} is not stored",
            bookmark.after,
            fact.hash,
            fact.fact.type_name,
            position + 1
        ));
    }
    if let Some(anchor) = bookmark.anchor {
        let at_position = source
            .log()
            .get((anchor.seq as usize).wrapping_sub(1))
            .map(|fact| fact.hash);
        if at_position != Some(anchor.hash) || anchor.seq > bookmark.after {
            problems.push(format!(
                "the anchor {} at seq {} is not the source's fact there ({at_position:?}) or is beyond the bookmark",
                anchor.hash, anchor.seq
            ));
        }
        // The anchor is the entry the bookmark stands on: stored here if
        // the link selects its type.
        let selected = source
            .log()
            .get((anchor.seq as usize).wrapping_sub(1))
            .is_some_and(|fact| matches_any(&definition.types, &fact.fact.type_name));
        if selected && !target.holds(&anchor.hash) {
            problems.push(format!("the anchor {} is not stored", anchor.hash));
        }
    }
    // A link that never heard from its source (a failure recorded before
    // the first answer) knows no store yet, and stands at 0.
    let store_unknown_at_start = bookmark.store.is_none() && bookmark.after == 0;
    if bookmark.store.as_deref() != Some(source.id.as_str()) && !store_unknown_at_start {
        problems.push(format!(
            "the bookmark names store {:?}, not the source {}",
            bookmark.store, source.id
        ));
    }
    for problem in problems {
        world.violation(format!(
            "link {link} ({} → {}): at a save: {problem}",
            definition.source, definition.target
        ));
    }
}

impl Sink for LinkSink {
    fn store_id(&self) -> &str {
        &self.store_id
    }

    fn put(&self, facts: Vec<CanonicalFact>) -> BoxFuture<'_, Result<u64, SinkError>> {
        Box::pin(async move {
            delay(&self.world).await;
            let answer = self.store_facts(&mut lock(&self.world), &facts);
            let unanswered = Unanswered::new(&self.world, "batch durable, its answer lost");
            delay(&self.world).await;
            unanswered.answered();
            answer
        })
    }

    fn save<'a>(&'a self, progress: &'a Progress) -> BoxFuture<'a, Result<bool, SinkError>> {
        Box::pin(async move {
            delay(&self.world).await;
            let answer = self.save_progress(&mut lock(&self.world), progress);
            let unanswered = Unanswered::new(&self.world, "save durable, its answer lost");
            delay(&self.world).await;
            unanswered.answered();
            answer
        })
    }
}
