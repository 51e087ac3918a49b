//! Paths `store-write` and `store-read`: the embedded store (fjall, real
//! files in a fresh temporary directory, durable syncs as in production).
//!
//! * `store-write`: the data set in batches of 100 facts, one
//!   `put_facts` after the other into an empty store, each answered once
//!   durable (one group commit and one sync per batch).
//! * `store-read`: after loading the data set (not measured), every fact
//!   by its hash (`get_fact`, which verifies the hash), then each order's
//!   lines with a successors query `without` returns.
//!
//! The data set (5,000 facts; the store reaches about 3 MiB on disk) stays in the
//! storage engine's memtables, far below their limits (8 MiB each, and
//! fjall flushes when all of them reach half of the 32 MiB write buffer):
//! reads measure the store's own work and the memtable lookups, not disk
//! segments, and no flush runs while a path is measured.

use std::sync::Arc;

use anyhow::{ensure, Context};
use cairn_fact::CanonicalFact;
use cairn_store::{EmbeddedOptions, EmbeddedStore, Store, SuccessorsQuery};

use crate::inputs;

/// A fresh store in a temporary directory, removed when dropped (after
/// the store is closed).
pub struct FreshStore {
    /// The store.
    pub store: Arc<EmbeddedStore>,
    directory: tempfile::TempDir,
}

impl FreshStore {
    /// Opens an empty store with the default options.
    pub fn open() -> anyhow::Result<FreshStore> {
        let directory = tempfile::Builder::new()
            .prefix("cairn-instructions.")
            .tempdir()?;
        let store = EmbeddedStore::open(directory.path(), EmbeddedOptions::default())
            .context("cannot open the store")?;
        Ok(FreshStore {
            store: Arc::new(store),
            directory,
        })
    }

    /// Where the store's files are.
    pub fn path(&self) -> &std::path::Path {
        self.directory.path()
    }

    /// Closes the store durably (outside what is measured).
    pub fn close(self) {
        self.store.close();
    }
}

/// A runtime of one thread: what the measured part runs on, with no
/// worker threads whose scheduling would vary.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Writes `batches` one after the other; returns the facts inserted.
pub async fn put_batches(
    store: &EmbeddedStore,
    batches: Vec<Vec<CanonicalFact>>,
) -> anyhow::Result<u64> {
    let mut inserted = 0;
    for batch in batches {
        let outcomes = store.put_facts(batch).await?;
        inserted += outcomes.iter().filter(|outcome| outcome.inserted).count() as u64;
    }
    Ok(inserted)
}

/// `store-write`.
pub fn run_write() -> anyhow::Result<u64> {
    let batches = inputs::fact_batches()?;
    let runtime = runtime()?;
    let fresh = FreshStore::open()?;
    let inserted = crate::measure("store-write", || {
        runtime.block_on(put_batches(&fresh.store, batches))
    })?;
    fresh.close();
    ensure!(
        inserted == inputs::FACTS as u64,
        "inserted {inserted} facts"
    );
    Ok(inserted)
}

/// `store-read`.
pub fn run_read() -> anyhow::Result<u64> {
    let batches = inputs::fact_batches()?;
    let hashes: Vec<_> = batches.iter().flatten().map(|fact| fact.hash).collect();
    let orders = inputs::order_hashes(&batches);
    let runtime = runtime()?;
    let fresh = FreshStore::open()?;
    runtime.block_on(put_batches(&fresh.store, batches))?;
    let store = &fresh.store;
    let read = crate::measure("store-read", || {
        runtime.block_on(async {
            let mut read = 0;
            for hash in &hashes {
                let fact = store.get_fact(hash).await?;
                ensure!(fact.is_some(), "fact {hash} is not found");
                read += 1;
            }
            for order in &orders {
                let query = SuccessorsQuery {
                    predecessor: *order,
                    type_name: inputs::LINE_TYPE.to_string(),
                    role: Some("order".to_string()),
                    without_types: vec![inputs::RETURN_TYPE.to_string()],
                    after_seq: 0,
                    limit: 1_000,
                };
                let page = store.successors(&query).await?;
                ensure!(!page.facts.is_empty(), "order {order} has no lines");
                read += page.facts.len() as u64;
            }
            Ok(read)
        })
    })?;
    fresh.close();
    Ok(read)
}
