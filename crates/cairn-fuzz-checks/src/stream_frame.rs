//! Check of the parser of the client's frames on a subscription's
//! WebSocket stream (`{"credit"}`, `{"ack"}`, `{"nack", "delay_ms"?,
//! "error"?}`): it never panics, a frame it accepts respects the limits,
//! re-serialized it parses back to the same request, and an ack or nack
//! frame is accepted exactly when the same request is accepted over HTTP.
//! As for the HTTP bodies, a token list at its limit, grown by one token,
//! must be refused.

use cairn_server::limits::STREAM_CREDIT_PER_FRAME_MAX;
use cairn_server::parsers::{
    parse_body, parse_stream_frame, AckRequest, NackRequest, StreamRequest,
};
use serde_json::json;

use crate::subscription_request_body::{
    assert_nack_limits, assert_one_token_more_is_refused, assert_token_count, nack_members,
};

/// Parses `data` as a text frame and panics if an accepted frame breaks a
/// limit or does not survive a round trip.
pub fn check_stream_frame(data: &[u8]) {
    // WebSocket text frames are UTF-8 (the WebSocket layer refuses the
    // others before the parser sees them).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(request) = parse_stream_frame(text) else {
        return;
    };
    let frame = match &request {
        StreamRequest::Credit(amount) => {
            assert!(
                (1..=STREAM_CREDIT_PER_FRAME_MAX).contains(amount),
                "credit {amount} accepted"
            );
            json!({ "credit": amount })
        }
        StreamRequest::Ack(tokens) => {
            assert_token_count(tokens);
            assert_one_token_more_is_refused(tokens, |tokens| {
                parse_stream_frame(&json!({ "ack": tokens }).to_string()).is_ok()
            });
            let body = json!({ "tokens": tokens }).to_string();
            assert_eq!(
                parse_body::<AckRequest>(body.as_bytes()).ok(),
                Some(AckRequest {
                    tokens: tokens.clone()
                }),
                "an ack frame accepted on the stream is accepted over HTTP"
            );
            json!({ "ack": tokens })
        }
        StreamRequest::Nack {
            tokens,
            delay_ms,
            error,
        } => {
            assert_token_count(tokens);
            assert_nack_limits(*delay_ms, error.as_deref());
            assert_one_token_more_is_refused(tokens, |tokens| {
                let frame = nack_members("nack", tokens, *delay_ms, error.as_deref());
                parse_stream_frame(&frame.to_string()).is_ok()
            });
            let body = nack_members("tokens", tokens, *delay_ms, error.as_deref()).to_string();
            assert_eq!(
                parse_body::<NackRequest>(body.as_bytes()).ok(),
                Some(NackRequest {
                    tokens: tokens.clone(),
                    delay_ms: *delay_ms,
                    error: error.clone(),
                }),
                "a nack frame accepted on the stream is accepted over HTTP"
            );
            nack_members("nack", tokens, *delay_ms, error.as_deref())
        }
    };
    let frame = frame.to_string();
    assert_eq!(
        parse_stream_frame(&frame),
        Ok(request),
        "re-serialized frame {frame}"
    );
}
