//! `GET /v1/subscriptions/{name}/stream`: streaming push of a subscription's
//! messages over a WebSocket, with credit-based flow control (see
//! `docs/api-v1.md`, "addition, streaming push").
//!
//! The stream is only another way to call [`Subscription::pull`],
//! [`Subscription::ack`] and [`Subscription::nack`]: leases, attempts,
//! acknowledgements and their durability are exactly those of the HTTP
//! endpoints, and this file holds no delivery logic of its own.
//!
//! Protocol (text frames of JSON, one object each):
//! - client → server: `{"credit": N}` (N from 1 to
//!   [`STREAM_CREDIT_PER_FRAME_MAX`]; the credit not yet used stays at most
//!   [`STREAM_CREDIT_OUTSTANDING_MAX`]), `{"ack": [tokens]}`,
//!   `{"nack": [tokens], "delay_ms"?: D, "error"?: "text"}`;
//! - server → client: `{"message": {"token", "hash", "seq", "attempt",
//!   "fact"}}`, one per frame, each using one credit; `{"results": [{"token",
//!   "status"}]}` answering each ack or nack frame, in order; `{"error":
//!   {"code", "message"}}` for a bad frame (the connection stays open until
//!   [`STREAM_BAD_FRAMES_MAX`] bad frames, then closes with 1008) and before
//!   the server ends the stream (shutdown: 1001; subscription deleted: 1000;
//!   storage failure: 1011).
//!
//! Each connection runs in two tasks. The connection task reads the
//! client's frames, acknowledges inline and writes frames; a pull task
//! leases messages while there is credit and hands them over through a
//! bounded channel. The pull must be its own task because a pull future
//! may hold the subscription's lock between two polls: if the connection
//! task stopped polling it while writing to a slow client or waiting for
//! an ack, every other consumer of the subscription would stall behind it.
//!
//! A message is leased when it is pulled, so its lease runs from before
//! it is sent. Messages sent but never acknowledged, and leased messages
//! still buffered when the connection ends, are simply not acknowledged:
//! their leases expire and they are delivered again with the next
//! `attempt`, exactly as after an HTTP pull whose consumer went away.

use cairn_api::ErrorCode;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, RawQuery, State};
use axum::response::Response;
use cairn_delivery::TokenOutcome;
use cairn_store::Store;
use futures_util::SinkExt as _;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::subscriptions::upcast_views;
use super::ApiPath;
use crate::auth::Caller;
use crate::delivery::{DeliveryError, PulledMessage, Subscription};
use crate::error::ApiError;
use crate::limits::{
    STREAM_BAD_FRAMES_MAX, STREAM_CLIENT_FRAME_BYTES_MAX, STREAM_CONNECTIONS_MAX,
    STREAM_CREDIT_OUTSTANDING_MAX, STREAM_CREDIT_PER_FRAME_MAX, STREAM_PULL_MESSAGES_MAX,
    STREAM_PULL_WAIT_MS, STREAM_SEND_BUFFER_MESSAGES, STREAM_SEND_TIMEOUT,
};
use crate::query::QueryParams;
use crate::schemas::{Schemas, UpcastView};
use crate::state::AppState;
use cairn_api::subscriptions::{check_nack, check_tokens};

/// `GET /v1/subscriptions/{name}/stream`: upgrades to a WebSocket that
/// pushes the subscription's messages (see the module documentation).
/// An unknown subscription is answered `404 unknown_subscription` before
/// any upgrade.
pub async fn subscription_stream<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    QueryParams::parse(raw_query.as_deref(), &[])?;
    caller.require_subscribe(&name)?;
    let subscription = state.deliveries.get(&name).await?;
    caller.require_read(subscription.selection().type_name())?;
    state.flows.observe(
        &caller,
        cairn_api::services::FlowKind::Consumes,
        [subscription.selection().type_name()],
    );
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(
            ErrorCode::WebsocketRequired,
            format!(
                "this endpoint speaks WebSocket only: {}",
                rejection.body_text()
            ),
        )
    })?;
    let permit = Arc::clone(&state.stream_connections).try_acquire_owned().map_err(|_| {
        ApiError::new(ErrorCode::Overloaded,
            format!(
                "this server keeps at most {STREAM_CONNECTIONS_MAX} streams open; retry with backoff"
            ),
        )
    })?;
    let stop = state.shutdown.child_token();
    let schemas = Arc::clone(&state.schemas);
    Ok(upgrade
        .max_message_size(STREAM_CLIENT_FRAME_BYTES_MAX)
        .max_frame_size(STREAM_CLIENT_FRAME_BYTES_MAX)
        .on_upgrade(move |socket| async move {
            run_connection(socket, subscription, schemas, caller, stop).await;
            drop(permit);
        }))
}

/// Credit granted by the client and not yet used. Only the connection task
/// adds to it and only the pull task takes from it, so the pull task never
/// takes more than it saw.
#[derive(Default)]
struct Credit {
    outstanding: AtomicU64,
    granted: Notify,
}

impl Credit {
    /// Adds `amount`, unless the outstanding credit would exceed
    /// [`STREAM_CREDIT_OUTSTANDING_MAX`]; then returns the current credit.
    fn grant(&self, amount: u64) -> Result<(), u64> {
        // Only the pull task lowers the credit meanwhile, so this check can
        // only err on the safe side.
        let current = self.outstanding.load(Ordering::Acquire);
        if current + amount > STREAM_CREDIT_OUTSTANDING_MAX {
            return Err(current);
        }
        self.outstanding.fetch_add(amount, Ordering::AcqRel);
        self.granted.notify_one();
        Ok(())
    }

    /// Waits for credit; returns it, or 0 once `stop` is cancelled.
    async fn available(&self, stop: &CancellationToken) -> u64 {
        loop {
            let outstanding = self.outstanding.load(Ordering::Acquire);
            if outstanding > 0 {
                return outstanding;
            }
            // `notify_one` keeps a permit when nobody waits, so a grant
            // between the load and this wait is not missed.
            tokio::select! {
                () = self.granted.notified() => {}
                () = stop.cancelled() => return 0,
            }
        }
    }

    /// Uses `amount` credit; `amount` is at most what `available` returned.
    fn take(&self, amount: u64) {
        let before = self.outstanding.fetch_sub(amount, Ordering::AcqRel);
        debug_assert!(before >= amount, "stream credit went below zero");
    }
}

/// What the pull task hands to the connection task.
enum Pulled {
    /// A leased message to send.
    Message(PulledMessage),
    /// Pulling failed (the subscription was deleted, or the store failed).
    Failed(DeliveryError),
}

/// Leases messages while there is credit, until `stop` or a failure.
async fn pull_messages(
    subscription: Arc<dyn Subscription>,
    credit: Arc<Credit>,
    sender: mpsc::Sender<Pulled>,
    stop: CancellationToken,
) {
    loop {
        let available = credit.available(&stop).await;
        if available == 0 {
            return;
        }
        let max = available.min(STREAM_PULL_MESSAGES_MAX as u64) as usize;
        match subscription
            .pull(max, STREAM_PULL_WAIT_MS, None, &stop)
            .await
        {
            Ok(messages) => {
                credit.take(messages.len() as u64);
                for message in messages {
                    if sender.send(Pulled::Message(message)).await.is_err() {
                        return;
                    }
                }
            }
            Err(error) => {
                let _ = sender.send(Pulled::Failed(error)).await;
                return;
            }
        }
        if stop.is_cancelled() {
            return;
        }
    }
}

/// Why a connection ends, and so which error frame and close code it gets.
enum Ending {
    /// The client closed or went away: nothing more to say.
    ClientGone,
    /// The server is shutting down.
    ShuttingDown,
    /// The client sent [`STREAM_BAD_FRAMES_MAX`] bad frames.
    TooManyBadFrames,
    /// A frame broke the WebSocket protocol or exceeded
    /// [`STREAM_CLIENT_FRAME_BYTES_MAX`]; the text says which.
    BrokenFrame(String),
    /// The subscription was deleted, or the store failed.
    Failed(DeliveryError),
    /// The caller's access token was revoked or expired.
    Unauthenticated,
}

/// Serves one connection until it ends, then stops its pull task.
async fn run_connection(
    mut socket: WebSocket,
    subscription: Arc<dyn Subscription>,
    schemas: Arc<Schemas>,
    caller: Caller,
    stop: CancellationToken,
) {
    let credit = Arc::new(Credit::default());
    let (sender, mut receiver) = mpsc::channel(STREAM_SEND_BUFFER_MESSAGES);
    let puller = tokio::spawn(pull_messages(
        Arc::clone(&subscription),
        Arc::clone(&credit),
        sender,
        stop.clone(),
    ));
    let ending = {
        let mut connection = Connection {
            socket: &mut socket,
            subscription: subscription.as_ref(),
            schemas: &schemas,
            caller: &caller,
            credit: &credit,
            stop: &stop,
            n_bad_frames: 0,
        };
        connection.serve(&mut receiver).await
    };
    // Messages still buffered stay leased until their leases expire.
    stop.cancel();
    drop(receiver);
    if let Err(error) = puller.await {
        tracing::warn!(%error, "stream pull task failed");
    }
    let (error, code, reason): (Option<Message>, u16, String) = match ending {
        Ending::ClientGone => {
            // Sends the reply to the client's close frame, which the
            // WebSocket layer queued, if the client is still there.
            let _ = tokio::time::timeout(STREAM_SEND_TIMEOUT, socket.flush()).await;
            return;
        }
        Ending::ShuttingDown => (
            Some(error_frame(
                "shutting_down",
                "the server is shutting down; reconnect to another server or later",
            )),
            close_code::AWAY,
            "shutting down".into(),
        ),
        Ending::TooManyBadFrames => (None, close_code::POLICY, "too many bad frames".into()),
        Ending::Unauthenticated => (
            Some(error_frame(
                "unauthenticated",
                "the access token was revoked or expired",
            )),
            close_code::POLICY,
            "access token revoked or expired".into(),
        ),
        Ending::BrokenFrame(problem) => (None, close_code::POLICY, close_reason(&problem)),
        Ending::Failed(failure) => {
            let deleted = matches!(failure, DeliveryError::UnknownSubscription(_));
            let api_error = ApiError::from(failure);
            let (code, reason) = if deleted {
                (close_code::NORMAL, "subscription deleted")
            } else {
                (close_code::ERROR, "server error")
            };
            let error = error_frame(api_error.code.as_str(), &api_error.message);
            (Some(error), code, reason.into())
        }
    };
    let mut frames = Vec::new();
    frames.extend(error);
    frames.push(Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    })));
    for frame in frames {
        let sent = tokio::time::timeout(STREAM_SEND_TIMEOUT, socket.send(frame)).await;
        if !matches!(sent, Ok(Ok(()))) {
            return;
        }
    }
}

/// The connection task's side of one connection.
struct Connection<'a> {
    socket: &'a mut WebSocket,
    subscription: &'a dyn Subscription,
    schemas: &'a Schemas,
    caller: &'a Caller,
    credit: &'a Credit,
    stop: &'a CancellationToken,
    n_bad_frames: u32,
}

impl Connection<'_> {
    /// Reads client frames and forwards pulled messages until the
    /// connection ends.
    async fn serve(&mut self, receiver: &mut mpsc::Receiver<Pulled>) -> Ending {
        loop {
            let step = tokio::select! {
                () = self.stop.cancelled() => return Ending::ShuttingDown,
                () = self.caller.invalidated() => return Ending::Unauthenticated,
                pulled = receiver.recv() => match pulled {
                    Some(Pulled::Message(message)) => {
                        match upcast_views(self.subscription, self.schemas, std::slice::from_ref(&message)).await {
                            Ok(mut views) => self.send(message_frame(&message, views.pop().flatten())).await,
                            Err(error) => Err(Ending::Failed(error)),
                        }
                    }
                    Some(Pulled::Failed(error)) => Err(Ending::Failed(error)),
                    // The pull task ends on its own only after `stop`.
                    None => Err(Ending::ShuttingDown),
                },
                frame = self.socket.recv() => match frame {
                    Some(Ok(Message::Text(text))) => self.handle_text(text.as_str()).await,
                    Some(Ok(Message::Binary(_))) => {
                        self.bad_frame("invalid_request", "frames must be text frames of JSON")
                            .await
                    }
                    // Pings are answered by the WebSocket layer itself.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                    Some(Ok(Message::Close(_))) | None => Err(Ending::ClientGone),
                    Some(Err(error)) => {
                        tracing::debug!(%error, "stream frame refused");
                        Err(Ending::BrokenFrame(error.to_string()))
                    }
                },
            };
            if let Err(ending) = step {
                return ending;
            }
        }
    }

    /// Writes one frame, giving up on a client that does not read.
    async fn send(&mut self, frame: String) -> Result<(), Ending> {
        match tokio::time::timeout(STREAM_SEND_TIMEOUT, self.socket.send(frame.into())).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(Ending::ClientGone),
        }
    }

    /// Answers a bad frame with an error frame; the last allowed one ends
    /// the connection.
    async fn bad_frame(&mut self, code: &str, message: &str) -> Result<(), Ending> {
        self.n_bad_frames += 1;
        self.send(error_frame_text(code, message)).await?;
        if self.n_bad_frames >= STREAM_BAD_FRAMES_MAX {
            return Err(Ending::TooManyBadFrames);
        }
        Ok(())
    }

    /// Acts on one text frame of the client.
    async fn handle_text(&mut self, text: &str) -> Result<(), Ending> {
        let request = match parse_request(text) {
            Ok(request) => request,
            Err(message) => return self.bad_frame("invalid_request", &message).await,
        };
        let outcomes = match request {
            Request::Credit(amount) => {
                return match self.credit.grant(amount) {
                    Ok(()) => Ok(()),
                    Err(current) => {
                        let message = format!(
                            "credit {amount} would make {} outstanding; at most {STREAM_CREDIT_OUTSTANDING_MAX} may be",
                            current + amount
                        );
                        self.bad_frame("credit_exceeded", &message).await
                    }
                };
            }
            Request::Ack(tokens) => self.subscription.ack(&tokens).await,
            Request::Nack {
                tokens,
                delay_ms,
                error,
            } => {
                self.subscription
                    .nack(&tokens, delay_ms, error.as_deref())
                    .await
            }
        };
        match outcomes {
            Ok(outcomes) => self.send(results_frame(&outcomes)).await,
            Err(error) => Err(Ending::Failed(error)),
        }
    }
}

/// A client frame as sent; [`parse_request`] checks which members go
/// together.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFrame {
    credit: Option<u64>,
    ack: Option<Vec<String>>,
    nack: Option<Vec<String>>,
    delay_ms: Option<u64>,
    error: Option<String>,
}

/// One checked client request.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// More credit, from 1 to [`STREAM_CREDIT_PER_FRAME_MAX`].
    Credit(u64),
    /// Acknowledge these tokens, 1 to [`crate::limits::ACK_TOKENS_MAX`].
    Ack(Vec<String>),
    /// Negatively acknowledge these tokens.
    Nack {
        /// The lease tokens to refuse, 1 to
        /// [`crate::limits::ACK_TOKENS_MAX`].
        tokens: Vec<String>,
        /// How long before the next attempt (the backoff when absent).
        delay_ms: Option<u64>,
        /// Why the consumer failed.
        error: Option<String>,
    },
}

/// Parses and checks a client frame; the error is a sentence for the client.
pub fn parse_request(text: &str) -> Result<Request, String> {
    let frame: ClientFrame =
        serde_json::from_str(text).map_err(|error| format!("invalid frame: {error}"))?;
    let n_kinds = [
        frame.credit.is_some(),
        frame.ack.is_some(),
        frame.nack.is_some(),
    ]
    .into_iter()
    .filter(|present| *present)
    .count();
    if n_kinds != 1 {
        return Err("a frame holds exactly one of credit, ack and nack".to_string());
    }
    if frame.nack.is_none() && (frame.delay_ms.is_some() || frame.error.is_some()) {
        return Err("delay_ms and error go only with nack".to_string());
    }
    if let Some(amount) = frame.credit {
        if !(1..=STREAM_CREDIT_PER_FRAME_MAX).contains(&amount) {
            return Err(format!(
                "credit must be from 1 to {STREAM_CREDIT_PER_FRAME_MAX}"
            ));
        }
        return Ok(Request::Credit(amount));
    }
    if let Some(tokens) = frame.ack {
        check_tokens(&tokens)?;
        return Ok(Request::Ack(tokens));
    }
    let tokens = frame.nack.unwrap_or_default();
    check_tokens(&tokens)?;
    check_nack(frame.delay_ms, frame.error.as_deref())?;
    Ok(Request::Nack {
        tokens,
        delay_ms: frame.delay_ms,
        error: frame.error,
    })
}

/// Bytes of a close frame's reason at most (RFC 6455: a control frame's
/// payload is at most 125 bytes, two of which hold the code).
const CLOSE_REASON_BYTES_MAX: usize = 123;

/// `problem`, cut at a character boundary to fit a close frame.
fn close_reason(problem: &str) -> String {
    let mut end = problem.len().min(CLOSE_REASON_BYTES_MAX);
    while !problem.is_char_boundary(end) {
        end -= 1;
    }
    problem[..end].to_string()
}

/// `{"message": {...}}` with the fact's canonical JSON spliced in, as the
/// pull answer does.
fn message_frame(message: &PulledMessage, view: Option<UpcastView>) -> String {
    let mut json = String::with_capacity(message.canonical.len() * 2 + 200);
    let _ = write!(
        json,
        "{{\"message\":{{\"token\":{},\"hash\":\"{}\",\"seq\":{},\"attempt\":{},\"fact\":",
        json!(message.token),
        message.hash,
        message.seq,
        message.attempt
    );
    // Canonical JSON is valid UTF-8 JSON by construction.
    let stored = String::from_utf8_lossy(&message.canonical);
    match view {
        None => json.push_str(&stored),
        Some(view) => {
            let _ = write!(
                json,
                "{},\"upcast\":{},\"original\":{stored}",
                view.fact.get(),
                json!(view.marker)
            );
        }
    }
    json.push_str("}}");
    json
}

/// `{"results": [...]}`, shaped like the ack and nack answers over HTTP.
fn results_frame(outcomes: &[TokenOutcome]) -> String {
    serde_json::to_string(&super::subscriptions::token_results(outcomes)).unwrap_or_default()
}

/// `{"error": {"code", "message"}}`, the shape of the API's errors.
fn error_frame_text(code: &str, message: &str) -> String {
    json!({ "error": { "code": code, "message": message } }).to_string()
}

fn error_frame(code: &str, message: &str) -> Message {
    Message::Text(error_frame_text(code, message).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_delivery::limits as delivery_limits;

    #[test]
    fn credit_frames_are_checked() {
        assert_eq!(parse_request(r#"{"credit": 5}"#), Ok(Request::Credit(5)));
        assert_eq!(
            parse_request(r#"{"credit": 1000}"#),
            Ok(Request::Credit(1000))
        );
        assert!(parse_request(r#"{"credit": 0}"#).is_err());
        assert!(parse_request(r#"{"credit": 1001}"#).is_err());
        assert!(parse_request(r#"{"credit": -1}"#).is_err());
        assert!(parse_request(r#"{"credit": 1, "delay_ms": 5}"#).is_err());
    }

    #[test]
    fn ack_and_nack_frames_are_checked() {
        assert_eq!(
            parse_request(r#"{"ack": ["a", "b"]}"#),
            Ok(Request::Ack(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            parse_request(r#"{"nack": ["a"], "delay_ms": 10, "error": "boom"}"#),
            Ok(Request::Nack {
                tokens: vec!["a".into()],
                delay_ms: Some(10),
                error: Some("boom".into()),
            })
        );
        assert!(parse_request(r#"{"ack": []}"#).is_err());
        assert!(parse_request(r#"{"ack": ["a"], "nack": ["b"]}"#).is_err());
        assert!(parse_request(r#"{"nack": ["a"], "delay_ms": 86400001}"#).is_err());
        let long_error = "x".repeat(delivery_limits::LAST_ERROR_BYTES_MAX + 1);
        assert!(parse_request(&json!({ "nack": ["a"], "error": long_error }).to_string()).is_err());
    }

    #[test]
    fn malformed_frames_are_refused() {
        assert!(parse_request("").is_err());
        assert!(parse_request("not json").is_err());
        assert!(parse_request("{}").is_err());
        assert!(parse_request(r#"{"credit": 1, "extra": true}"#).is_err());
        assert!(parse_request(r#"{"credit": 1, "credit": 2}"#).is_err());
    }

    #[test]
    fn close_reasons_fit_a_control_frame() {
        assert_eq!(close_reason("short"), "short");
        let long = "é".repeat(100);
        let reason = close_reason(&long);
        assert!(reason.len() <= CLOSE_REASON_BYTES_MAX);
        assert!(long.starts_with(&reason) && !reason.is_empty());
    }

    #[test]
    fn credit_stays_within_the_outstanding_limit() {
        let credit = Credit::default();
        for _ in 0..STREAM_CREDIT_OUTSTANDING_MAX / STREAM_CREDIT_PER_FRAME_MAX {
            assert_eq!(credit.grant(STREAM_CREDIT_PER_FRAME_MAX), Ok(()));
        }
        assert_eq!(credit.grant(1), Err(STREAM_CREDIT_OUTSTANDING_MAX));
        credit.take(10);
        assert_eq!(credit.grant(10), Ok(()));
        assert_eq!(credit.grant(1), Err(STREAM_CREDIT_OUTSTANDING_MAX));
    }
}
