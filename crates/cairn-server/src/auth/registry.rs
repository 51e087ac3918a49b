//! The identities a server knows, in memory: every token by id, with its
//! identity's permissions and limits, reloaded from the store whenever its
//! identity revision moves (polled every [`REFRESH_INTERVAL`], so every
//! server of a PostgreSQL deployment sees a revocation within a second),
//! and at once after a change made through this server.
//!
//! Authenticating a request is a map lookup and one BLAKE3 of 64 bytes; no
//! database round trip is on the request's path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use cairn_api::access::Permissions;
use cairn_delivery::TokenBucket;
use cairn_store::{IdentityRecord, IdentityStore, ReadError};
use tokio::sync::watch;

use super::token::PresentedToken;

/// How often a server asks the store whether identities changed.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(250);

/// An identity as the server holds it.
#[derive(Debug)]
pub struct Identity {
    /// Its name.
    pub name: Arc<str>,
    /// What it may do.
    pub permissions: Permissions,
    /// Requests per second, if limited.
    pub rate_per_s: Option<u32>,
    /// Facts written per second, if limited.
    pub write_rate_per_s: Option<u32>,
}

/// An authenticated request's identity and the token it used.
#[derive(Clone, Debug)]
pub struct Session {
    /// Who.
    pub identity: Arc<Identity>,
    token: Arc<TokenEntry>,
}

impl Session {
    /// The token's id (safe to log).
    pub fn token_id(&self) -> &str {
        &self.token.id
    }
}

#[derive(Debug)]
struct TokenEntry {
    id: Arc<str>,
    secret_hash: blake3::Hash,
    expires_at_ms: Option<u64>,
    identity: Arc<Identity>,
    /// When it was last used through this server (0: not since the last
    /// flush); written on each use without a lock, read by the flush.
    used_at_ms: AtomicU64,
}

/// Why a presented token was not accepted (told apart only in logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No such token, or its secret does not match.
    Unknown,
    /// The token expired.
    Expired,
}

#[derive(Default)]
struct Buckets {
    requests: Option<TokenBucket>,
    writes: Option<TokenBucket>,
}

/// The identities a server knows; see the module documentation.
pub struct Registry {
    store: Arc<dyn IdentityStore>,
    tokens: RwLock<Arc<HashMap<Arc<str>, Arc<TokenEntry>>>>,
    revision: Mutex<Option<u64>>,
    /// Bumped on every reload; long-lived requests re-check on it.
    changes: watch::Sender<u64>,
    buckets: Mutex<HashMap<Arc<str>, Buckets>>,
    /// The time at the last refresh (ms since the Unix epoch).
    coarse_now_ms: AtomicU64,
}

impl Registry {
    /// A registry over `store`, loaded.
    pub async fn load(store: Arc<dyn IdentityStore>) -> Result<Registry, ReadError> {
        let registry = Registry {
            store,
            tokens: RwLock::new(Arc::new(HashMap::new())),
            revision: Mutex::new(None),
            changes: watch::Sender::new(0),
            buckets: Mutex::new(HashMap::new()),
            coarse_now_ms: AtomicU64::new(unix_ms()),
        };
        registry.reload().await?;
        Ok(registry)
    }

    /// The store behind it.
    pub fn store(&self) -> &Arc<dyn IdentityStore> {
        &self.store
    }

    /// Reads every identity from the store and replaces the tokens known.
    pub async fn reload(&self) -> Result<(), ReadError> {
        let revision = self.store.identity_revision().await?;
        let records = self.store.identities().await?;
        let mut tokens = HashMap::new();
        for record in records {
            let Some(identity) = identity_of(&record) else {
                continue;
            };
            for token in record.tokens {
                let id: Arc<str> = Arc::from(token.id.as_str());
                tokens.insert(
                    Arc::clone(&id),
                    Arc::new(TokenEntry {
                        id,
                        secret_hash: blake3::Hash::from_bytes(token.secret_hash),
                        expires_at_ms: token.expires_at_ms,
                        identity: Arc::clone(&identity),
                        used_at_ms: AtomicU64::new(0),
                    }),
                );
            }
        }
        // Uses not yet flushed are carried over to the new entries.
        let previous = std::mem::replace(
            &mut *self.tokens.write().expect("lock poisoned"),
            Arc::new(tokens),
        );
        self.record_uses(&previous).await;
        *self.revision.lock().expect("lock poisoned") = Some(revision);
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Reloads if the store's revision moved since the last load.
    pub async fn refresh(&self) -> Result<(), ReadError> {
        self.coarse_now_ms.store(unix_ms(), Ordering::Relaxed);
        let revision = self.store.identity_revision().await?;
        if *self.revision.lock().expect("lock poisoned") != Some(revision) {
            self.reload().await?;
        }
        Ok(())
    }

    /// The identity of a presented token, if it is known, matches and has
    /// not expired. Records the use (written to the store in batches).
    pub fn authenticate(&self, presented: &PresentedToken<'_>) -> Result<Session, Refusal> {
        let entry = {
            let tokens = self.tokens.read().expect("lock poisoned");
            Arc::clone(tokens.get(presented.id).ok_or(Refusal::Unknown)?)
        };
        // blake3::Hash compares in constant time.
        if entry.secret_hash != presented.secret_hash {
            return Err(Refusal::Unknown);
        }
        if let Some(expires_at_ms) = entry.expires_at_ms {
            if expires_at_ms <= unix_ms() {
                return Err(Refusal::Expired);
            }
        }
        // The last use is recorded to within the refresh interval, from a
        // clock the upkeep task advances, not a clock read per request.
        entry.used_at_ms.store(
            self.coarse_now_ms.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        Ok(Session {
            identity: Arc::clone(&entry.identity),
            token: entry,
        })
    }

    /// Whether `session`'s token still works now; and if it does, when it
    /// expires.
    fn check(&self, session: &Session) -> Option<Option<u64>> {
        let tokens = Arc::clone(&self.tokens.read().expect("lock poisoned"));
        let entry = tokens.get(&session.token.id)?;
        let expires_at_ms = entry.expires_at_ms;
        // After a reload the entry is a new value: compare by content.
        let valid = entry.secret_hash == session.token.secret_hash
            && entry.identity.name == session.identity.name;
        (valid && expires_at_ms.is_none_or(|at| at > unix_ms())).then_some(expires_at_ms)
    }

    /// Whether `session`'s token still works now.
    pub fn still_valid(&self, session: &Session) -> bool {
        self.check(session).is_some()
    }

    /// Completes once `session`'s token stops working: revoked (seen at the
    /// next reload) or expired (at its expiry).
    pub async fn invalidated(&self, session: &Session) {
        let mut changes = self.changes.subscribe();
        loop {
            let Some(expires_at_ms) = self.check(session) else {
                return;
            };
            let until_expiry = expires_at_ms.map(|at| Duration::from_millis(at - unix_ms()));
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        // The registry is gone: the server is stopping.
                        std::future::pending::<()>().await;
                    }
                }
                () = sleep_or_forever(until_expiry) => {}
            }
        }
    }

    /// Takes one request from `identity`'s request rate; `Err` holds the
    /// seconds until one is available.
    pub fn take_request(&self, identity: &Identity) -> Result<(), u64> {
        self.take(identity, 1, identity.rate_per_s, |buckets| {
            &mut buckets.requests
        })
    }

    /// Takes `n_facts` from `identity`'s write rate.
    pub fn take_writes(&self, identity: &Identity, n_facts: u64) -> Result<(), u64> {
        self.take(identity, n_facts, identity.write_rate_per_s, |buckets| {
            &mut buckets.writes
        })
    }

    fn take(
        &self,
        identity: &Identity,
        n: u64,
        rate_per_s: Option<u32>,
        bucket_of: impl Fn(&mut Buckets) -> &mut Option<TokenBucket>,
    ) -> Result<(), u64> {
        let Some(rate_per_s) = rate_per_s else {
            return Ok(());
        };
        let now_ms = unix_ms();
        let mut buckets = self.buckets.lock().expect("lock poisoned");
        let bucket = bucket_of(buckets.entry(Arc::clone(&identity.name)).or_default())
            .get_or_insert_with(|| TokenBucket::new(rate_per_s, now_ms));
        // A batch larger than a second's worth passes once the bucket is
        // full, so a limit below the batch size slows but never blocks.
        let needed = n.min(u64::from(rate_per_s.max(1)));
        if bucket.available(now_ms) >= needed {
            bucket.take(needed, now_ms);
            Ok(())
        } else {
            let wait_ms = bucket.next_token_at_ms().saturating_sub(now_ms);
            Err(wait_ms.div_ceil(1_000).max(1))
        }
    }

    /// Writes the token uses recorded since the last call to the store.
    pub async fn flush_uses(&self) {
        let tokens = Arc::clone(&self.tokens.read().expect("lock poisoned"));
        self.record_uses(&tokens).await;
    }

    /// Records the uses of `tokens` not yet recorded.
    async fn record_uses(&self, tokens: &HashMap<Arc<str>, Arc<TokenEntry>>) {
        let uses: Vec<(String, u64)> = tokens
            .values()
            .filter_map(|entry| {
                let at_ms = entry.used_at_ms.swap(0, Ordering::Relaxed);
                (at_ms > 0).then(|| (entry.id.to_string(), at_ms))
            })
            .collect();
        if uses.is_empty() {
            return;
        }
        if let Err(error) = self.store.record_token_uses(uses).await {
            tracing::warn!(%error, "could not record when tokens were last used");
        }
    }
}

fn identity_of(record: &IdentityRecord) -> Option<Arc<Identity>> {
    match serde_json::from_str::<Permissions>(&record.permissions_json) {
        Ok(permissions) => Some(Arc::new(Identity {
            name: Arc::from(record.name.as_str()),
            permissions,
            rate_per_s: record.rate_per_s,
            write_rate_per_s: record.write_rate_per_s,
        })),
        Err(error) => {
            // Default-deny: an identity whose permissions cannot be read
            // cannot authenticate.
            tracing::error!(identity = %record.name, %error, "stored permissions unreadable; identity disabled");
            None
        }
    }
}

async fn sleep_or_forever(duration: Option<Duration>) {
    match duration {
        Some(duration) => tokio::time::sleep(duration).await,
        None => std::future::pending().await,
    }
}

/// Milliseconds since the Unix epoch by the system clock (token expiry is
/// wall-clock time, not the delivery clock).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}
