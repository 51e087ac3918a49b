//! One link's runner: claims the link (on PostgreSQL, so that one server
//! runs it at a time), builds its `Follower` from the stored definition
//! and progress, and steps it until it is stopped — checking the bookmark
//! against the source before the first step and after every failure,
//! recording each failure as the link's `last_error`, and retrying with
//! jittered, doubling backoff.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_replication::{parse_source_url, Follower, FollowerOptions, HttpSource, LinkError};
use cairn_store::{LinkRecord, Store};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::sink::StoreSink;
use super::{now_ms, progress_of, Links, StoredDefinition};
use crate::limits::{LINK_CLAIM_MS, LINK_RENEW_MS, LINK_RETRY_MS_MAX, LINK_RETRY_MS_MIN};

/// What ends a runner, and the runner it replaces.
pub(super) struct Stops {
    /// Cancelled when the supervisor stops this runner (the link paused,
    /// deleted or redefined) or the server shuts down.
    pub this_runner: CancellationToken,
    /// Cancelled when the server shuts down.
    pub server: CancellationToken,
    /// The runner of the same link this one replaces (stopped already).
    pub predecessor: Option<JoinHandle<()>>,
}

/// Runs the link `record` until it is stopped, the link is taken over by
/// another server, or it is deleted or made again.
pub(super) async fn run<S: Store>(
    store: Arc<S>,
    links: Arc<Links>,
    record: LinkRecord,
    stops: Stops,
) {
    let Stops {
        this_runner: stop,
        server: shutdown,
        predecessor,
    } = stops;
    let name = record.name.clone();
    // One runner per link on this server at a time: the one this replaces
    // (a rotated token) may still be saving its progress.
    if let Some(predecessor) = predecessor {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = predecessor => {}
        }
    }
    if !claim_when_free(&links, &record, &stop).await {
        return;
    }
    // Names this server as the runner that `GET /v1/links/{name}` shows,
    // so an operator (or a test) can tell which server runs the link.
    tracing::info!(link = %name, runner = %links.runner_name, "running the replication link");
    match current_record(&links, &record).await {
        Ok(Some(current)) => match follower(store, &links, &current) {
            Ok(follower) => follow(&links, &current, follower, &stop).await,
            Err(error) => tracing::error!(link = %name, %error, "cannot run the replication link"),
        },
        // Deleted or changed meanwhile: the supervisor starts a runner for
        // what is stored now.
        Ok(None) => {}
        Err(error) => tracing::warn!(link = %name, %error, "cannot read the replication link"),
    }
    links.forget(&name);
    // Given up when the server shuts down (or the runner ended by itself),
    // so that another server takes the link over at once; kept when the
    // supervisor stopped this runner, for its successor on this server
    // (a rotated token), which renews it with no gap in which another
    // server would take the link. A paused or deleted link's claim lapses.
    if shutdown.is_cancelled() || !stop.is_cancelled() {
        if let Err(error) = links.store.release_link(&name, &links.runner_name).await {
            tracing::warn!(link = %name, %error, "cannot release the replication link");
        }
    }
}

type LinkFollower<S> = Follower<HttpSource, StoreSink<S>>;

/// The link as stored now, if it is still the incarnation and generation
/// of `record` (which the supervisor read when it started this runner).
/// The runner goes on from the progress saved last — on PostgreSQL
/// possibly by another server while this one waited for the claim — not
/// from the progress `record` held then, which would send the bookmark
/// back (a re-read of the source, and the source's identity forgotten)
/// and lose the counters.
async fn current_record(
    links: &Links,
    record: &LinkRecord,
) -> Result<Option<LinkRecord>, cairn_store::ReadError> {
    Ok(links.store.link(&record.name).await?.filter(|current| {
        current.incarnation == record.incarnation && current.generation == record.generation
    }))
}

fn follower<S: Store>(
    store: Arc<S>,
    links: &Links,
    record: &LinkRecord,
) -> Result<LinkFollower<S>, String> {
    let definition = StoredDefinition::parse(record)?;
    let progress = progress_of(record)?;
    let url = parse_source_url(&definition.source)?;
    let source = HttpSource::new(url, definition.token, &links.extra_roots)
        .map_err(|error| error.to_string())?;
    let sink = StoreSink {
        store,
        links: Arc::clone(&links.store),
        name: record.name.clone(),
        incarnation: record.incarnation.clone(),
        runner: links.runner_name.clone(),
        deployment: links.deployment.clone(),
    };
    let options = FollowerOptions {
        wait_ms: LINK_RENEW_MS,
        ..FollowerOptions::default()
    };
    Ok(Follower::new(
        source,
        sink,
        definition.types,
        progress,
        options,
    ))
}

/// Waits until this server holds the link's claim; `false` if stopped
/// first.
async fn claim_when_free(links: &Links, record: &LinkRecord, stop: &CancellationToken) -> bool {
    loop {
        match claim(links, record).await {
            Ok(true) => return true,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(link = %record.name, %error, "cannot claim the replication link")
            }
        }
        tokio::select! {
            () = stop.cancelled() => return false,
            () = tokio::time::sleep(Duration::from_millis(LINK_RENEW_MS)) => {}
        }
    }
}

async fn claim(links: &Links, record: &LinkRecord) -> Result<bool, cairn_store::WriteError> {
    links
        .store
        .claim_link(
            &record.name,
            &record.incarnation,
            &links.runner_name,
            LINK_CLAIM_MS,
        )
        .await
}

async fn follow<S: Store>(
    links: &Links,
    record: &LinkRecord,
    mut follower: LinkFollower<S>,
    stop: &CancellationToken,
) {
    let name = &record.name;
    let mut claimed_at = Instant::now();
    let mut verified = false;
    let mut retry_ms = LINK_RETRY_MS_MIN;
    loop {
        if claimed_at.elapsed() >= Duration::from_millis(LINK_RENEW_MS) {
            match claim(links, record).await {
                Ok(true) => claimed_at = Instant::now(),
                Ok(false) => {
                    tracing::info!(link = %name, "another server runs the replication link now");
                    return;
                }
                Err(error) => {
                    tracing::warn!(link = %name, %error, "cannot renew the replication link's claim");
                    if claimed_at.elapsed() >= Duration::from_millis(LINK_CLAIM_MS) {
                        return;
                    }
                }
            }
        }
        let attempt = async {
            if !verified {
                follower.verify().await?;
            }
            follower.step(now_ms()).await
        };
        let result = tokio::select! {
            () = stop.cancelled() => return,
            result = attempt => result,
        };
        match result {
            Ok(outcome) => {
                verified = true;
                retry_ms = LINK_RETRY_MS_MIN;
                links.record_step(
                    name,
                    outcome.facts_inserted,
                    follower.progress().lag_facts(),
                );
            }
            Err(LinkError::Superseded) => return,
            Err(error) => {
                verified = false;
                links.record_failure(name);
                let message = error.to_string();
                tracing::warn!(link = %name, error = %message, retry_ms, "replication link failing");
                follower.progress_mut().last_error = Some(message);
                if let Ok(false) =
                    cairn_replication::Sink::save(follower.sink(), follower.progress()).await
                {
                    return;
                }
                let jitter_ms = rand::random::<u64>() % (retry_ms / 2 + 1);
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(retry_ms + jitter_ms)) => {}
                }
                retry_ms = (retry_ms * 2).min(LINK_RETRY_MS_MAX);
            }
        }
    }
}
