//! A source over API v1: `GET /v1/log` (with `types`, long-polling) and
//! `GET /v1/facts/{hash}` of another Cairn, with the link's access token.
//! Every fact is verified against its hash — and its bytes checked to be
//! canonical — before it goes anywhere; an answer that is not a valid
//! page is refused whole. Answers are read up to a bound, and every
//! request has a deadline, so neither a flood nor a stalled connection
//! holds a link forever.
//!
//! The requests and the checks of answers are written once, over an
//! [`ApiReader`] (anything that answers a `GET`): [`HttpSource`] is one
//! over HTTP, and [`ApiSource`] makes a `Source` of any other (the SDK's
//! offline sync reads its own embedded node's log through its router).

use std::borrow::Cow;
use std::marker::PhantomData;
use std::time::Duration;

use cairn_fact::{CanonicalFact, Hash};
use futures_util::future::BoxFuture;
use reqwest::{StatusCode, Url};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::limits::{ANSWER_BYTES_MAX, REQUEST_TIMEOUT_MS_BEYOND_WAIT};
use crate::source::{Source, SourceEntry, SourceError, SourcePage};

/// Pages with more facts than this are verified on the blocking pool.
const INLINE_VERIFY_FACTS_MAX: usize = 32;

/// Another Cairn, read over HTTP.
#[derive(Clone)]
pub struct HttpSource {
    base: Url,
    token: Option<String>,
    client: reqwest::Client,
}

impl std::fmt::Debug for HttpSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("HttpSource")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<not shown>"))
            .finish()
    }
}

/// Checks a source's base URL: `http` or `https`, a host, no user
/// information (credentials are given apart, never in a URL that may be
/// logged), no query or fragment. Answers it with its path's trailing
/// slashes removed (an empty path is `/`, which [`source_text`] leaves out).
pub fn parse_source_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|error| format!("not a URL: {error}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "the scheme must be http or https, not {}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL must not carry credentials (give the link a token instead)".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the URL must not have a query or a fragment".into());
    }
    let mut url = url;
    let trimmed = url.path().trim_end_matches('/').to_string();
    url.set_path(&trimmed);
    Ok(url)
}

/// A checked source URL as text, without a trailing slash: the form a
/// link's `source` is stored and shown in.
pub fn source_text(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_string()
}

impl HttpSource {
    /// A source at `base` (checked by [`parse_source_url`]), authenticating
    /// with `token` if given, and trusting `extra_roots` besides the public
    /// roots for `https://` (a source whose certificate a private CA
    /// signed).
    pub fn new(
        base: Url,
        token: Option<String>,
        extra_roots: &[reqwest::Certificate],
    ) -> Result<HttpSource, SourceError> {
        let client = crate::http::client(extra_roots, None)?;
        Ok(HttpSource {
            base,
            token,
            client,
        })
    }

    /// The source's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }
}

impl ApiReader for HttpSource {
    fn get(&self, path_and_query: String, timeout_ms: u64) -> BoxFuture<'_, ApiAnswerResult> {
        Box::pin(async move {
            let request = self
                .client
                .get(join_url(&self.base, &path_and_query))
                .timeout(Duration::from_millis(timeout_ms));
            let (status, body) =
                crate::http::send(request, self.token.as_deref(), ANSWER_BYTES_MAX).await?;
            Ok((status.as_u16(), body))
        })
    }
}

/// `base` with `path_and_query` (`/v1/...?...`) appended to its path.
pub(crate) fn join_url(base: &Url, path_and_query: &str) -> Url {
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let mut url = base.clone();
    let joined = format!("{}{path}", base.path().trim_end_matches('/'));
    url.set_path(&joined);
    url.set_query(query);
    url
}

/// What an [`ApiReader`] answers: the status and the body of an answer.
pub type ApiAnswerResult = Result<(u16, Vec<u8>), SourceError>;

/// Something that answers `GET` requests of API v1: another Cairn over
/// HTTP ([`HttpSource`]), or a node in this process (the SDK's offline
/// sync reads its own embedded node's log this way). [`ApiSource`] turns
/// one into a [`Source`], so both are read, verified and bounded alike.
pub trait ApiReader: Send + Sync {
    /// `GET path_and_query` (e.g. `/v1/log?after=0`), answering the status
    /// and the body (at most [`ANSWER_BYTES_MAX`] bytes), within
    /// `timeout_ms`. A transport failure is [`SourceError::Unavailable`].
    fn get(&self, path_and_query: String, timeout_ms: u64) -> BoxFuture<'_, ApiAnswerResult>;
}

/// A [`Source`] over any [`ApiReader`]: `GET /v1/log` and
/// `GET /v1/facts/{hash}`, every fact verified against its hash.
#[derive(Clone, Debug)]
pub struct ApiSource<R>(pub R);

impl<R: ApiReader> Source for ApiSource<R> {
    fn page<'a>(
        &'a self,
        after: u64,
        types: &'a [String],
        limit: usize,
        wait_ms: u64,
    ) -> BoxFuture<'a, Result<SourcePage, SourceError>> {
        read_page(&self.0, after, types, limit, wait_ms)
    }

    fn fact<'a>(
        &'a self,
        hash: &'a Hash,
    ) -> BoxFuture<'a, Result<Option<CanonicalFact>, SourceError>> {
        read_fact(&self.0, hash)
    }
}

/// The path and query of a page of the log.
fn log_path(after: u64, types: &[String], limit: usize, wait_ms: u64) -> String {
    let mut url = Url::parse("http://source.invalid/v1/log").expect("a valid URL");
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("after", &after.to_string())
            .append_pair("limit", &limit.to_string())
            .append_pair("wait_ms", &wait_ms.to_string());
        for pattern in types {
            query.append_pair("types", pattern);
        }
    }
    format!("/v1/log?{}", url.query().unwrap_or_default())
}

fn read_page<'a, R: ApiReader>(
    reader: &'a R,
    after: u64,
    types: &'a [String],
    limit: usize,
    wait_ms: u64,
) -> BoxFuture<'a, Result<SourcePage, SourceError>> {
    Box::pin(async move {
        let path = log_path(after, types, limit, wait_ms);
        let (status, body) = reader
            .get(path, wait_ms + REQUEST_TIMEOUT_MS_BEYOND_WAIT)
            .await?;
        if status != StatusCode::OK.as_u16() {
            return Err(crate::http::status_error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                &body,
            ));
        }
        if body.len() > INLINE_VERIFY_FACTS_MAX * 512 {
            tokio::task::spawn_blocking(move || parse_log_page(&body))
                .await
                .map_err(|error| SourceError::Invalid(format!("verifying failed: {error}")))?
        } else {
            parse_log_page(&body)
        }
    })
}

fn read_fact<'a, R: ApiReader>(
    reader: &'a R,
    hash: &'a Hash,
) -> BoxFuture<'a, Result<Option<CanonicalFact>, SourceError>> {
    Box::pin(async move {
        let (status, body) = reader
            .get(format!("/v1/facts/{hash}"), REQUEST_TIMEOUT_MS_BEYOND_WAIT)
            .await?;
        if status == StatusCode::NOT_FOUND.as_u16() {
            return Ok(None);
        }
        if status != StatusCode::OK.as_u16() {
            return Err(crate::http::status_error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                &body,
            ));
        }
        let fact = parse_fact_answer(&body)?;
        if fact.hash != *hash {
            return Err(SourceError::Invalid(format!(
                "asked for fact {hash}, answered fact {}",
                fact.hash
            )));
        }
        Ok(Some(fact))
    })
}

/// A `/v1/log` answer as it arrives. Deserialized by hand, not derived,
/// because derived structs skip unknown members without checking them
/// (`serde_json` does not validate the strings it ignores, so a lone
/// surrogate escape there would pass): here an unknown member — allowed,
/// so that a newer source may add some — is parsed in full, and a page
/// that is not valid JSON is refused whole.
struct WirePage<'a> {
    facts: Vec<WireFact<'a>>,
    next: u64,
    store: Option<String>,
    head: Option<u64>,
    next_hash: Option<&'a str>,
}

/// One entry of a page, or a `/v1/facts/{hash}` answer; unknown members
/// are checked as in [`WirePage`].
struct WireFact<'a> {
    hash: &'a str,
    seq: u64,
    fact: &'a RawValue,
}

/// Parses an unknown member's value in full, so that invalid JSON inside
/// it is refused, and drops it.
fn skip_member<'de, M: MapAccess<'de>>(map: &mut M) -> Result<(), M::Error> {
    map.next_value::<serde_json::Value>().map(drop)
}

/// Fails when a member appears twice.
fn once<T, E: de::Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
    match slot.replace(value) {
        None => Ok(()),
        Some(_) => Err(E::duplicate_field(name)),
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for WirePage<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PageVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for PageVisitor<'a> {
            type Value = WirePage<'a>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a log page")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<WirePage<'a>, M::Error> {
                let (mut facts, mut next, mut store, mut head, mut next_hash) =
                    (None, None, None, None, None);
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match key.as_ref() {
                        "facts" => once(&mut facts, map.next_value()?, "facts")?,
                        "next" => once(&mut next, map.next_value()?, "next")?,
                        "store" => once(&mut store, map.next_value()?, "store")?,
                        "head" => once(&mut head, map.next_value()?, "head")?,
                        "next_hash" => once(&mut next_hash, map.next_value()?, "next_hash")?,
                        _ => skip_member(&mut map)?,
                    }
                }
                Ok(WirePage {
                    facts: facts.ok_or_else(|| de::Error::missing_field("facts"))?,
                    next: next.ok_or_else(|| de::Error::missing_field("next"))?,
                    store: store.flatten(),
                    head: head.flatten(),
                    next_hash: next_hash.flatten(),
                })
            }
        }
        deserializer.deserialize_map(PageVisitor(PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for WireFact<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FactVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for FactVisitor<'a> {
            type Value = WireFact<'a>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a log entry or a fact answer")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<WireFact<'a>, M::Error> {
                let (mut hash, mut seq, mut fact) = (None, None, None);
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match key.as_ref() {
                        "hash" => once(&mut hash, map.next_value()?, "hash")?,
                        "seq" => once(&mut seq, map.next_value()?, "seq")?,
                        "fact" => once(&mut fact, map.next_value()?, "fact")?,
                        _ => skip_member(&mut map)?,
                    }
                }
                Ok(WireFact {
                    hash: hash.ok_or_else(|| de::Error::missing_field("hash"))?,
                    seq: seq.ok_or_else(|| de::Error::missing_field("seq"))?,
                    fact: fact.ok_or_else(|| de::Error::missing_field("fact"))?,
                })
            }
        }
        deserializer.deserialize_map(FactVisitor(PhantomData))
    }
}

fn verify(hash_text: &str, raw: &RawValue) -> Result<CanonicalFact, SourceError> {
    let hash = Hash::from_hex(hash_text)
        .map_err(|error| SourceError::Invalid(format!("hash {hash_text:?}: {error}")))?;
    CanonicalFact::verify_stored(raw.get().as_bytes(), &hash)
        .map_err(|error| SourceError::Invalid(format!("fact {hash}: {error}")))
}

/// Decodes a `GET /v1/log` answer of a source into a page: every fact
/// checked against its hash and to be canonical, `store` and `head`
/// required. Public for the fuzz target `source_page`.
pub fn parse_log_page(body: &[u8]) -> Result<SourcePage, SourceError> {
    let page: WirePage<'_> = serde_json::from_slice(body)
        .map_err(|error| SourceError::Invalid(format!("not a log page: {error}")))?;
    let (Some(store), Some(head)) = (page.store, page.head) else {
        return Err(SourceError::Invalid(
            "the log page has no `store` and `head`: the source is not a Cairn that serves replication".into(),
        ));
    };
    let entries = page
        .facts
        .iter()
        .map(|wire| {
            Ok(SourceEntry {
                seq: wire.seq,
                fact: verify(wire.hash, wire.fact)?,
            })
        })
        .collect::<Result<Vec<_>, SourceError>>()?;
    let next_hash = page
        .next_hash
        .map(|text| {
            Hash::from_hex(text)
                .map_err(|error| SourceError::Invalid(format!("next_hash {text:?}: {error}")))
        })
        .transpose()?;
    if let (Some(hash), Some(last)) = (next_hash, entries.last()) {
        if last.seq == page.next && last.fact.hash != hash {
            return Err(SourceError::Invalid(format!(
                "next_hash {hash} is not the page's last fact {} at seq {}",
                last.fact.hash, last.seq
            )));
        }
    }
    Ok(SourcePage {
        store,
        head,
        entries,
        next: page.next,
        next_hash,
    })
}

/// Decodes a `GET /v1/facts/{hash}` answer of a source: the fact,
/// checked against its hash and to be canonical. Public for the fuzz
/// target `source_page`.
pub fn parse_fact_answer(body: &[u8]) -> Result<CanonicalFact, SourceError> {
    let wire: WireFact<'_> = serde_json::from_slice(body)
        .map_err(|error| SourceError::Invalid(format!("not a fact answer: {error}")))?;
    verify(wire.hash, wire.fact)
}

impl Source for HttpSource {
    fn page<'a>(
        &'a self,
        after: u64,
        types: &'a [String],
        limit: usize,
        wait_ms: u64,
    ) -> BoxFuture<'a, Result<SourcePage, SourceError>> {
        read_page(self, after, types, limit, wait_ms)
    }

    fn fact<'a>(
        &'a self,
        hash: &'a Hash,
    ) -> BoxFuture<'a, Result<Option<CanonicalFact>, SourceError>> {
        read_fact(self, hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FACT: &str = r#"{"fields":{"n":1},"predecessors":{},"type":"A"}"#;
    const HASH: &str = "b867bdbf87492b96c1f3a01a6d7276628cd41b344d3db28fc26898c59ed6f163";

    fn page(hash: &str, fact: &str, tail: &str) -> String {
        format!(r#"{{"facts":[{{"hash":"{hash}","seq":3,"fact":{fact}}}],"next":3{tail}}}"#)
    }

    #[test]
    fn a_valid_page_is_decoded_with_its_store_and_head() {
        let decoded =
            parse_log_page(page(HASH, FACT, r#","store":"s","head":9"#).as_bytes()).unwrap();
        assert_eq!(
            (decoded.store.as_str(), decoded.head, decoded.next),
            ("s", 9, 3)
        );
        assert_eq!(decoded.entries[0].fact.hash.to_hex(), HASH);
        assert_eq!(decoded.entries[0].fact.canonical, FACT.as_bytes());
    }

    #[test]
    fn a_page_that_is_not_verified_is_refused_whole() {
        let other_hash = format!("0{}", &HASH[1..]);
        let not_canonical = r#"{"type":"A","fields":{"n":1},"predecessors":{}}"#;
        for (body, expected) in [
            (page(&other_hash, FACT, r#","store":"s","head":9"#), "hash"),
            (
                page(
                    &Hash::of_bytes(not_canonical.as_bytes()).to_hex(),
                    not_canonical,
                    r#","store":"s","head":9"#,
                ),
                "canonical",
            ),
            (page(HASH, FACT, ""), "store"),
            ("garbage".to_string(), "not a log page"),
        ] {
            match parse_log_page(body.as_bytes()) {
                Err(SourceError::Invalid(message)) => {
                    assert!(message.contains(expected), "{body}: {message}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_members_are_allowed_only_as_valid_json() {
        let newer = page(
            HASH,
            FACT,
            r#","store":"s","head":9,"later":{"a":["\u00e9"]}"#,
        );
        assert_eq!(parse_log_page(newer.as_bytes()).unwrap().head, 9);
        for tail in [
            r#","store":"s","head":9,"later":"\udc00""#,
            r#","store":"s","head":9,"later":"\ud800x""#,
            r#","store":"s","head":9,"head":10"#,
        ] {
            let body = page(HASH, FACT, tail);
            match parse_log_page(body.as_bytes()) {
                Err(SourceError::Invalid(message)) => {
                    assert!(message.contains("not a log page"), "{body}: {message}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        let entry_with_bad_member =
            format!(r#"{{"hash":"{HASH}","seq":3,"fact":{FACT},"x":"\udc00"}}"#);
        assert!(parse_fact_answer(entry_with_bad_member.as_bytes()).is_err());
    }

    #[test]
    fn source_urls_are_checked() {
        let url = parse_source_url("http://127.0.0.1:7710/").unwrap();
        assert_eq!(source_text(&url), "http://127.0.0.1:7710");
        let nested = parse_source_url("https://example.com/cairn/").unwrap();
        assert_eq!(source_text(&nested), "https://example.com/cairn");
        for (bad, expected) in [
            ("not a url", "not a URL"),
            ("ftp://example.com", "scheme"),
            ("http://user:secret@example.com", "credentials"),
            ("http://example.com/?a=1", "query"),
            ("http://example.com/#f", "fragment"),
        ] {
            let error = parse_source_url(bad).unwrap_err();
            assert!(error.contains(expected), "{bad}: {error}");
        }
    }
}
