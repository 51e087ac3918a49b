//! Offline-first sync of an embedded store with a remote deployment
//! ([`Client::sync_with`]): a service or device writes to its own store
//! whether or not the remote is reachable; while it is, the facts of the
//! sync's types flow both ways, predecessors first, from bookmarks
//! persisted on both sides, and nothing is duplicated (a fact arriving
//! again is a no-op: its identity is its hash).
//!
//! Each direction is a replication link of `cairn-replication`:
//! - **Inbound** (remote → local) is an ordinary link of the embedded node,
//!   `sync-<name>`, defined through its own API (`PUT /v1/links/...` into
//!   its router). The node's link supervisor runs it, with its bookmark
//!   saved in the embedded store like every link's; it shows in
//!   `GET /v1/links` and retries with backoff while the remote is away.
//! - **Outbound** (local → remote) is a `Follower` run by this module's
//!   task: its source is the embedded node's own log, read through its
//!   router (`ApiSource` over [`LocalLog`]) exactly as another Cairn would
//!   read it; its sink is the remote over HTTP (`HttpSink`, `POST
//!   /v1/facts`, where a `200` means durable). The bookmark is in the
//!   local log, so the sender keeps it: in `DATA_DIR/sync/<name>.json`,
//!   replaced atomically (written to a temporary file, synced, renamed,
//!   the directory synced) after the remote acknowledged what it covers.
//!   A file rather than a record in the store: the SDK reaches its node
//!   only through API v1, which has no place for a sender's bookmark, and
//!   the file needs no more than "never ahead of what the remote
//!   acknowledged" — a bookmark that is lost, stale or from an older
//!   backup only makes facts be sent again, which is a no-op.
//!
//! A fact that came in and goes out again (or the reverse) is a no-op on
//! arrival and takes no new place in either log, so a sync is a cycle that
//! settles. When the remote answers with another store identity than the
//! one facts were sent to (a different deployment at the URL), or the
//! local log no longer holds the bookmark's fact (the data directory was
//! restored from an older backup), outbound starts again from the start
//! of the local log — re-sending is always safe; skipping never is.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::Method;
use cairn_api::access::Pattern;
use cairn_api::links::validate_link_name;
use cairn_api::{LinkDefinition, LinkState, LinkView};
use cairn_replication::{
    parse_source_url, source_text, ApiAnswerResult, ApiReader, ApiSource, Bookmark, Follower,
    FollowerOptions, HttpSink, HttpSource, LinkError, Progress, ProgressKeeper, Sink, SinkError,
    Source, SourceError, Url,
};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::client::Client;
use crate::embedded::EmbeddedNode;
use crate::error::{ClientError, Result};
use crate::limits::{
    SYNC_LINK_PREFIX, SYNC_NAME_DEFAULT, SYNC_NODE_ANSWER_BYTES_MAX, SYNC_NODE_REQUEST_TIMEOUT,
    SYNC_RETRY_DELAY_MAX_DEFAULT, SYNC_RETRY_DELAY_MIN, SYNC_STATUS_POLL,
};
use crate::remote::api_error;

/// What to sync with a remote deployment, and how (see
/// [`Client::sync_with`]).
#[derive(Clone)]
pub struct SyncOptions {
    /// Type patterns (as in permissions, e.g. `Shop.*`): the facts that
    /// flow, both ways. Their predecessors come along whatever their type.
    pub types: Vec<String>,
    /// The access token presented to the remote when it runs with
    /// `--auth`: it must read the types (inbound) and write them
    /// (outbound), predecessors included.
    pub token: Option<String>,
    /// The sync's name, unique per embedded store: it names the inbound
    /// link (`sync-<name>`) and the outbound bookmark. Default `remote`.
    pub name: String,
    /// The longest wait between retries while the remote is unreachable
    /// (the first is 200 ms, doubling, jittered). Default 30 s.
    pub retry_delay_max: Duration,
}

impl std::fmt::Debug for SyncOptions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SyncOptions")
            .field("types", &self.types)
            .field("token", &self.token.as_ref().map(|_| "<not shown>"))
            .field("name", &self.name)
            .field("retry_delay_max", &self.retry_delay_max)
            .finish()
    }
}

impl SyncOptions {
    /// Syncs the facts whose type matches one of `types`, without a token,
    /// under the default name.
    pub fn new<T: Into<String>>(types: impl IntoIterator<Item = T>) -> SyncOptions {
        SyncOptions {
            types: types.into_iter().map(Into::into).collect(),
            token: None,
            name: SYNC_NAME_DEFAULT.to_string(),
            retry_delay_max: SYNC_RETRY_DELAY_MAX_DEFAULT,
        }
    }

    /// Presents `token` to the remote.
    pub fn token(mut self, token: impl Into<String>) -> SyncOptions {
        self.token = Some(token.into());
        self
    }

    /// Names the sync (letters, digits, `_`, `.`, `-`; a store may sync
    /// with several remotes, each under its own name).
    pub fn name(mut self, name: impl Into<String>) -> SyncOptions {
        self.name = name.into();
        self
    }

    /// Retries at least every `delay` while the remote is unreachable.
    pub fn retry_delay_max(mut self, delay: Duration) -> SyncOptions {
        self.retry_delay_max = delay;
        self
    }
}

/// Where a sync stands, both ways.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncStatus {
    /// The sync's name.
    pub name: String,
    /// The remote's base URL.
    pub remote: String,
    /// Local → remote.
    pub outbound: OutboundStatus,
    /// Remote → local.
    pub inbound: InboundStatus,
}

/// Where sending the local facts to the remote stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundStatus {
    /// The position in the local log up to which the remote holds every
    /// selected fact (and its predecessors).
    pub bookmark: Bookmark,
    /// Entries of the local log after the bookmark, as last seen.
    pub lag_facts: u64,
    /// Facts the remote stored that it did not hold before (over the
    /// sync's life, across restarts).
    pub facts_sent: u64,
    /// The remote's store identity, once it answered.
    pub remote_store: Option<String>,
    /// Why the last attempt failed (the remote unreachable, refusing);
    /// `None` once an attempt succeeds.
    pub last_error: Option<String>,
}

/// Where receiving the remote's facts stands: the view of the embedded
/// node's link `sync-<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundStatus {
    /// Running, paused (the sync was stopped) or failing.
    pub state: LinkState,
    /// The position in the remote's log up to which this store holds
    /// every selected fact.
    pub bookmark: Bookmark,
    /// Entries of the remote's log after the bookmark, as last seen.
    pub lag_facts: u64,
    /// 0 when caught up; otherwise ms since it last was.
    pub lag_ms: u64,
    /// Facts stored here that this store did not hold before.
    pub facts_received: u64,
    /// Why the last attempt failed, while it is failing.
    pub last_error: Option<String>,
}

impl From<LinkView> for InboundStatus {
    fn from(view: LinkView) -> InboundStatus {
        InboundStatus {
            state: view.state,
            bookmark: view.bookmark,
            lag_facts: view.lag_facts,
            lag_ms: view.lag_ms,
            facts_received: view.facts_received,
            last_error: view.last_error,
        }
    }
}

impl Client {
    /// Syncs this embedded store with the Cairn deployment at `remote` (its
    /// base URL), both ways, for the facts of `options.types`: facts
    /// written here while the remote is unreachable are sent when it comes
    /// back, and the remote's arrive here, each direction from a bookmark
    /// persisted across restarts, predecessors first, nothing duplicated.
    /// The sync runs in the background until [`RemoteSync::stop`] (or the
    /// handle is dropped, or the client closed); calling `sync_with` again
    /// later — in this process or the next — goes on where it stopped.
    ///
    /// Changing the remote or the types of a name starts that sync over
    /// from the start of both logs (a safe no-op for what either side
    /// holds already). Only for a client of [`Client::embedded`];
    /// [`ClientError::InvalidOptions`] for a remote client, a malformed
    /// URL, name or type pattern, or a name already syncing.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use cairn_client::{Client, SyncOptions};
    ///
    /// # async fn example() -> cairn_client::Result<()> {
    /// let client = Client::embedded("/var/lib/my-device/cairn").await?;
    /// let sync = client
    ///     .sync_with("https://cairn.example:7710", SyncOptions::new(["Shop.*"]).token("cairn_…"))
    ///     .await?;
    /// // ... write with `client` as usual, online or not ...
    /// let status = sync.wait_caught_up(Duration::from_secs(30)).await?;
    /// println!("sent {}, received {}", status.outbound.facts_sent, status.inbound.facts_received);
    /// sync.stop().await;
    /// client.close().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn sync_with(&self, remote: &str, options: SyncOptions) -> Result<RemoteSync> {
        let node = Arc::clone(self.embedded_node().ok_or_else(|| {
            ClientError::InvalidOptions(
                "sync_with syncs an embedded store: open the client with Client::embedded".into(),
            )
        })?);
        let invalid = |message: String| ClientError::InvalidOptions(message);
        let url = parse_source_url(remote).map_err(|error| invalid(format!("remote: {error}")))?;
        let remote_text = source_text(&url);
        let link_name = format!("{SYNC_LINK_PREFIX}{}", options.name);
        validate_link_name(&options.name)
            .and_then(|()| validate_link_name(&link_name))
            .map_err(|error| invalid(format!("sync name: {error}")))?;
        if options.types.is_empty() {
            return Err(invalid("a sync needs at least one type pattern".into()));
        }
        for pattern in &options.types {
            Pattern::parse(pattern).map_err(|error| invalid(format!("types: {error}")))?;
        }
        let registration = Registration::new(&node, &options.name)?;
        let path = node
            .data_dir()
            .join("sync")
            .join(format!("{}.json", options.name));
        let bookmarks = BookmarkFile::open(path, remote_text.clone(), options.types.clone()).await;
        define_inbound(
            &node,
            &link_name,
            &LinkDefinition {
                source: remote_text.clone(),
                types: options.types.clone(),
                token: options.token.clone(),
            },
        )
        .await?;
        let shared = Arc::new(Mutex::new(OutboundShared {
            progress: bookmarks.loaded_progress(),
            remote_store: bookmarks.remote_store(),
            last_error: None,
        }));
        let stop = CancellationToken::new();
        let outbound = Outbound {
            node: Arc::clone(&node),
            url: url.clone(),
            token: options.token.clone(),
            types: options.types.clone(),
            bookmarks,
            shared: Arc::clone(&shared),
            stop: stop.clone(),
            backoff: Backoff {
                initial: SYNC_RETRY_DELAY_MIN,
                max: options.retry_delay_max.max(SYNC_RETRY_DELAY_MIN),
            },
            link_name: link_name.clone(),
            _registration: registration,
        };
        let task = tokio::spawn(outbound.run());
        Ok(RemoteSync {
            name: options.name,
            link_name,
            remote: remote_text,
            url,
            token: options.token,
            types: options.types,
            node,
            shared,
            stop,
            task: Some(task),
        })
    }
}

/// A running sync ([`Client::sync_with`]). Dropping it stops the sync as
/// [`RemoteSync::stop`] does, without waiting for it (so the name may
/// still be taken for a moment: call `stop` before syncing again under the
/// same name). Closing the client ends it too; its inbound link then stays
/// as it was, and runs again when the store is next opened.
pub struct RemoteSync {
    name: String,
    link_name: String,
    remote: String,
    url: Url,
    token: Option<String>,
    types: Vec<String>,
    node: Arc<EmbeddedNode>,
    shared: Arc<Mutex<OutboundShared>>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RemoteSync {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RemoteSync")
            .field("name", &self.name)
            .field("remote", &self.remote)
            .field("types", &self.types)
            .finish_non_exhaustive()
    }
}

impl RemoteSync {
    /// The sync's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the sync stands, both ways.
    pub async fn status(&self) -> Result<SyncStatus> {
        let (status, body) = self
            .node
            .request(
                Method::GET,
                &format!("/v1/links/{}", self.link_name),
                None,
                SYNC_NODE_REQUEST_TIMEOUT,
                SYNC_NODE_ANSWER_BYTES_MAX,
            )
            .await?;
        if status != 200 {
            return Err(api_error(status, &body));
        }
        let view: LinkView = serde_json::from_slice(&body).map_err(|error| {
            ClientError::Protocol(format!("cannot decode the inbound link: {error}"))
        })?;
        let outbound = {
            let shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
            OutboundStatus {
                bookmark: shared.progress.bookmark.clone(),
                lag_facts: shared.progress.lag_facts(),
                facts_sent: shared.progress.facts_received,
                remote_store: shared.remote_store.clone(),
                last_error: shared.last_error.clone(),
            }
        };
        Ok(SyncStatus {
            name: self.name.clone(),
            remote: self.remote.clone(),
            outbound,
            inbound: InboundStatus::from(view),
        })
    }

    /// Waits until everything written on either side before the call is
    /// on both sides: the remote holds every selected local fact up to the
    /// local log's end as it was at the call, and this store every
    /// selected fact of the remote's log up to its end as the remote
    /// answered it (asked again until it answers, within `timeout`).
    /// [`ClientError::NotCaughtUp`] after `timeout`, saying where each
    /// direction stood and why.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn example(sync: cairn_client::RemoteSync) -> cairn_client::Result<()> {
    /// match sync.wait_caught_up(Duration::from_secs(5)).await {
    ///     Ok(status) => println!("in sync; {} facts sent so far", status.outbound.facts_sent),
    ///     Err(error) => println!("still offline: {error}"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_caught_up(&self, timeout: Duration) -> Result<SyncStatus> {
        let started = Instant::now();
        let deadline = started + timeout;
        let not_caught_up = |detail: String| ClientError::NotCaughtUp {
            name: self.name.clone(),
            waited_ms: started.elapsed().as_millis() as u64,
            detail,
        };
        let local_head = self.local_head().await?;
        let remote = HttpSource::new(self.url.clone(), self.token.clone(), &[])
            .map_err(|error| ClientError::InvalidOptions(error.to_string()))?;
        let remote_head = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let answer = tokio::time::timeout(remaining, remote.page(0, &self.types, 1, 0)).await;
            match answer {
                Ok(Ok(page)) => break page.head,
                Ok(Err(error)) if Instant::now() + SYNC_STATUS_POLL < deadline => {
                    tracing::debug!(sync = %self.name, %error, "the remote does not answer yet");
                    tokio::time::sleep(SYNC_STATUS_POLL).await;
                }
                Ok(Err(error)) => {
                    return Err(not_caught_up(format!(
                        "the remote does not answer: {error}"
                    )))
                }
                Err(_) => return Err(not_caught_up("the remote does not answer in time".into())),
            }
        };
        loop {
            let status = self.status().await?;
            let outbound_done = status.outbound.bookmark.after >= local_head;
            let inbound_done = status.inbound.bookmark.after >= remote_head;
            if outbound_done && inbound_done {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(not_caught_up(format!(
                    "outbound at {} of the local log's {local_head} (last error: {}), inbound at {} of the remote log's {remote_head} ({:?}, last error: {})",
                    status.outbound.bookmark.after,
                    status.outbound.last_error.as_deref().unwrap_or("none"),
                    status.inbound.bookmark.after,
                    status.inbound.state,
                    status.inbound.last_error.as_deref().unwrap_or("none"),
                )));
            }
            tokio::time::sleep(SYNC_STATUS_POLL).await;
        }
    }

    /// Stops the sync: sending ends (what the remote acknowledged is
    /// bookmarked) and the inbound link is paused, so nothing flows until
    /// [`Client::sync_with`] is called again. Waits until both are done.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            if let Err(error) = task.await {
                tracing::error!(sync = %self.name, %error, "the sync task failed");
            }
        }
    }

    /// The end of the local log now.
    async fn local_head(&self) -> Result<u64> {
        let source = ApiSource(LocalLog {
            node: Arc::clone(&self.node),
        });
        match source.page(0, &[], 1, 0).await {
            Ok(page) => Ok(page.head),
            Err(_) if self.node.is_closed() => Err(ClientError::Closed),
            Err(error) => Err(ClientError::Protocol(format!(
                "cannot read the local log: {error}"
            ))),
        }
    }
}

impl Drop for RemoteSync {
    fn drop(&mut self) {
        // The task pauses the inbound link and ends.
        self.stop.cancel();
    }
}

/// Creates the inbound link (or finds it as defined, rotating its token),
/// defining it again if it selected something else, and resumes it.
async fn define_inbound(
    node: &EmbeddedNode,
    link_name: &str,
    definition: &LinkDefinition,
) -> Result<()> {
    let body = serde_json::to_vec(definition)
        .map_err(|error| ClientError::Protocol(format!("cannot encode the link: {error}")))?;
    let path = format!("/v1/links/{link_name}");
    let put = || node_call(node, Method::PUT, &path, Some(body.clone()));
    if let Err(error) = put().await {
        if error.code() != Some("link_conflict") {
            return Err(error);
        }
        // Another remote or other types under this name: start over.
        tracing::info!(
            link = link_name,
            "the sync's selection changed; its inbound link starts over"
        );
        node_call(node, Method::DELETE, &path, None).await?;
        put().await?;
    }
    node_call(node, Method::POST, &format!("{path}/resume"), None).await?;
    Ok(())
}

/// A request to the node that must answer 200 or 201.
async fn node_call(
    node: &EmbeddedNode,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<()> {
    let (status, answer) = node
        .request(
            method,
            path,
            body,
            SYNC_NODE_REQUEST_TIMEOUT,
            SYNC_NODE_ANSWER_BYTES_MAX,
        )
        .await?;
    match status {
        200 | 201 => Ok(()),
        _ => Err(api_error(status, &answer)),
    }
}

/// Keeps a sync's name taken on its node while the sync runs.
struct Registration {
    node: Arc<EmbeddedNode>,
    name: String,
}

impl Registration {
    fn new(node: &Arc<EmbeddedNode>, name: &str) -> Result<Registration> {
        let mut syncs = node.syncs.lock().unwrap_or_else(PoisonError::into_inner);
        if !syncs.insert(name.to_string()) {
            return Err(ClientError::InvalidOptions(format!(
                "a sync named {name:?} runs already on this store: stop it first"
            )));
        }
        Ok(Registration {
            node: Arc::clone(node),
            name: name.to_string(),
        })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.node
            .syncs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.name);
    }
}

/// The outbound state the task publishes and [`RemoteSync::status`] reads.
struct OutboundShared {
    progress: Progress,
    remote_store: Option<String>,
    last_error: Option<String>,
}

/// The outbound task and what it needs.
struct Outbound {
    node: Arc<EmbeddedNode>,
    url: Url,
    token: Option<String>,
    types: Vec<String>,
    bookmarks: BookmarkFile,
    shared: Arc<Mutex<OutboundShared>>,
    stop: CancellationToken,
    backoff: Backoff,
    link_name: String,
    _registration: Registration,
}

type OutboundFollower = Follower<ApiSource<LocalLog>, HttpSink<BookmarkFile>>;

impl Outbound {
    /// Sends until stopped or the node closes; then pauses the inbound
    /// link (unless the node is closed) and gives the name back.
    async fn run(self) {
        let mut failures = 0;
        while !self.stop.is_cancelled() && !self.node.is_closed() {
            let connected = tokio::select! {
                () = self.stop.cancelled() => break,
                connected = HttpSink::connect(
                    self.url.clone(),
                    self.token.clone(),
                    &self.types,
                    self.bookmarks.clone(),
                    &[],
                ) => connected,
            };
            let error = match connected {
                Ok(sink) => match self.follow(sink, &mut failures).await {
                    Some(error) => error,
                    None => break,
                },
                Err(error) => LinkError::Sink(error).to_string(),
            };
            if self.node.is_closed() {
                break;
            }
            failures += 1;
            let delay = self.backoff.delay(failures);
            tracing::debug!(sync = %self.link_name, %error, ?delay, "sending to the remote failed");
            self.lock().last_error = Some(error);
            tokio::select! {
                () = self.stop.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        if !self.node.is_closed() {
            let pause = format!("/v1/links/{}/pause", self.link_name);
            if let Err(error) = node_call(&self.node, Method::POST, &pause, None).await {
                tracing::warn!(sync = %self.link_name, %error, "cannot pause the inbound link");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutboundShared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Steps a follower over `sink` until a failure (answered, to retry
    /// after a backoff) or a stop (`None`).
    async fn follow(&self, sink: HttpSink<BookmarkFile>, failures: &mut u32) -> Option<String> {
        let remote_store = sink.store_id().to_string();
        if self.bookmarks.adopt_remote(&remote_store) {
            tracing::warn!(sync = %self.link_name, store = %remote_store, "another deployment answers at the remote's URL; sending every local fact to it");
            self.lock().progress = Progress::default();
        }
        let progress = {
            let mut shared = self.lock();
            shared.remote_store = Some(remote_store);
            shared.progress.clone()
        };
        let source = ApiSource(LocalLog {
            node: Arc::clone(&self.node),
        });
        let mut follower: OutboundFollower = Follower::new(
            source,
            sink,
            self.types.clone(),
            progress,
            FollowerOptions::default(),
        );
        let mut verified = false;
        loop {
            let attempt = async {
                if !verified {
                    follower.verify().await?;
                }
                follower.step(now_ms()).await
            };
            let result = tokio::select! {
                () = self.stop.cancelled() => return None,
                result = attempt => result,
            };
            match result {
                Ok(_) => {
                    verified = true;
                    *failures = 0;
                    let mut shared = self.lock();
                    shared.progress = follower.progress().clone();
                    shared.last_error = None;
                }
                Err(LinkError::BookmarkInvalid(reason)) => {
                    tracing::warn!(sync = %self.link_name, %reason, "the local log no longer holds the outbound bookmark; sending every local fact again");
                    self.lock().progress = Progress::default();
                    return Some(format!(
                        "the outbound bookmark was invalid ({reason}); starting over"
                    ));
                }
                Err(error) => return Some(error.to_string()),
            }
        }
    }
}

/// The embedded node's own log, read through its router as any Cairn's
/// log is read over HTTP.
struct LocalLog {
    node: Arc<EmbeddedNode>,
}

impl ApiReader for LocalLog {
    fn get(&self, path_and_query: String, timeout_ms: u64) -> BoxFuture<'_, ApiAnswerResult> {
        Box::pin(async move {
            self.node
                .request(
                    Method::GET,
                    &path_and_query,
                    None,
                    Duration::from_millis(timeout_ms),
                    cairn_replication::limits::ANSWER_BYTES_MAX,
                )
                .await
                .map(|(status, body)| (status, body.to_vec()))
                .map_err(|error| SourceError::Unavailable(format!("the embedded node: {error}")))
        })
    }
}

/// The outbound bookmark file, `DATA_DIR/sync/<name>.json`: this record as
/// JSON. A file for another remote or other types, of another version, or
/// unreadable, is not used (sending starts over, which is safe).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct OutboundRecord {
    /// The format's version: 1.
    version: u32,
    /// The remote's base URL.
    remote: String,
    /// The types sent.
    types: Vec<String>,
    /// The remote's store identity, once it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remote_store: Option<String>,
    /// The follower's progress: the bookmark in the local log.
    progress: Progress,
}

const OUTBOUND_RECORD_VERSION: u32 = 1;

/// The outbound bookmark, kept in a file of the data directory; shared by
/// the task's successive sinks.
#[derive(Clone)]
struct BookmarkFile {
    inner: Arc<BookmarkFileInner>,
}

struct BookmarkFileInner {
    path: PathBuf,
    /// What is written next (and was loaded).
    record: Mutex<OutboundRecord>,
    /// Serializes writes of the file.
    writing: tokio::sync::Mutex<()>,
}

impl BookmarkFile {
    /// Loads the bookmark of a sync with `remote` for `types`; a missing
    /// or unreadable file, or one for another remote or other types,
    /// starts from the beginning of the local log.
    async fn open(path: PathBuf, remote: String, types: Vec<String>) -> BookmarkFile {
        let fresh = OutboundRecord {
            version: OUTBOUND_RECORD_VERSION,
            remote: remote.clone(),
            types: types.clone(),
            remote_store: None,
            progress: Progress::default(),
        };
        let read_path = path.clone();
        let loaded = tokio::task::spawn_blocking(move || std::fs::read(read_path))
            .await
            .unwrap_or_else(|error| Err(std::io::Error::other(error)));
        let record = match loaded {
            Ok(bytes) => match serde_json::from_slice::<OutboundRecord>(&bytes) {
                Ok(record)
                    if record.version == OUTBOUND_RECORD_VERSION
                        && record.remote == remote
                        && record.types == types =>
                {
                    record
                }
                Ok(_) => {
                    tracing::info!(path = %path.display(), "the sync's remote or types changed; sending every local fact");
                    fresh
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "the sync's bookmark is unreadable; sending every local fact again");
                    fresh
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => fresh,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read the sync's bookmark; sending every local fact again");
                fresh
            }
        };
        BookmarkFile {
            inner: Arc::new(BookmarkFileInner {
                path,
                record: Mutex::new(record),
                writing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn record(&self) -> std::sync::MutexGuard<'_, OutboundRecord> {
        self.inner
            .record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn loaded_progress(&self) -> Progress {
        self.record().progress.clone()
    }

    fn remote_store(&self) -> Option<String> {
        self.record().remote_store.clone()
    }

    /// Records the remote's identity; answers whether facts were sent to
    /// another deployment before (so the bookmark does not hold for this
    /// one).
    fn adopt_remote(&self, store: &str) -> bool {
        let mut record = self.record();
        let other = record
            .remote_store
            .as_deref()
            .is_some_and(|known| known != store);
        if other {
            record.progress = Progress::default();
        }
        record.remote_store = Some(store.to_string());
        other
    }
}

impl ProgressKeeper for BookmarkFile {
    fn save<'a>(&'a self, progress: &'a Progress) -> BoxFuture<'a, Result<bool, SinkError>> {
        Box::pin(async move {
            let _writing = self.inner.writing.lock().await;
            let bytes = {
                let mut record = self.record();
                // An idle long-poll changes only when it was caught up:
                // not worth a write.
                if record.progress.bookmark == progress.bookmark
                    && record.progress.facts_received == progress.facts_received
                    && self.inner.path.exists()
                {
                    return Ok(true);
                }
                record.progress = progress.clone();
                record.progress.last_error = None;
                serde_json::to_vec_pretty(&*record)
                    .map_err(|error| SinkError::Unavailable(error.to_string()))?
            };
            let path = self.inner.path.clone();
            tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
                .await
                .map_err(|error| SinkError::Unavailable(error.to_string()))?
                .map_err(|error| {
                    SinkError::Unavailable(format!("cannot save the sync's bookmark: {error}"))
                })?;
            Ok(true)
        })
    }
}

/// Replaces `path` with `bytes` so that a crash leaves the old file or the
/// new one, whole: a temporary file, synced, renamed over it, and the
/// directory synced.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let directory = path
        .parent()
        .ok_or_else(|| std::io::Error::other("the bookmark's path has no directory"))?;
    std::fs::create_dir_all(directory)?;
    let temporary = path.with_extension("json.tmp");
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(directory)?.sync_all()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_bookmark_survives_a_reopen_and_resets_when_the_selection_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync").join("remote.json");
        let types = vec!["Shop.*".to_string()];
        let file = BookmarkFile::open(path.clone(), "http://a".into(), types.clone()).await;
        assert_eq!(file.loaded_progress(), Progress::default());
        assert!(!file.adopt_remote("store-a"));
        let mut progress = Progress::default();
        progress.bookmark.after = 42;
        progress.facts_received = 7;
        assert!(file.save(&progress).await.unwrap());
        assert!(!path.with_extension("json.tmp").exists());

        let again = BookmarkFile::open(path.clone(), "http://a".into(), types.clone()).await;
        assert_eq!(again.loaded_progress().bookmark.after, 42);
        assert_eq!(again.remote_store().as_deref(), Some("store-a"));
        assert!(again.adopt_remote("store-b"), "another deployment");
        assert_eq!(again.loaded_progress(), Progress::default());

        let other_types =
            BookmarkFile::open(path.clone(), "http://a".into(), vec!["HR.*".into()]).await;
        assert_eq!(other_types.loaded_progress(), Progress::default());
        let other_remote = BookmarkFile::open(path.clone(), "http://b".into(), types.clone()).await;
        assert_eq!(other_remote.loaded_progress(), Progress::default());

        std::fs::write(&path, b"{ garbage").unwrap();
        let garbage = BookmarkFile::open(path, "http://a".into(), types).await;
        assert_eq!(garbage.loaded_progress(), Progress::default());
    }
}
