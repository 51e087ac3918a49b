//! Streaming push over WebSocket (`GET /v1/subscriptions/{name}/stream`)
//! against the real binary: credit limits what is sent, acks and nacks over
//! the stream are those of the HTTP API, bad frames are answered and
//! survived up to a limit, and messages of a closed stream come back
//! through their leases.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for a frame it expects.
const FRAME_WAIT: Duration = Duration::from_secs(10);
/// How long a test watches for frames that must not come: longer than one
/// long-poll round of the server's pull loop (1 s).
const SILENCE_WAIT: Duration = Duration::from_millis(1_500);

/// What the client saw next on the socket.
#[derive(Debug)]
enum Received {
    /// A text frame, parsed.
    Frame(Value),
    /// A close frame with its code, or the end of the connection (`None`).
    Closed(Option<u16>),
    /// Nothing within the wait.
    Silent,
}

/// A blocking WebSocket client: its own small runtime, so tests can mix it
/// with the blocking HTTP helpers of `common`.
struct StreamClient {
    runtime: tokio::runtime::Runtime,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl StreamClient {
    fn connect(server: &Server, name: &str) -> StreamClient {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = stream_url(server, name);
        let (socket, response) = runtime
            .block_on(tokio_tungstenite::connect_async(url))
            .expect("the stream upgrades");
        assert_eq!(response.status().as_u16(), 101);
        StreamClient { runtime, socket }
    }

    fn send(&mut self, frame: Message) {
        self.runtime
            .block_on(self.socket.send(frame))
            .expect("the frame is sent");
    }

    fn send_json(&mut self, value: Value) {
        self.send(Message::text(value.to_string()));
    }

    fn receive(&mut self, wait: Duration) -> Received {
        let socket = &mut self.socket;
        self.runtime.block_on(async {
            loop {
                match tokio::time::timeout(wait, socket.next()).await {
                    Err(_) => return Received::Silent,
                    Ok(None) | Ok(Some(Err(_))) => return Received::Closed(None),
                    Ok(Some(Ok(Message::Text(text)))) => {
                        return Received::Frame(
                            serde_json::from_str(text.as_str()).expect("frames are JSON"),
                        )
                    }
                    Ok(Some(Ok(Message::Close(frame)))) => {
                        return Received::Closed(frame.map(|CloseFrame { code, .. }| code.into()))
                    }
                    Ok(Some(Ok(other))) => {
                        assert!(
                            matches!(other, Message::Ping(_) | Message::Pong(_)),
                            "unexpected frame {other:?}"
                        );
                    }
                }
            }
        })
    }

    /// The next frame, which must come.
    fn frame(&mut self) -> Value {
        match self.receive(FRAME_WAIT) {
            Received::Frame(value) => value,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next `n` message frames' `message` objects.
    fn messages(&mut self, n: usize) -> Vec<Value> {
        (0..n)
            .map(|_| {
                let frame = self.frame();
                assert!(frame["message"].is_object(), "expected a message: {frame}");
                frame["message"].clone()
            })
            .collect()
    }

    /// Asserts that nothing arrives for a while.
    fn assert_silent(&mut self) {
        match self.receive(SILENCE_WAIT) {
            Received::Silent => {}
            other => panic!("expected silence, got {other:?}"),
        }
    }

    /// Sends `{verb: tokens}` (plus `extra`) and returns the statuses of the
    /// results frame that answers it.
    fn settle(&mut self, verb: &str, messages: &[Value], extra: Value) -> Vec<String> {
        let tokens: Vec<Value> = messages.iter().map(|m| m["token"].clone()).collect();
        let mut request = json!({ verb: tokens });
        if let (Some(request), Some(extra)) = (request.as_object_mut(), extra.as_object()) {
            request.extend(extra.clone());
        }
        self.send_json(request);
        let answer = self.frame();
        let results = answer["results"]
            .as_array()
            .unwrap_or_else(|| panic!("expected results: {answer}"));
        for (result, token) in results.iter().zip(&tokens) {
            assert_eq!(&result["token"], token, "results follow request order");
        }
        results
            .iter()
            .map(|result| result["status"].as_str().unwrap().to_string())
            .collect()
    }

    /// Sends a close frame and waits for the server's reply or the end.
    fn close(mut self) {
        self.send(Message::Close(None));
        for _ in 0..10 {
            if let Received::Closed(_) | Received::Silent = self.receive(FRAME_WAIT) {
                return;
            }
        }
    }
}

fn stream_url(server: &Server, name: &str) -> String {
    format!(
        "{}/v1/subscriptions/{name}/stream",
        server.base.replacen("http://", "ws://", 1)
    )
}

fn start() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    (dir, server)
}

fn create(server: &Server, name: &str, definition: Value) {
    let (status, view) = put_subscription(server, name, definition);
    assert_eq!(status, 201, "{view}");
}

/// Publishes `n` new facts numbered from `first` (equal facts would have
/// equal hashes, and a second write of a fact adds nothing).
fn publish(server: &Server, first: usize, n: usize) -> Vec<String> {
    (first..first + n)
        .map(|index| put_one(server, fact("Shop.Order", json!({ "n": index }), json!({}))))
        .collect()
}

fn view(server: &Server, name: &str) -> Value {
    let (status, view) = get_json(server, &format!("/v1/subscriptions/{name}"));
    assert_eq!(status, 200, "{view}");
    view
}

fn hashes(messages: &[Value]) -> BTreeSet<String> {
    messages
        .iter()
        .map(|message| message["hash"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn without_credit_nothing_is_sent() {
    let (_dir, server) = start();
    create(&server, "orders", json!({"type": "Shop.Order"}));
    publish(&server, 0, 2);
    let mut stream = StreamClient::connect(&server, "orders");
    stream.assert_silent();
    assert_eq!(view(&server, "orders")["in_flight"], 0);
    stream.close();
}

#[test]
fn credit_bounds_the_messages_sent_and_more_credit_sends_the_rest() {
    let (_dir, server) = start();
    create(&server, "orders", json!({"type": "Shop.Order"}));
    let published = publish(&server, 0, 5);
    let mut stream = StreamClient::connect(&server, "orders");
    stream.send_json(json!({"credit": 3}));
    let first = stream.messages(3);
    stream.assert_silent();
    assert_eq!(view(&server, "orders")["in_flight"], 3);

    stream.send_json(json!({"credit": 10}));
    let rest = stream.messages(2);
    stream.assert_silent();
    let mut all = first.clone();
    all.extend(rest);
    assert_eq!(hashes(&all), published.into_iter().collect());
    for message in &all {
        assert_eq!(message["attempt"], 1);
        assert_eq!(message["fact"]["type"], "Shop.Order");
        assert!(message["seq"].as_u64().unwrap() >= 1);
        assert!(message["token"].is_string());
    }
    // The remaining credit still counts: a new fact is pushed at once.
    let late = publish(&server, 5, 1);
    assert_eq!(hashes(&stream.messages(1)), late.into_iter().collect());
    stream.close();
}

#[test]
fn acks_over_the_stream_are_those_of_the_api() {
    let (_dir, server) = start();
    create(&server, "orders", json!({"type": "Shop.Order"}));
    publish(&server, 0, 2);
    let mut stream = StreamClient::connect(&server, "orders");
    stream.send_json(json!({"credit": 2}));
    let messages = stream.messages(2);
    assert_eq!(
        stream.settle("ack", &messages, json!({})),
        ["acked", "acked"]
    );
    assert_eq!(stream.settle("ack", &messages[..1], json!({})), ["unknown"]);
    let after = view(&server, "orders");
    assert_eq!(
        (
            after["acked"].as_u64(),
            after["in_flight"].as_u64(),
            after["backlog"].as_u64()
        ),
        (Some(2), Some(0), Some(0)),
        "{after}"
    );
    // A token leased over the stream can also be acknowledged over HTTP.
    publish(&server, 2, 1);
    stream.send_json(json!({"credit": 1}));
    let third = stream.messages(1);
    assert_eq!(
        settle(&server, "orders", "ack", &third, json!({})),
        ["acked"]
    );
    assert_eq!(view(&server, "orders")["acked"], 3);
    stream.close();
}

#[test]
fn a_nack_over_the_stream_brings_the_message_back_with_the_next_attempt() {
    let (_dir, server) = start();
    create(&server, "orders", json!({"type": "Shop.Order"}));
    let published = publish(&server, 0, 1);
    let mut stream = StreamClient::connect(&server, "orders");
    stream.send_json(json!({"credit": 2}));
    let first = stream.messages(1);
    assert_eq!(first[0]["attempt"], 1);
    assert_eq!(
        stream.settle("nack", &first, json!({"delay_ms": 0, "error": "try again"})),
        ["nacked"]
    );
    let again = stream.messages(1);
    assert_eq!(again[0]["hash"], published[0].as_str());
    assert_eq!(again[0]["attempt"], 2);
    assert_ne!(again[0]["token"], first[0]["token"]);
    assert_eq!(view(&server, "orders")["redelivered"], 1);
    stream.close();
}

#[test]
fn a_bad_frame_is_answered_and_the_connection_stays_usable() {
    let (_dir, server) = start();
    create(&server, "orders", json!({"type": "Shop.Order"}));
    publish(&server, 0, 1);
    let mut stream = StreamClient::connect(&server, "orders");
    let bad_frames = [
        Message::text("not json"),
        Message::text(json!({"credit": 0}).to_string()),
        Message::text(json!({"credit": 1, "ack": ["x"]}).to_string()),
        Message::text(json!({"ack": []}).to_string()),
        Message::text(json!({"credit": 1, "surprise": true}).to_string()),
        Message::binary(b"{\"credit\": 1}".to_vec()),
    ];
    for bad_frame in bad_frames {
        stream.send(bad_frame);
        let answer = stream.frame();
        assert_eq!(answer["error"]["code"], "invalid_request", "{answer}");
        assert!(answer["error"]["message"].is_string());
    }
    // Too much outstanding credit is refused; what was granted stays.
    for _ in 0..10 {
        stream.send_json(json!({"credit": 1000}));
    }
    let message = stream.messages(1);
    stream.assert_silent();
    // 9,999 are outstanding now.
    stream.send_json(json!({"credit": 2}));
    assert_eq!(stream.frame()["error"]["code"], "credit_exceeded");
    // Unknown tokens are results, not errors.
    assert_eq!(
        stream.settle("ack", &[json!({"token": "nonsense"})], json!({})),
        ["unknown"]
    );
    assert_eq!(stream.settle("ack", &message, json!({})), ["acked"]);
    stream.close();
}

#[test]
fn ten_bad_frames_close_the_connection_with_1008() {
    let (_dir, server) = start();
    create(&server, "orders", json!({"type": "Shop.Order"}));
    let mut stream = StreamClient::connect(&server, "orders");
    for _ in 0..10 {
        stream.send(Message::text("{"));
        assert_eq!(stream.frame()["error"]["code"], "invalid_request");
    }
    match stream.receive(FRAME_WAIT) {
        Received::Closed(Some(code)) => assert_eq!(code, 1008),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[test]
fn an_oversized_frame_ends_the_connection() {
    let (_dir, server) = start();
    create(&server, "orders", json!({"type": "Shop.Order"}));
    let mut stream = StreamClient::connect(&server, "orders");
    let tokens: Vec<String> = (0..8_000).map(|index| format!("token-{index}")).collect();
    let frame = json!({ "ack": tokens }).to_string();
    assert!(frame.len() > 64 * 1024);
    stream.send(Message::text(frame));
    match stream.receive(FRAME_WAIT) {
        Received::Closed(code) => assert!(matches!(code, None | Some(1008)), "{code:?}"),
        other => panic!("expected the connection to end, got {other:?}"),
    }
    // The server itself is fine.
    assert_eq!(view(&server, "orders")["acked"], 0);
}

#[test]
fn an_unknown_subscription_is_refused_before_the_upgrade() {
    let (_dir, server) = start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let refused = runtime.block_on(tokio_tungstenite::connect_async(stream_url(
        &server, "missing",
    )));
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 404);
            let body: Value =
                serde_json::from_slice(response.body().as_deref().expect("a body")).unwrap();
            assert_eq!(body["error"]["code"], "unknown_subscription");
        }
        other => panic!("expected 404 before the upgrade, got {other:?}"),
    }
    // A plain GET gets the same answer, and a known name without an
    // upgrade gets a JSON error too.
    let (status, answer) = get_json(&server, "/v1/subscriptions/missing/stream");
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("unknown_subscription"))
    );
    create(&server, "orders", json!({"type": "Shop.Order"}));
    let (status, answer) = get_json(&server, "/v1/subscriptions/orders/stream");
    assert!((400..500).contains(&status), "{status}");
    assert_eq!(answer["error"]["code"], "websocket_required");
}

#[test]
fn messages_of_a_closed_stream_are_redelivered_after_their_lease() {
    let (_dir, server) = start();
    create(
        &server,
        "orders",
        json!({"type": "Shop.Order", "lease_ms": 300}),
    );
    let published = publish(&server, 0, 2);
    let mut stream = StreamClient::connect(&server, "orders");
    stream.send_json(json!({"credit": 2}));
    let sent = stream.messages(2);
    stream.close();

    let mut redelivered = Vec::new();
    for _ in 0..20 {
        redelivered.extend(pull(&server, "orders", 10, 2_000));
        if redelivered.len() >= 2 {
            break;
        }
    }
    assert_eq!(hashes(&redelivered), hashes(&sent));
    assert_eq!(hashes(&redelivered), published.into_iter().collect());
    for message in &redelivered {
        assert_eq!(message["attempt"], 2, "{message}");
    }
    assert_eq!(
        settle(&server, "orders", "ack", &redelivered, json!({})),
        ["acked", "acked"]
    );
}

#[test]
fn deleting_the_subscription_ends_its_streams() {
    let (_dir, server) = start();
    create(&server, "orders", json!({"type": "Shop.Order"}));
    let mut stream = StreamClient::connect(&server, "orders");
    // With credit and nothing to send, the server is long-polling.
    stream.send_json(json!({"credit": 5}));
    stream.assert_silent();
    let response = http()
        .delete(server.url("/v1/subscriptions/orders"))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let answer = stream.frame();
    assert_eq!(answer["error"]["code"], "unknown_subscription", "{answer}");
    match stream.receive(FRAME_WAIT) {
        Received::Closed(Some(code)) => assert_eq!(code, 1000),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[test]
fn shutdown_ends_streams_and_the_server_exits_cleanly() {
    let (_dir, mut server) = start();
    create(&server, "orders", json!({"type": "Shop.Order"}));
    let mut stream = StreamClient::connect(&server, "orders");
    stream.send_json(json!({"credit": 5}));
    stream.assert_silent();
    assert!(server.terminate().success());
    let answer = stream.frame();
    assert_eq!(answer["error"]["code"], "shutting_down", "{answer}");
    match stream.receive(FRAME_WAIT) {
        Received::Closed(Some(code)) => assert_eq!(code, 1001),
        other => panic!("expected a close frame, got {other:?}"),
    }
}
