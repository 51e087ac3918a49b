//! A sink over API v1: another Cairn deployment, written with
//! `POST /v1/facts` (a `200` means the batch is durable there), with the
//! link's access token. It is the receiving side of a link run by the
//! *sender* — the SDK's offline sync pushes an embedded store's facts to a
//! remote deployment this way — so the progress is not the receiver's to
//! keep: a [`ProgressKeeper`] on the sending side saves it, after the
//! receiver acknowledged what it covers.
//!
//! Batches are split to API v1's limits (at most
//! [`SINK_BATCH_FACTS_MAX`] facts and [`SINK_BATCH_BYTES_MAX`] bytes per
//! request), in order, so every part is closed under predecessors by the
//! parts before it. `422 missing_predecessors` becomes
//! [`SinkError::MissingPredecessors`] with the receiver's `missing` list
//! (the follower then fetches and sends them first); connection failures,
//! timeouts, `429` and `5xx` are [`SinkError::Unavailable`]; `401`, `403`
//! and other refusals are [`SinkError::Refused`].

use std::time::Duration;

use cairn_api::{ErrorBody, PutFactsAnswer};
use cairn_fact::{CanonicalFact, Hash};
use futures_util::future::BoxFuture;
use reqwest::{StatusCode, Url};

use crate::http_source::{join_url, HttpSource};
use crate::limits::{
    ANSWER_BYTES_MAX, SINK_BATCH_BYTES_MAX, SINK_BATCH_FACTS_MAX, SINK_REQUEST_TIMEOUT_MS,
};
use crate::progress::Progress;
use crate::sink::{ProgressKeeper, Sink, SinkError};
use crate::source::{Source, SourceError};

/// Another Cairn deployment, written over HTTP; the progress kept by `P`.
pub struct HttpSink<P> {
    base: Url,
    token: Option<String>,
    client: reqwest::Client,
    store: String,
    keeper: P,
}

impl<P> std::fmt::Debug for HttpSink<P> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("HttpSink")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<not shown>"))
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<P: ProgressKeeper> HttpSink<P> {
    /// Asks the deployment at `base` (checked by
    /// [`parse_source_url`](crate::parse_source_url)) who it is — its
    /// store identity, from one `GET /v1/log` with `types` — and answers a
    /// sink that writes to it with `token`, its progress saved by
    /// `keeper`, trusting `extra_roots` besides the public roots.
    pub async fn connect(
        base: Url,
        token: Option<String>,
        types: &[String],
        keeper: P,
        extra_roots: &[reqwest::Certificate],
    ) -> Result<HttpSink<P>, SinkError> {
        let probe =
            HttpSource::new(base.clone(), token.clone(), extra_roots).map_err(source_to_sink)?;
        let page = probe.page(0, types, 1, 0).await.map_err(source_to_sink)?;
        let client = crate::http::client(extra_roots, None).map_err(source_to_sink)?;
        Ok(HttpSink {
            base,
            token,
            client,
            store: page.store,
            keeper,
        })
    }

    /// What keeps the progress.
    pub fn keeper(&self) -> &P {
        &self.keeper
    }

    /// `POST /v1/facts` of one batch; answers how many were new.
    async fn post(&self, batch: &[CanonicalFact]) -> Result<u64, SinkError> {
        let bytes_n: usize = batch.iter().map(|fact| fact.canonical.len() + 1).sum();
        let mut body = Vec::with_capacity(bytes_n + 16);
        body.extend_from_slice(b"{\"facts\":[");
        for (index, fact) in batch.iter().enumerate() {
            if index > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&fact.canonical);
        }
        body.extend_from_slice(b"]}");
        let request = self
            .client
            .post(join_url(&self.base, "/v1/facts"))
            .timeout(Duration::from_millis(SINK_REQUEST_TIMEOUT_MS))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let (status, answer) = crate::http::send(request, self.token.as_deref(), ANSWER_BYTES_MAX)
            .await
            .map_err(source_to_sink)?;
        if status != StatusCode::OK {
            return Err(status_error(status, &answer));
        }
        let results: PutFactsAnswer = serde_json::from_slice(&answer).map_err(|error| {
            SinkError::Refused(format!("the receiver answered a put with garbage: {error}"))
        })?;
        if results.results.len() != batch.len()
            || results
                .results
                .iter()
                .zip(batch)
                .any(|(result, fact)| result.hash != fact.hash)
        {
            return Err(SinkError::Refused(format!(
                "the receiver answered {} result(s) that do not match the batch of {} fact(s)",
                results.results.len(),
                batch.len()
            )));
        }
        Ok(results
            .results
            .iter()
            .filter(|result| result.inserted)
            .count() as u64)
    }
}

/// Splits `facts` into consecutive batches within API v1's limits.
fn batches(facts: &[CanonicalFact]) -> Vec<&[CanonicalFact]> {
    let mut batches = Vec::new();
    let mut start = 0;
    let mut bytes_n = 0;
    for (index, fact) in facts.iter().enumerate() {
        let fact_bytes = fact.canonical.len() + 1;
        let full = index - start >= SINK_BATCH_FACTS_MAX
            || (index > start && bytes_n + fact_bytes > SINK_BATCH_BYTES_MAX);
        if full {
            batches.push(&facts[start..index]);
            start = index;
            bytes_n = 0;
        }
        bytes_n += fact_bytes;
    }
    if start < facts.len() {
        batches.push(&facts[start..]);
    }
    batches
}

impl<P: ProgressKeeper> Sink for HttpSink<P> {
    fn store_id(&self) -> &str {
        &self.store
    }

    fn put(&self, facts: Vec<CanonicalFact>) -> BoxFuture<'_, Result<u64, SinkError>> {
        Box::pin(async move {
            let mut inserted = 0;
            for batch in batches(&facts) {
                inserted += self.post(batch).await?;
            }
            Ok(inserted)
        })
    }

    fn save<'a>(&'a self, progress: &'a Progress) -> BoxFuture<'a, Result<bool, SinkError>> {
        self.keeper.save(progress)
    }
}

fn source_to_sink(error: SourceError) -> SinkError {
    match error {
        SourceError::Unavailable(message) => SinkError::Unavailable(message),
        SourceError::Refused(message) | SourceError::Invalid(message) => {
            SinkError::Refused(message)
        }
    }
}

/// The error an answer other than 200 to a put means.
fn status_error(status: StatusCode, body: &[u8]) -> SinkError {
    if status == StatusCode::UNPROCESSABLE_ENTITY {
        if let Ok(answer) = serde_json::from_slice::<ErrorBody>(body) {
            if answer.error.code == "missing_predecessors" {
                let missing = answer
                    .error
                    .details
                    .get("missing")
                    .and_then(serde_json::Value::as_array)
                    .map(|list| {
                        list.iter()
                            .filter_map(|text| Hash::from_hex(text.as_str()?).ok())
                            .collect::<Vec<Hash>>()
                    })
                    .unwrap_or_default();
                if !missing.is_empty() {
                    return SinkError::MissingPredecessors(missing);
                }
            }
        }
    }
    source_to_sink(crate::http::status_error(status, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_fact::{parse_json, JSON_DEPTH_MAX};

    fn fact(n: usize, padding: usize) -> CanonicalFact {
        let json = format!(
            r#"{{"type":"T","fields":{{"n":{n},"p":"{}"}},"predecessors":{{}}}}"#,
            "x".repeat(padding)
        );
        CanonicalFact::from_value(
            &parse_json(json.as_bytes(), JSON_DEPTH_MAX).unwrap(),
            1 << 21,
        )
        .unwrap()
    }

    #[test]
    fn batches_keep_to_the_fact_and_byte_limits_in_order() {
        let many: Vec<CanonicalFact> = (0..SINK_BATCH_FACTS_MAX * 2 + 1)
            .map(|n| fact(n, 0))
            .collect();
        let split = batches(&many);
        assert_eq!(
            split.iter().map(|batch| batch.len()).collect::<Vec<_>>(),
            vec![SINK_BATCH_FACTS_MAX, SINK_BATCH_FACTS_MAX, 1]
        );
        let large: Vec<CanonicalFact> = (0..20).map(|n| fact(n, 1 << 20)).collect();
        let split = batches(&large);
        assert!(split.len() > 1);
        for batch in &split {
            let bytes: usize = batch.iter().map(|fact| fact.canonical.len() + 1).sum();
            assert!(bytes <= SINK_BATCH_BYTES_MAX);
        }
        let rejoined: Vec<Hash> = split.concat().iter().map(|fact| fact.hash).collect();
        let original: Vec<Hash> = large.iter().map(|fact| fact.hash).collect();
        assert_eq!(rejoined, original);
        assert!(batches(&[]).is_empty());
    }

    #[test]
    fn answers_map_to_sink_errors() {
        let hash = fact(0, 0).hash;
        let missing = format!(
            r#"{{"error":{{"code":"missing_predecessors","message":"1 missing","missing":["{hash}"]}}}}"#
        );
        assert!(matches!(
            status_error(StatusCode::UNPROCESSABLE_ENTITY, missing.as_bytes()),
            SinkError::MissingPredecessors(list) if list == vec![hash]
        ));
        let other = br#"{"error":{"code":"invalid_fact","message":"no"}}"#;
        assert!(matches!(
            status_error(StatusCode::UNPROCESSABLE_ENTITY, other),
            SinkError::Refused(_)
        ));
        assert!(matches!(
            status_error(StatusCode::UNAUTHORIZED, b""),
            SinkError::Refused(_)
        ));
        assert!(matches!(
            status_error(StatusCode::FORBIDDEN, b"garbage"),
            SinkError::Refused(_)
        ));
        assert!(matches!(
            status_error(StatusCode::SERVICE_UNAVAILABLE, b""),
            SinkError::Unavailable(_)
        ));
        assert!(matches!(
            status_error(StatusCode::TOO_MANY_REQUESTS, b""),
            SinkError::Unavailable(_)
        ));
    }
}
