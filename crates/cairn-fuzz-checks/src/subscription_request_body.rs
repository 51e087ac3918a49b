//! Check of the parser of the JSON bodies of the POSTs on a subscription
//! (pull, ack, nack, extend, pause and resume, dead-letter replay): it
//! never panics, a body it accepts respects every limit the handler relies
//! on, a re-serialized accepted body parses back to the same value, and an
//! ack or nack is accepted over HTTP exactly when the same request is
//! accepted as a stream frame (the two share their limits).
//!
//! A token list at its limit, grown by one token, must be refused. The
//! check tests that itself because libFuzzer cannot: the seed at the limit
//! (10,000 tokens) is the largest input, so libFuzzer never makes a longer
//! one.

use cairn_delivery::limits as delivery_limits;
use cairn_server::limits::{ACK_TOKENS_MAX, PULL_MESSAGES_MAX, WAIT_MS_MAX};
use cairn_server::parsers::{
    parse_body, parse_stream_frame, AckRequest, EmptyRequest, ExtendRequest, NackRequest,
    PullRequest, ReplayRequest, StreamRequest,
};
use serde_json::{json, Map, Value};

/// Parses `data` as every body kind and panics if an accepted body breaks
/// a limit or does not survive a round trip.
pub fn check_subscription_request_body(data: &[u8]) {
    let whitespace_only = data.iter().all(u8::is_ascii_whitespace);
    if let Ok(body) = parse_body::<AckRequest>(data) {
        check_ack(&body);
    }
    if let Ok(body) = parse_body::<NackRequest>(data) {
        check_nack(&body);
    }
    if let Ok(body) = parse_body::<ExtendRequest>(data) {
        check_extend(&body);
    }
    if let Ok(body) = parse_body::<ReplayRequest>(data) {
        check_replay(&body);
    }
    if let Ok(body) = parse_body::<PullRequest>(data) {
        check_pull(&body);
    }
    // The bodies with no required member accept the empty body as `{}`.
    let empty = parse_body::<EmptyRequest>(data).ok();
    if whitespace_only {
        assert_eq!(empty, Some(EmptyRequest {}), "an empty body counts as {{}}");
        assert_eq!(
            parse_body::<PullRequest>(data).ok(),
            Some(PullRequest {
                max: None,
                wait_ms: None,
                lease_ms: None
            })
        );
        assert_eq!(
            parse_body::<ReplayRequest>(data).ok(),
            Some(ReplayRequest { hashes: None })
        );
    }
    if let Some(body) = empty {
        assert_eq!(reparsed::<EmptyRequest>(&json!({})), body);
    }
}

fn check_ack(body: &AckRequest) {
    assert_token_count(&body.tokens);
    assert_one_token_more_is_refused(&body.tokens, |tokens| {
        parse_body::<AckRequest>(json!({ "tokens": tokens }).to_string().as_bytes()).is_ok()
    });
    assert_eq!(
        &reparsed::<AckRequest>(&json!({ "tokens": body.tokens })),
        body
    );
    assert_eq!(
        parse_stream_frame(&json!({ "ack": body.tokens }).to_string()),
        Ok(StreamRequest::Ack(body.tokens.clone())),
        "an ack accepted over HTTP is accepted as a stream frame"
    );
}

fn check_nack(body: &NackRequest) {
    assert_token_count(&body.tokens);
    assert_nack_limits(body.delay_ms, body.error.as_deref());
    let delay_ms = body.delay_ms;
    let error = body.error.as_deref();
    assert_one_token_more_is_refused(&body.tokens, |tokens| {
        let members = nack_members("tokens", tokens, delay_ms, error);
        parse_body::<NackRequest>(members.to_string().as_bytes()).is_ok()
    });
    let members = nack_members("tokens", &body.tokens, delay_ms, error);
    assert_eq!(&reparsed::<NackRequest>(&members), body);
    // The same request as a stream frame: `nack` holds the tokens.
    assert_eq!(
        parse_stream_frame(&nack_members("nack", &body.tokens, delay_ms, error).to_string()),
        Ok(StreamRequest::Nack {
            tokens: body.tokens.clone(),
            delay_ms: body.delay_ms,
            error: body.error.clone(),
        }),
        "a nack accepted over HTTP is accepted as a stream frame"
    );
}

fn check_extend(body: &ExtendRequest) {
    assert_token_count(&body.tokens);
    assert_lease_ms(body.lease_ms);
    let extend_members = |tokens: &[String]| {
        let mut members = Map::new();
        members.insert("tokens".into(), json!(tokens));
        insert_some(&mut members, "lease_ms", body.lease_ms.map(Value::from));
        Value::Object(members)
    };
    assert_one_token_more_is_refused(&body.tokens, |tokens| {
        parse_body::<ExtendRequest>(extend_members(tokens).to_string().as_bytes()).is_ok()
    });
    assert_eq!(
        &reparsed::<ExtendRequest>(&extend_members(&body.tokens)),
        body
    );
}

fn check_replay(body: &ReplayRequest) {
    if let Some(hashes) = &body.hashes {
        assert!(
            (1..=ACK_TOKENS_MAX).contains(&hashes.len()),
            "{} hashes accepted",
            hashes.len()
        );
    }
    let mut members = Map::new();
    insert_some(
        &mut members,
        "hashes",
        body.hashes.as_ref().map(|h| json!(h)),
    );
    assert_eq!(&reparsed::<ReplayRequest>(&Value::Object(members)), body);
}

fn check_pull(body: &PullRequest) {
    if let Some(max) = body.max {
        assert!(
            (1..=PULL_MESSAGES_MAX as u64).contains(&max),
            "max {max} accepted"
        );
    }
    if let Some(wait_ms) = body.wait_ms {
        assert!(wait_ms <= WAIT_MS_MAX, "wait_ms {wait_ms} accepted");
    }
    assert_lease_ms(body.lease_ms);
    let mut members = Map::new();
    insert_some(&mut members, "max", body.max.map(Value::from));
    insert_some(&mut members, "wait_ms", body.wait_ms.map(Value::from));
    insert_some(&mut members, "lease_ms", body.lease_ms.map(Value::from));
    assert_eq!(&reparsed::<PullRequest>(&Value::Object(members)), body);
}

/// An accepted token list holds 1 to `ACK_TOKENS_MAX` tokens (HTTP and
/// stream).
pub(crate) fn assert_token_count(tokens: &[String]) {
    assert!(
        (1..=ACK_TOKENS_MAX).contains(&tokens.len()),
        "{} tokens accepted",
        tokens.len()
    );
}

/// When an accepted token list is at its limit, `accepts`, which says
/// whether the same request with other tokens is accepted, refuses one
/// token more.
pub(crate) fn assert_one_token_more_is_refused(
    tokens: &[String],
    accepts: impl Fn(&[String]) -> bool,
) {
    if tokens.len() == ACK_TOKENS_MAX {
        let mut more = tokens.to_vec();
        more.push(String::new());
        assert!(!accepts(&more), "{} tokens accepted", more.len());
    }
}

/// A nack as JSON, HTTP body (`tokens_member` "tokens") or stream frame
/// ("nack"); an absent delay or error is left out.
pub(crate) fn nack_members(
    tokens_member: &str,
    tokens: &[String],
    delay_ms: Option<u64>,
    error: Option<&str>,
) -> Value {
    let mut members = Map::new();
    members.insert(tokens_member.into(), json!(tokens));
    insert_some(&mut members, "delay_ms", delay_ms.map(Value::from));
    insert_some(&mut members, "error", error.map(Value::from));
    Value::Object(members)
}

/// An accepted nack's delay and error text are within their limits (HTTP
/// and stream).
pub(crate) fn assert_nack_limits(delay_ms: Option<u64>, error: Option<&str>) {
    if let Some(delay_ms) = delay_ms {
        assert!(
            delay_ms <= delivery_limits::DELAY_MS_MAX,
            "delay_ms {delay_ms} accepted"
        );
    }
    if let Some(error) = error {
        assert!(
            error.len() <= delivery_limits::LAST_ERROR_BYTES_MAX,
            "an error of {} bytes accepted",
            error.len()
        );
    }
}

fn assert_lease_ms(lease_ms: Option<u64>) {
    if let Some(lease_ms) = lease_ms {
        assert!(
            (delivery_limits::LEASE_MS_MIN..=delivery_limits::LEASE_MS_MAX).contains(&lease_ms),
            "lease_ms {lease_ms} accepted"
        );
    }
}

/// Adds `name` to `members` when there is a value: an absent member is how
/// the bodies say "none".
fn insert_some(members: &mut Map<String, Value>, name: &str, value: Option<Value>) {
    if let Some(value) = value {
        members.insert(name.into(), value);
    }
}

/// Parses the text of `json` as a body of shape `T`, which must be
/// accepted since it was built from an accepted body.
fn reparsed<T: cairn_server::parsers::RequestBody>(json: &Value) -> T {
    let text = json.to_string();
    parse_body::<T>(text.as_bytes())
        .unwrap_or_else(|error| panic!("re-serialized body {text} refused: {error:?}"))
}
