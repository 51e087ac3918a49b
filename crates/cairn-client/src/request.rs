//! Request/response over facts: a command is a fact, its reply is a
//! successor fact of it, and the requester long-polls the successors of the
//! command for the reply. Nothing but facts is involved, so a request
//! survives restarts of either side and the pair stays on record.
//!
//! Facts are identified by their content, so two identical commands would
//! be one fact, and asking the same question twice would find the first
//! answer, however stale. A [`Request`] therefore carries an identity of its
//! own, fixed when it is created: the SDK adds a random `cairn_request_id`
//! (128 bits) and, unless told otherwise, a `cairn_expires_at` (RFC 3339)
//! to the command's fields. Retrying or relaying the same `Request` (for
//! example from an outbox) resends the same fact; creating a new `Request`
//! asks anew. A responder ([`Client::responder`]) skips requests past their
//! expiry — nobody waits for those any more — and never answers a request
//! twice.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_fact::{CanonicalFact, Hash};
use tokio::time::Instant;

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::limits;
use crate::subscriber::{Delivery, HandlerError, HandlerFuture};
use crate::typed::{fact_with_extra_fields, to_canonical_fact, Reply, Typed, TypedFact};
use crate::wire::SuccessorsQuery;

/// The field that gives a request its own identity.
pub const REQUEST_ID_FIELD: &str = "cairn_request_id";
/// The field after whose time (RFC 3339) responders skip a request.
pub const EXPIRES_AT_FIELD: &str = "cairn_expires_at";
/// The role in which a reply names its request.
pub const REQUEST_ROLE: &str = "request";

/// A request fact, built once: the command's fields plus a random request
/// id and an expiry. Keep it (or its [`Request::fact`], e.g. in an outbox)
/// to resend the same request; build a new one to ask again.
#[derive(Clone)]
pub struct Request<C> {
    fact: CanonicalFact,
    id: String,
    expires_at_ms: Option<u64>,
    command: PhantomData<fn() -> C>,
}

impl<C: TypedFact> Request<C> {
    /// A request for `command` that expires after
    /// [`limits::REQUEST_EXPIRY_DEFAULT`].
    pub fn new(command: &C) -> Result<Request<C>> {
        Request::build(command, Some(limits::REQUEST_EXPIRY_DEFAULT))
    }

    /// A request for `command` that responders skip after `expiry`.
    pub fn expiring_in(command: &C, expiry: Duration) -> Result<Request<C>> {
        Request::build(command, Some(expiry))
    }

    /// A request for `command` that never expires: a responder that starts
    /// later, even from the beginning of the log, still answers it.
    pub fn without_expiry(command: &C) -> Result<Request<C>> {
        Request::build(command, None)
    }

    fn build(command: &C, expiry: Option<Duration>) -> Result<Request<C>> {
        let id = unique_id()?;
        let expires_at_ms = expiry.map(|expiry| unix_time_ms().saturating_add(duration_ms(expiry)));
        let mut extra = serde_json::Map::new();
        extra.insert(REQUEST_ID_FIELD.to_string(), id.clone().into());
        if let Some(expires_at_ms) = expires_at_ms {
            extra.insert(
                EXPIRES_AT_FIELD.to_string(),
                rfc3339_of_unix_ms(expires_at_ms).into(),
            );
        }
        let fact = fact_with_extra_fields(command, extra)?;
        Ok(Request {
            fact,
            id,
            expires_at_ms,
            command: PhantomData,
        })
    }

    /// The request fact's hash (what a reply names as predecessor).
    pub fn hash(&self) -> Hash {
        self.fact.hash
    }

    /// The random request id in the fact.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When responders stop answering (ms since the Unix epoch), if ever.
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.expires_at_ms
    }

    /// The request fact, to publish it some other way (an outbox).
    pub fn fact(&self) -> &CanonicalFact {
        &self.fact
    }
}

/// A stored request whose reply can be awaited.
#[derive(Clone)]
pub struct PendingRequest<C> {
    client: Client,
    hash: Hash,
    command: PhantomData<fn() -> C>,
}

impl<C: TypedFact> PendingRequest<C> {
    pub(crate) fn new(client: Client, hash: Hash) -> PendingRequest<C> {
        PendingRequest {
            client,
            hash,
            command: PhantomData,
        }
    }

    /// The request fact's hash (what a reply names as predecessor).
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// Waits up to `timeout` for the first reply of type `R` to this
    /// request, long-polling the server; [`ClientError::ReplyTimeout`] if
    /// none arrives in time. A reply stored before the call is found at once.
    /// Only replies to `C` type-check: `R: Reply<Request = C>`.
    pub async fn reply<R: Reply<Request = C>>(&self, timeout: Duration) -> Result<Typed<R>> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut query = SuccessorsQuery::new(self.hash, R::TYPE_NAME);
        query.role = Some(REQUEST_ROLE.to_string());
        query.limit = Some(1);
        loop {
            let poll_started = Instant::now();
            let remaining = deadline.saturating_duration_since(poll_started);
            query.wait_ms = Some(duration_ms(remaining).min(limits::WAIT_MS_MAX));
            let page = self.client.successors_page(&query).await?;
            if let Some(stored) = page.facts.into_iter().next() {
                return Typed::from_stored(stored);
            }
            // Successors that were examined and excluded need not be seen again.
            query.after = Some(page.next.max(query.after.unwrap_or(0)));
            if Instant::now() >= deadline {
                return Err(ClientError::ReplyTimeout {
                    request: self.hash,
                    reply_type: R::TYPE_NAME,
                    waited_ms: duration_ms(started.elapsed()),
                });
            }
            let next_poll = (poll_started + limits::REPLY_POLL_INTERVAL_MIN).min(deadline);
            tokio::time::sleep_until(next_poll).await;
        }
    }
}

impl<C> std::fmt::Debug for Request<C> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Request")
            .field("hash", &self.fact.hash)
            .field("id", &self.id)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

impl<C> std::fmt::Debug for PendingRequest<C> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PendingRequest")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// A request as a responder's handler receives it.
#[derive(Clone, Debug, PartialEq)]
pub struct IncomingRequest<C> {
    /// The request fact's hash: the reply's `request` predecessor.
    pub hash: Hash,
    /// The command.
    pub command: C,
    /// The request id the requester's SDK added (`None` for a plain
    /// command fact stored without one).
    pub id: Option<String>,
    /// When the requester stops waiting (ms since the Unix epoch), if set.
    pub expires_at_ms: Option<u64>,
    /// 1 on the first delivery, one more on each redelivery.
    pub attempt: u32,
}

impl<C: TypedFact> IncomingRequest<C> {
    /// Reads a delivered message as a request.
    pub fn from_delivery(delivery: &Delivery) -> Result<IncomingRequest<C>> {
        let fields = delivery.fact().get("fields");
        let field = |name: &str| fields.and_then(|fields| fields.get(name)?.as_str());
        let id = field(REQUEST_ID_FIELD).map(str::to_string);
        // An expiry that is not an RFC 3339 time is ignored, as
        // `cairn_not_before` is.
        let expires_at_ms = field(EXPIRES_AT_FIELD).and_then(unix_ms_of_rfc3339);
        let typed = delivery.fact_as::<C>()?;
        Ok(IncomingRequest {
            hash: typed.hash,
            command: typed.value,
            id,
            expires_at_ms,
            attempt: delivery.attempt(),
        })
    }

    /// Whether the requester has stopped waiting.
    pub fn is_expired(&self) -> bool {
        self.expires_at_ms
            .is_some_and(|expires_at_ms| unix_time_ms() > expires_at_ms)
    }
}

impl Client {
    /// Stores a new request for `command` (with a fresh request id and the
    /// default expiry) and returns a handle to await its reply.
    pub async fn request<C: TypedFact>(&self, command: &C) -> Result<PendingRequest<C>> {
        self.send_request(&Request::new(command)?).await
    }

    /// Stores `request` (again, if it was sent before: that is the same
    /// request) and returns a handle to await its reply.
    pub async fn send_request<C: TypedFact>(
        &self,
        request: &Request<C>,
    ) -> Result<PendingRequest<C>> {
        let stored = self.put_facts(vec![request.fact.clone()]).await?;
        let hash = stored.first().map_or(request.hash(), |put| put.hash);
        Ok(PendingRequest::new(self.clone(), hash))
    }

    /// A handle to await the reply to a request stored some other way (for
    /// example published through an outbox).
    pub fn pending_request<C: TypedFact>(&self, request: Hash) -> PendingRequest<C> {
        PendingRequest::new(self.clone(), request)
    }

    /// A [`Subscriber`](crate::Subscriber) handler that answers requests of
    /// type `C` with `handler`'s reply:
    ///
    /// ```
    /// # use cairn_client::{Client, Fact, Hash, IncomingRequest, Subscriber, SubscriptionDefinition};
    /// # #[derive(Fact)] #[fact(type = "Library.IsAvailable")]
    /// # struct IsAvailable { isbn: String }
    /// # #[derive(Fact)] #[fact(type = "Library.Availability", reply_to = IsAvailable)]
    /// # struct Availability { #[predecessor] request: Hash, available: bool }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cairn_client::Result<()> {
    /// # let data = tempfile::tempdir().expect("a temporary directory");
    /// # let client = Client::embedded(data.path()).await?;
    /// # let shutdown = tokio_util::sync::CancellationToken::new();
    /// let responder = client.responder(|request: IncomingRequest<IsAvailable>| async move {
    ///     Ok(Availability { request: request.hash, available: true })
    /// });
    /// let subscriber = Subscriber::new(client.clone(), "availability", responder)
    ///     .definition(SubscriptionDefinition::new("Library.IsAvailable"));
    /// let running = tokio::spawn(subscriber.run(shutdown.clone()));
    ///
    /// let pending = client.request(&IsAvailable { isbn: "978-0".into() }).await?;
    /// let reply = pending.reply::<Availability>(std::time::Duration::from_secs(10)).await?;
    /// assert!(reply.value.available);
    /// # shutdown.cancel();
    /// # running.await.expect("the subscriber ran")?;
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    ///
    /// Each delivered request is answered once: a request past its expiry
    /// is acknowledged without an answer (its requester has given up), and
    /// one that already has a reply of type `R` (a redelivery after a
    /// crash) is not answered again. The reply must name the request it
    /// answers; one that names another is a handler error.
    pub fn responder<C, R, H, F>(
        &self,
        handler: H,
    ) -> impl Fn(Delivery) -> HandlerFuture + Send + Sync + 'static
    where
        C: TypedFact + Send + 'static,
        R: Reply<Request = C> + Send + 'static,
        H: Fn(IncomingRequest<C>) -> F + Send + Sync + 'static,
        F: Future<Output = std::result::Result<R, HandlerError>> + Send + 'static,
    {
        let client = self.clone();
        let handler = Arc::new(handler);
        move |delivery: Delivery| {
            let client = client.clone();
            let handler = Arc::clone(&handler);
            Box::pin(async move {
                let request = IncomingRequest::<C>::from_delivery(&delivery)?;
                if request.is_expired() {
                    tracing::debug!(request = %request.hash, "skipping an expired request");
                    return Ok(());
                }
                let request_hash = request.hash;
                if client.has_reply::<R>(request_hash).await? {
                    return Ok(());
                }
                let reply = handler(request).await?;
                if reply.request() != request_hash {
                    return Err(ClientError::ReplyNotLinked {
                        request: request_hash,
                    }
                    .into());
                }
                // Built before the await, so that `R` need not be `Sync`.
                let reply = to_canonical_fact(&reply)?;
                client.put_facts(vec![reply]).await?;
                Ok(())
            })
        }
    }

    /// Whether the request has a reply of type `R` already.
    async fn has_reply<R: Reply>(&self, request: Hash) -> Result<bool> {
        let mut query = SuccessorsQuery::new(request, R::TYPE_NAME);
        query.role = Some(REQUEST_ROLE.to_string());
        query.limit = Some(1);
        Ok(!self.successors_page(&query).await?.facts.is_empty())
    }
}

/// A new random id — 128 bits from the operating system, as 32 lowercase
/// hexadecimal characters — for a fact whose every occurrence matters (a
/// loan, a payment): set it when the value is created, not when it is
/// sent, so that a retry sends the same fact. Requests get one by
/// themselves.
pub fn unique_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).map_err(
        |_unspecified| ClientError::Serialize {
            type_name: "request id",
            message: "the operating system gave no random bytes".to_string(),
        },
    )?;
    Ok(format!("{:032x}", u128::from_be_bytes(bytes)))
}

fn unix_time_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    duration_ms(since_epoch)
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// An RFC 3339 UTC time with milliseconds.
fn rfc3339_of_unix_ms(unix_ms: u64) -> String {
    // Beyond year 9999 RFC 3339 has no form: no request lives that long;
    // say so plainly.
    const YEAR_10000_UNIX_MS: u64 = 253_402_300_800_000;
    if unix_ms >= YEAR_10000_UNIX_MS {
        return "9999-12-31T23:59:59Z".to_string();
    }
    let time = UNIX_EPOCH + Duration::from_millis(unix_ms);
    humantime::format_rfc3339_millis(time).to_string()
}

/// Milliseconds since the Unix epoch of an RFC 3339 time (`Z` or a
/// numeric offset such as `+02:00`); `None` for anything else or a time
/// before 1970. `humantime` reads UTC (`Z`) only, so an offset is taken off
/// here and applied to the result.
fn unix_ms_of_rfc3339(text: &str) -> Option<u64> {
    let (utc_text, offset_ms) = split_utc_offset(text)?;
    let time = humantime::parse_rfc3339(&utc_text).ok()?;
    let local_ms = i128::try_from(time.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
    u64::try_from(local_ms - i128::from(offset_ms)).ok()
}

/// `text` with its offset replaced by `Z`, and the offset in milliseconds
/// (east of UTC positive).
fn split_utc_offset(text: &str) -> Option<(String, i64)> {
    if let Some(utc) = text.strip_suffix(['Z', 'z']) {
        return Some((format!("{utc}Z"), 0));
    }
    let split = text.len().checked_sub(6)?;
    let (local, offset) = (text.get(..split)?, text.get(split..)?.as_bytes());
    let sign = match offset[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digit = |byte: u8| byte.is_ascii_digit().then(|| i64::from(byte - b'0'));
    if offset[3] != b':' {
        return None;
    }
    let hours = digit(offset[1])? * 10 + digit(offset[2])?;
    let minutes = digit(offset[4])? * 10 + digit(offset[5])?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some((format!("{local}Z"), sign * (hours * 60 + minutes) * 60_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Fact;

    #[derive(Debug, PartialEq, Fact)]
    #[fact(type = "Library.IsAvailable")]
    struct IsAvailable {
        isbn: String,
    }

    #[test]
    fn two_requests_for_the_same_command_are_two_facts() {
        let command = IsAvailable {
            isbn: "978-0".to_string(),
        };
        let first = Request::new(&command).unwrap();
        let second = Request::new(&command).unwrap();
        assert_ne!(first.hash(), second.hash());
        assert_ne!(first.id(), second.id());
        assert_eq!(first.id().len(), 32);
        let fields: serde_json::Value = serde_json::from_slice(&first.fact().canonical).unwrap();
        assert_eq!(fields["fields"][REQUEST_ID_FIELD], first.id());
        assert_eq!(fields["fields"]["isbn"], "978-0");
    }

    #[test]
    fn the_expiry_is_written_and_read_back_in_rfc3339() {
        let command = IsAvailable {
            isbn: "978-0".to_string(),
        };
        let request = Request::expiring_in(&command, Duration::from_secs(60)).unwrap();
        let expires_at_ms = request.expires_at_ms().unwrap();
        let fact: serde_json::Value = serde_json::from_slice(&request.fact().canonical).unwrap();
        let text = fact["fields"][EXPIRES_AT_FIELD].as_str().unwrap();
        assert!(text.ends_with('Z'), "{text}");
        assert_eq!(unix_ms_of_rfc3339(text), Some(expires_at_ms));
        let forever = Request::without_expiry(&command).unwrap();
        assert_eq!(forever.expires_at_ms(), None);
        let fact: serde_json::Value = serde_json::from_slice(&forever.fact().canonical).unwrap();
        assert!(fact["fields"].get(EXPIRES_AT_FIELD).is_none());
    }

    #[test]
    fn expiry_times_of_other_writers_are_read_with_their_offsets() {
        let utc_ms = 1_781_000_000_000;
        assert_eq!(rfc3339_of_unix_ms(utc_ms), "2026-06-09T10:13:20.000Z");
        assert_eq!(unix_ms_of_rfc3339("2026-06-09T10:13:20Z"), Some(utc_ms));
        assert_eq!(unix_ms_of_rfc3339("2026-06-09T10:13:20.000z"), Some(utc_ms));
        assert_eq!(
            unix_ms_of_rfc3339("2026-06-09T12:13:20+02:00"),
            Some(utc_ms)
        );
        assert_eq!(
            unix_ms_of_rfc3339("2026-06-09T05:43:20.000-04:30"),
            Some(utc_ms)
        );
        assert_eq!(
            unix_ms_of_rfc3339("2026-06-09T10:13:20.5+00:00"),
            Some(utc_ms + 500)
        );
        for not_a_time in [
            "",
            "tomorrow",
            "2026-06-09",
            "2026-06-09T10:13:20",
            "2026-06-09T10:13:20+2:00",
            "2026-06-09T10:13:20+24:00",
            "2026-06-09T10:13:20+02:60",
            "2026-06-09T10:13:20+02-00",
            "1969-12-31T23:59:59Z",
            "2026-06-09T10:13:20+é:00",
        ] {
            assert_eq!(unix_ms_of_rfc3339(not_a_time), None, "{not_a_time:?}");
        }
        assert_eq!(rfc3339_of_unix_ms(u64::MAX), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn a_command_cannot_use_the_reserved_fields() {
        #[derive(Fact)]
        #[fact(type = "Demo.Sneaky")]
        struct Sneaky {
            cairn_request_id: String,
        }
        let error = Request::new(&Sneaky {
            cairn_request_id: "x".to_string(),
        })
        .unwrap_err();
        assert!(error.to_string().contains("reserved"), "{error}");
    }
}
