//! Repair of a link (`POST /v1/links/{name}/repair`, `cairn links
//! repair`): anti-entropy for what a link missed. The source's digests
//! (`GET /v1/digests` with the link's token) are compared with this
//! store's own for the link's types (`cairn_replication::diff`: the cost
//! grows with the differences, not the stores), and the facts the source
//! holds and this store lacks are fetched and stored, predecessors first,
//! exactly as the link stores what it reads. The link's bookmark is not
//! touched: a repair only adds facts, which the link later reads again as
//! no-ops.

use std::sync::Arc;

use cairn_api::access::any_matches;
use cairn_api::limits::LINK_REPAIR_FACTS_MAX;
use cairn_api::{DigestsAnswer, LinkRepaired, Pattern};
use cairn_fact::CanonicalFact;
use cairn_replication::{
    diff, parse_source_url, predecessors_first, store_with_predecessors, DiffError, DiffOptions,
    DigestSource, FollowerOptions, HttpDigestSource, HttpSource, LinkError, Side, Source,
    SourceError,
};
use cairn_store::digests::{HashPrefix, TypeFilter};
use cairn_store::{DigestStore, LinkRecord, Store};
use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::sink::StoreSink;
use super::{Links, StoredDefinition};
use crate::routes::digests::digests_answer;

/// This store's digests, as a comparison reads them.
struct LocalDigests {
    digests: Arc<dyn DigestStore>,
    deployment: String,
}

impl DigestSource for LocalDigests {
    fn digests<'a>(
        &'a self,
        prefix: &'a str,
        types: &'a [String],
    ) -> BoxFuture<'a, Result<DigestsAnswer, SourceError>> {
        Box::pin(async move {
            let prefix = HashPrefix::parse(prefix)
                .map_err(|error| SourceError::Invalid(format!("prefix {prefix:?}: {error}")))?;
            let patterns = types
                .iter()
                .map(|text| Pattern::parse(text))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| SourceError::Invalid(error.to_string()))?;
            let filter: TypeFilter = Arc::new(move |type_name: &str| {
                patterns.is_empty() || any_matches(&patterns, type_name)
            });
            digests_answer(self.digests.as_ref(), &self.deployment, prefix, filter)
                .await
                .map_err(|error| SourceError::Unavailable(error.to_string()))
        })
    }
}

/// Why a repair failed.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// The source failed (unreachable, refused, invalid answers), or does
    /// not serve a fact or predecessor the repair needs.
    #[error("{0}")]
    Source(String),
    /// The source is this deployment.
    #[error("the link's source is this deployment itself ({0})")]
    ToSelf(String),
    /// This store failed.
    #[error("{0}")]
    Local(String),
}

impl From<LinkError> for RepairError {
    fn from(error: LinkError) -> RepairError {
        match error {
            LinkError::Sink(error) => RepairError::Local(error.to_string()),
            other => RepairError::Source(other.to_string()),
        }
    }
}

/// Compares the link `record`'s source with this store for its types, and
/// fetches and stores what this store lacks (at most
/// [`LINK_REPAIR_FACTS_MAX`] facts per call).
pub async fn repair<S: Store>(
    store: Arc<S>,
    links: &Links,
    digests: Arc<dyn DigestStore>,
    record: &LinkRecord,
) -> Result<LinkRepaired, RepairError> {
    let definition = StoredDefinition::parse(record).map_err(RepairError::Local)?;
    let url = parse_source_url(&definition.source).map_err(RepairError::Source)?;
    let source_error = |error: SourceError| RepairError::Source(error.to_string());
    let remote_digests =
        HttpDigestSource::new(url.clone(), definition.token.clone(), &links.extra_roots)
            .map_err(source_error)?;
    let source =
        HttpSource::new(url, definition.token, &links.extra_roots).map_err(source_error)?;
    let local = LocalDigests {
        digests,
        deployment: links.deployment.clone(),
    };
    let difference = diff(
        &remote_digests,
        &local,
        &definition.types,
        &DiffOptions::default(),
    )
    .await
    .map_err(|error| match error {
        DiffError::Source { side: Side::B, .. } => RepairError::Local(error.to_string()),
        other => RepairError::Source(format!("the link's source: {other}")),
    })?;
    if difference.store_a == links.deployment {
        return Err(RepairError::ToSelf(difference.store_a));
    }
    let missing = difference.only_in_a.len();
    let to_fetch = &difference.only_in_a[..missing.min(LINK_REPAIR_FACTS_MAX)];
    let options = FollowerOptions::default();
    let sink = StoreSink {
        store,
        links: Arc::clone(&links.store),
        name: record.name.clone(),
        incarnation: record.incarnation.clone(),
        runner: links.runner_name.clone(),
        deployment: links.deployment.clone(),
    };
    let mut stored = 0;
    for chunk in to_fetch.chunks(options.page_facts_max) {
        let source = &source;
        let facts: Vec<CanonicalFact> = stream::iter(chunk.iter().copied())
            .map(|hash| async move {
                match source.fact(&hash).await {
                    Ok(Some(fact)) => Ok(fact),
                    Ok(None) => Err(RepairError::Source(format!(
                        "the source lists fact {hash} in its digests but does not serve it"
                    ))),
                    Err(error) => Err(RepairError::Source(error.to_string())),
                }
            })
            .buffered(options.fetches_in_flight_max)
            .try_collect()
            .await?;
        stored +=
            store_with_predecessors(source, &sink, predecessors_first(facts), &options).await?;
    }
    Ok(LinkRepaired {
        name: record.name.clone(),
        source_store: difference.store_a,
        missing: missing as u64,
        stored,
        remaining: (missing - to_fetch.len()) as u64,
        only_here: difference.only_in_b.len() as u64,
        requests: difference.requests,
    })
}
