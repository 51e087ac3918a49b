//! Delivery state in PostgreSQL (schema in `migrations/0002_delivery.sql`,
//! `0004_delivery_tokens.sql`, `0005_subscription_generation.sql` and
//! `0012_subscription_start.sql`): the statements of the shared delivery
//! engine, each one round trip (a short transaction where a row lock must
//! be held across statements). The decisions they carry out are
//! `cairn-delivery`'s, the same functions the in-memory engine runs:
//! backoff and dead letters (`FailedAttempt`), the attributes of admitted
//! facts (`fact_attributes`), the rate limit (`TokenBucket`), and which
//! lease a token names (`LeaseToken`: a message's replay round and
//! attempt, checked against its row).
//!
//! Time is given to every statement (`now_ms`); `None` means the
//! database's clock (`cairn_now_ms()`, read once per statement), which is
//! what production servers use, so servers with skewed clocks agree on
//! leases and delays; tests give a simulated clock. A lease is a row update
//! under `FOR UPDATE SKIP LOCKED`: concurrent pulls on any servers take
//! disjoint rows, and a message is never leased to two consumers at once.

use cairn_delivery::{
    fact_attributes, lease_number, retry_delay_ms, DefinitionChange, FailedAttempt, LeaseToken,
    MessageLease, MessageRecord, MessageStatus, SubscriptionDefinition, TokenBucket, TokenKey,
    LEASE_EXPIRED_ERROR,
};
use cairn_fact::Hash;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::errors::{read_error, write_error};
use super::transaction::{self, TransactionConnection};
use super::PostgresStore;
use crate::delivery::MessageSelection;
use crate::error::{ReadError, WriteError};

/// Matching facts admitted per admission transaction.
const ADMISSION_BATCH_MAX: i64 = 1_000;
/// Expired leases ended per statement at most (the rest at the next call).
const EXPIRIES_PER_CALL_MAX: i64 = 1_000;

/// A subscription's row.
#[derive(Clone, Debug)]
pub struct SubscriptionRow {
    /// Internal id (never reused).
    pub id: u64,
    /// The name.
    pub name: String,
    /// The definition as JSON.
    pub definition: String,
    /// The admission cursor.
    pub cursor_seq: u64,
    /// The secret its tokens are signed with.
    pub token_secret: [u8; 32],
    /// The definition's generation (1 at creation, one more per change).
    pub generation: u64,
}

/// What putting a definition over an existing subscription found.
#[derive(Clone, Debug)]
pub enum UpdateOutcome {
    /// No subscription has that name.
    Missing,
    /// It is at another generation than the one expected; nothing changed.
    GenerationMismatch {
        /// Its generation.
        current_generation: u64,
    },
    /// The definition is the same; nothing changed.
    Unchanged(SubscriptionRow),
    /// Members that may change were changed (the row as it is now).
    Updated(SubscriptionRow),
    /// Members that cannot change differ; nothing changed.
    Conflict {
        /// The members, as on the wire.
        fixed_members_changed: Vec<&'static str>,
    },
}

/// What creating a subscription found.
#[derive(Clone, Debug)]
pub enum CreateOutcome {
    /// It was created.
    Created(SubscriptionRow),
    /// One with that name exists (with this or another definition).
    Existing(SubscriptionRow),
    /// The database holds the most subscriptions allowed.
    TooMany,
}

/// What a lease asks for.
#[derive(Clone, Copy, Debug)]
pub struct LeaseRequest {
    /// Messages at most.
    pub max: usize,
    /// Lease length.
    pub lease_ms: u64,
    /// Messages of one ordering key leased at once at most.
    pub max_in_flight_per_key: u32,
    /// Delivery rate limit, if any.
    pub rate_limit_per_s: Option<u32>,
}

/// A message leased by a pull, with its fact.
#[derive(Clone, Debug)]
pub struct LeasedMessage {
    /// The fact's seq.
    pub seq: u64,
    /// The fact's hash.
    pub hash: Hash,
    /// 1 on the first delivery (of this replay round).
    pub attempt: u32,
    /// How often the message was replayed.
    pub round: u32,
    /// The fact's canonical JSON.
    pub canonical: Vec<u8>,
}

impl LeasedMessage {
    /// The lease's number, which its token carries.
    pub fn lease_id(&self) -> u64 {
        lease_number(self.round, self.attempt)
    }
}

/// What admission did.
#[derive(Clone, Debug)]
pub enum Admission {
    /// Another server holds the subscription's row: it is admitting.
    Busy,
    /// Admitted this many messages; the cursor is now `cursor_seq`.
    Admitted {
        /// Messages admitted.
        n_admitted: u64,
        /// The cursor after admission.
        cursor_seq: u64,
        /// True when the window is full (the cursor stopped before the head).
        window_full: bool,
        /// Messages leased in the same transaction (`then_lease`).
        leased: Vec<LeasedMessage>,
    },
}

/// Counts for a subscription's view.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeliveryCounts {
    /// Tracked (pending) messages.
    pub pending: u64,
    /// Pending and leased now.
    pub in_flight: u64,
    /// Dead letters.
    pub dead: u64,
    /// Discarded dead letters.
    pub discarded: u64,
    /// Matching facts beyond the cursor.
    pub untracked: u64,
    /// The first of them.
    pub first_untracked_seq: Option<u64>,
    /// First delivery of the oldest unacknowledged delivered message.
    pub oldest_first_delivered_at_ms: Option<u64>,
    /// Lowest pending seq.
    pub lowest_pending_seq: Option<u64>,
    /// The cursor.
    pub cursor_seq: u64,
    /// Whether delivery is paused.
    pub paused: bool,
    /// The time the counts were taken at.
    pub now_ms: u64,
}

/// Where one message of a subscription stands (`message_state`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageState {
    /// The subscription's admission cursor.
    pub cursor_seq: u64,
    /// The cursor it was created with (`None` if created before it was
    /// kept).
    pub start_seq: Option<u64>,
    /// The time the state was read at.
    pub now_ms: u64,
    /// The message's row, if it has one.
    pub message: Option<MessageStateRow>,
}

/// The columns of a message row that say where it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageStateRow {
    /// Pending, dead or discarded.
    pub status: MessageStatus,
    /// Deliveries in its current round.
    pub attempts: u32,
    /// Not delivered before this time.
    pub available_at_ms: u64,
    /// The end of its lease, while (or if still marked) leased.
    pub leased_until_ms: Option<u64>,
    /// The error of its last failed attempt.
    pub last_error: Option<String>,
    /// When it died.
    pub dead_at_ms: Option<u64>,
}

/// The rules of a subscription that its statements carry out.
#[derive(Clone, Copy, Debug)]
pub struct DeliveryRules<'a> {
    /// The definition (attempts, backoff).
    pub definition: &'a SubscriptionDefinition,
    /// The key its tokens are signed and its backoff jittered with.
    pub key: &'a TokenKey,
}

fn subscription_row(row: &PgRow) -> Result<SubscriptionRow, sqlx::Error> {
    let secret: Vec<u8> = row.try_get("token_secret")?;
    let token_secret = secret
        .try_into()
        .map_err(|_| sqlx::Error::Decode("a subscription's token secret is not 32 bytes".into()))?;
    Ok(SubscriptionRow {
        id: row.try_get::<i64, _>("id")? as u64,
        name: row.try_get("name")?,
        definition: row.try_get("definition")?,
        cursor_seq: row.try_get::<i64, _>("cursor_seq")? as u64,
        token_secret,
        generation: row.try_get::<i64, _>("generation")? as u64,
    })
}

fn hash_of(bytes: Vec<u8>) -> Result<Hash, ReadError> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| ReadError::corrupt("a message row has a malformed hash"))?;
    Ok(Hash(bytes))
}

/// A fact's bytes as read, checked against the hash they are stored under.
fn verified(seq: u64, hash: &Hash, canonical: &[u8]) -> Result<(), String> {
    if Hash::of_bytes(canonical) == *hash {
        Ok(())
    } else {
        Err(format!(
            "fact with seq {seq} does not match its hash {hash}"
        ))
    }
}

fn message_record(row: &PgRow) -> Result<(u64, MessageRecord, Vec<u8>), ReadError> {
    let get = |error: sqlx::Error| read_error(error);
    let seq = row.try_get::<i64, _>("seq").map_err(get)? as u64;
    let status = match row.try_get::<i16, _>("status").map_err(get)? {
        0 => MessageStatus::Pending,
        1 => MessageStatus::Dead,
        _ => MessageStatus::Discarded,
    };
    let key: Option<Vec<u8>> = row.try_get("ordering_key").map_err(get)?;
    let optional = |name: &str| -> Result<Option<u64>, ReadError> {
        Ok(row
            .try_get::<Option<i64>, _>(name)
            .map_err(read_error)?
            .map(|value| value as u64))
    };
    let record = MessageRecord {
        hash: hash_of(row.try_get("hash").map_err(get)?)?,
        status,
        attempts: row.try_get::<i32, _>("attempts").map_err(get)? as u32,
        available_at_ms: row.try_get::<i64, _>("available_at_ms").map_err(get)? as u64,
        first_delivered_at_ms: optional("first_delivered_at_ms")?,
        last_error: row.try_get("last_error").map_err(get)?,
        dead_at_ms: optional("dead_at_ms")?,
        key: key.map(hash_of).transpose()?,
        round: row.try_get::<i32, _>("round").map_err(get)? as u32,
    };
    let canonical: Vec<u8> = row.try_get("canonical").map_err(get)?;
    verified(seq, &record.hash, &canonical).map_err(ReadError::corrupt)?;
    Ok((seq, record, canonical))
}

/// The leases tokens name, as the array binds of a token statement.
struct TokenColumns {
    seqs: Vec<i64>,
    rounds: Vec<i32>,
    attempts: Vec<i32>,
}

impl TokenColumns {
    fn of(tokens: &[LeaseToken]) -> TokenColumns {
        TokenColumns {
            seqs: tokens.iter().map(|token| token.seq as i64).collect(),
            rounds: tokens.iter().map(|token| token.round() as i32).collect(),
            attempts: tokens.iter().map(|token| token.attempt() as i32).collect(),
        }
    }
}

/// A statement over lease tokens: `$1` is the subscription, `$2`, `$3`
/// and `$4` the tokens' seqs, rounds and attempts (as arrays); it returns
/// `seq`, `round` and `attempts` of the rows it acted on.
fn token_statement<'q>(
    sql: &'q str,
    id: u64,
    tokens: &[LeaseToken],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let columns = TokenColumns::of(tokens);
    sqlx::query(sql)
        .bind(id as i64)
        .bind(columns.seqs)
        .bind(columns.rounds)
        .bind(columns.attempts)
}

/// Bytes of the field name that makes a fact carry a not-before time.
const NOT_BEFORE_NEEDLE: &[u8] = cairn_delivery::NOT_BEFORE_FIELD.as_bytes();

/// A leased message from a row of the lease statement, its fact verified.
fn leased_message(row: &PgRow) -> Result<LeasedMessage, WriteError> {
    let seq = row.try_get::<i64, _>("seq").map_err(write_error)? as u64;
    let hash = hash_of(row.try_get("hash").map_err(write_error)?)
        .map_err(|error| WriteError::Corrupt(error.to_string()))?;
    let canonical: Vec<u8> = row.try_get("canonical").map_err(write_error)?;
    verified(seq, &hash, &canonical).map_err(WriteError::Corrupt)?;
    Ok(LeasedMessage {
        seq,
        hash,
        attempt: row.try_get::<i32, _>("attempts").map_err(write_error)? as u32,
        round: row.try_get::<i32, _>("round").map_err(write_error)? as u32,
        canonical,
    })
}

/// The lease statement: up to `budget` deliverable messages at `now_ms`
/// (`None`: the database's clock), see [`PostgresStore::lease`].
fn lease_query(
    id: u64,
    budget: i64,
    request: &LeaseRequest,
    now_ms: Option<u64>,
) -> sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments> {
    // The ordering-key rule of the state machine (`key_allows`), for a
    // pull that leases in seq order: a message goes if it is among the
    // first `max_in_flight_per_key` pending messages of its key, and the
    // messages of its key leased already plus those this statement leases
    // before it (the earlier pending ones that are due) are fewer than that.
    sqlx::query(
        "WITH now AS (SELECT coalesce($5::bigint, cairn_now_ms()) AS ms),
         candidates AS (
             SELECT m.seq FROM cairn_messages m
             WHERE m.subscription_id = $1 AND m.status = 0
               AND m.leased_until_ms IS NULL
               AND m.available_at_ms <= (SELECT ms FROM now)
               AND NOT (SELECT s.paused FROM cairn_subscriptions s WHERE s.id = $1)
               AND (m.ordering_key IS NULL OR (
                   (SELECT count(*) FROM (
                       SELECT 1 FROM cairn_messages e
                       WHERE e.subscription_id = $1 AND e.status = 0
                         AND e.ordering_key = m.ordering_key AND e.seq < m.seq
                       LIMIT $4) first) < $4
                   AND (SELECT count(*) FROM (
                       SELECT 1 FROM cairn_messages e
                       WHERE e.subscription_id = $1 AND e.status = 0
                         AND e.ordering_key = m.ordering_key
                         AND (e.leased_until_ms IS NOT NULL
                              OR (e.seq < m.seq AND e.available_at_ms <= (SELECT ms FROM now)))
                       LIMIT $4) in_flight) < $4))
             ORDER BY m.seq
             LIMIT $2
             FOR UPDATE OF m SKIP LOCKED
         ),
         leased AS (
             UPDATE cairn_messages m SET
                 attempts = m.attempts + 1,
                 leased_until_ms = (SELECT ms FROM now) + $3,
                 first_delivered_at_ms = coalesce(m.first_delivered_at_ms, (SELECT ms FROM now))
             FROM candidates c
             WHERE m.subscription_id = $1 AND m.seq = c.seq
             RETURNING m.seq, m.hash, m.attempts, m.round
         )
         SELECT l.seq, l.hash, l.attempts, l.round, f.canonical
         FROM leased l JOIN cairn_facts f ON f.seq = l.seq
         ORDER BY l.seq",
    )
    .bind(id as i64)
    .bind(budget)
    .bind(request.lease_ms as i64)
    .bind(i64::from(request.max_in_flight_per_key.max(1)))
    .bind(now_ms.map(|now| now as i64))
}

/// What ending one failed lease does, decided by `cairn-delivery`.
struct LeaseEnd {
    seq: i64,
    round: i32,
    attempts: i32,
    dead: bool,
    delay_ms: i64,
}

impl LeaseEnd {
    fn decide(
        rules: DeliveryRules<'_>,
        seq: u64,
        round: u32,
        attempts: u32,
        delay_ms: Option<u64>,
    ) -> LeaseEnd {
        let lease_id = lease_number(round, attempts);
        let failed = FailedAttempt::decide(rules.definition, rules.key, seq, lease_id, delay_ms);
        LeaseEnd {
            seq: seq as i64,
            round: round as i32,
            attempts: attempts as i32,
            dead: failed == FailedAttempt::Dead,
            delay_ms: match failed {
                FailedAttempt::Dead => 0,
                FailedAttempt::Retry { delay_ms } => delay_ms as i64,
            },
        }
    }
}

impl PostgresStore {
    /// Runs a [`token_statement`]; the leases it acted on.
    async fn token_leases(
        &self,
        statement: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<(u64, u64)>, WriteError> {
        let rows = self
            .timed(statement.fetch_all(self.pool()))
            .await
            .map_err(write_error)?;
        rows.iter()
            .map(|row| {
                let seq = row.try_get::<i64, _>("seq")? as u64;
                let round = row.try_get::<i32, _>("round")? as u32;
                let attempts = row.try_get::<i32, _>("attempts")? as u32;
                Ok((seq, lease_number(round, attempts)))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(write_error)
    }

    /// The tokens among `tokens` whose leases a token statement acted on.
    fn acted_on(tokens: &[LeaseToken], leases: &[(u64, u64)]) -> Vec<LeaseToken> {
        tokens
            .iter()
            .filter(|token| leases.contains(&(token.seq, token.lease_id)))
            .copied()
            .collect()
    }

    /// The subscription with this name.
    pub async fn subscription(&self, name: &str) -> Result<Option<SubscriptionRow>, ReadError> {
        let row = self
            .timed(
                sqlx::query("SELECT * FROM cairn_subscriptions WHERE name = $1")
                    .bind(name)
                    .fetch_optional(self.pool()),
            )
            .await
            .map_err(read_error)?;
        row.as_ref()
            .map(subscription_row)
            .transpose()
            .map_err(read_error)
    }

    /// Every subscription, by name.
    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionRow>, ReadError> {
        let rows = self
            .timed(
                sqlx::query("SELECT * FROM cairn_subscriptions ORDER BY name")
                    .fetch_all(self.pool()),
            )
            .await
            .map_err(read_error)?;
        rows.iter()
            .map(subscription_row)
            .collect::<Result<_, _>>()
            .map_err(read_error)
    }

    /// Creates a subscription unless one has that name or `max` exist,
    /// with the secret its tokens will be signed with. `start_now` starts
    /// it at the current head of the log.
    pub async fn create_subscription(
        &self,
        name: &str,
        definition: &str,
        start_now: bool,
        max: usize,
        token_secret: &[u8; 32],
        now_ms: Option<u64>,
    ) -> Result<CreateOutcome, WriteError> {
        let row = self
            .timed(
                sqlx::query(
                    "INSERT INTO cairn_subscriptions
                         (name, definition, cursor_seq, start_seq, created_at_ms, token_secret)
                     SELECT $1, $2, start.seq, start.seq,
                            coalesce($6::bigint, cairn_now_ms()), $5
                     FROM (SELECT CASE WHEN $3 THEN (SELECT last_seq FROM cairn_log_head)
                                       ELSE 0 END AS seq) start
                     WHERE (SELECT count(*) FROM cairn_subscriptions) < $4
                     ON CONFLICT (name) DO NOTHING
                     RETURNING *",
                )
                .bind(name)
                .bind(definition)
                .bind(start_now)
                .bind(max as i64)
                .bind(token_secret.as_slice())
                .bind(now_ms.map(|now| now as i64))
                .fetch_optional(self.pool()),
            )
            .await
            .map_err(write_error)?;
        if let Some(row) = row {
            return Ok(CreateOutcome::Created(
                subscription_row(&row).map_err(write_error)?,
            ));
        }
        match self.subscription(name).await {
            Ok(Some(existing)) => Ok(CreateOutcome::Existing(existing)),
            Ok(None) => Ok(CreateOutcome::TooMany),
            Err(ReadError::Unavailable { message, source }) => {
                Err(WriteError::Unavailable { message, source })
            }
            Err(error) => Err(WriteError::storage_caused_by(error.to_string(), error)),
        }
    }

    /// Puts `definition` (the JSON of a validated definition) over the
    /// existing subscription `name`, in one
    /// transaction holding its row's lock: nothing if the definition is the
    /// same, a conflict if members that cannot change differ
    /// (`SubscriptionDefinition::change_to`), otherwise the new definition
    /// and the next generation. With `expected_generation`, nothing changes
    /// unless the row is at it. The rate limit's bucket follows the state
    /// machine's rule (`SubscriptionState::update_definition`): refilled to
    /// now at the old rate and kept under the new one; a rate limit added
    /// or removed leaves no bucket (a full one at the next lease).
    pub async fn update_subscription(
        &self,
        name: &str,
        definition: &str,
        expected_generation: Option<u64>,
        now_ms: Option<u64>,
    ) -> Result<UpdateOutcome, WriteError> {
        self.timed_transaction(self.update_subscription_in_transaction(
            name,
            definition,
            expected_generation,
            now_ms,
        ))
        .await
    }

    async fn update_subscription_in_transaction(
        &self,
        name: &str,
        definition_json: &str,
        expected_generation: Option<u64>,
        now_ms: Option<u64>,
    ) -> Result<UpdateOutcome, WriteError> {
        let definition = &SubscriptionDefinition::from_json(definition_json.as_bytes())
            .map_err(|error| WriteError::Corrupt(format!("a definition to store: {error}")))?;
        let mut connection = TransactionConnection::acquire(self.pool())
            .await
            .map_err(write_error)?;
        let mut transaction = connection.begin().await.map_err(write_error)?;
        let row = sqlx::query(
            "SELECT *, coalesce($2::bigint, cairn_now_ms()) AS now_ms
             FROM cairn_subscriptions WHERE name = $1 FOR UPDATE",
        )
        .bind(name)
        .bind(now_ms.map(|now| now as i64))
        .fetch_optional(&mut *transaction)
        .await
        .map_err(write_error)?;
        let Some(row) = row else {
            return Ok(UpdateOutcome::Missing);
        };
        let current = subscription_row(&row).map_err(write_error)?;
        if expected_generation.is_some_and(|expected| expected != current.generation) {
            return Ok(UpdateOutcome::GenerationMismatch {
                current_generation: current.generation,
            });
        }
        let in_force =
            SubscriptionDefinition::from_json(current.definition.as_bytes()).map_err(|error| {
                WriteError::Corrupt(format!(
                    "subscription {name:?} has an unreadable definition: {error}"
                ))
            })?;
        match in_force.change_to(definition) {
            DefinitionChange::Same => return Ok(UpdateOutcome::Unchanged(current)),
            DefinitionChange::Conflict {
                fixed_members_changed,
            } => {
                return Ok(UpdateOutcome::Conflict {
                    fixed_members_changed,
                })
            }
            DefinitionChange::Update => {}
        }
        let now_ms = row.try_get::<i64, _>("now_ms").map_err(write_error)? as u64;
        let stored: Option<i64> = row.try_get("rate_milli_tokens").map_err(write_error)?;
        let refilled: Option<i64> = row.try_get("rate_refilled_at_ms").map_err(write_error)?;
        let bucket = match (in_force.rate_limit_per_s, definition.rate_limit_per_s) {
            (Some(old_rate), Some(new_rate)) => {
                let mut bucket = match (stored, refilled) {
                    (Some(milli), Some(at)) => {
                        TokenBucket::from_parts(old_rate, milli as u64, at as u64)
                    }
                    _ => TokenBucket::new(old_rate, now_ms),
                };
                bucket.available(now_ms);
                let (milli_tokens, refilled_at_ms) = bucket.parts();
                Some(TokenBucket::from_parts(new_rate, milli_tokens, refilled_at_ms).parts())
            }
            _ => None,
        };
        let updated = sqlx::query(
            "UPDATE cairn_subscriptions SET definition = $2, generation = generation + 1,
                 rate_milli_tokens = $3, rate_refilled_at_ms = $4
             WHERE id = $1 RETURNING *",
        )
        .bind(current.id as i64)
        .bind(definition_json)
        .bind(bucket.map(|(milli, _)| milli as i64))
        .bind(bucket.map(|(_, at)| at as i64))
        .fetch_one(&mut *transaction)
        .await
        .map_err(write_error)?;
        let updated = subscription_row(&updated).map_err(write_error)?;
        transaction::commit(transaction)
            .await
            .map_err(write_error)?;
        Ok(UpdateOutcome::Updated(updated))
    }

    /// Deletes a subscription with all its messages. False if there was none.
    pub async fn delete_subscription(&self, name: &str) -> Result<bool, WriteError> {
        let result = self
            .timed(
                sqlx::query("DELETE FROM cairn_subscriptions WHERE name = $1")
                    .bind(name)
                    .execute(self.pool()),
            )
            .await
            .map_err(write_error)?;
        Ok(result.rows_affected() > 0)
    }

    /// Pauses or resumes. False if the subscription is gone.
    pub async fn set_subscription_paused(&self, id: u64, paused: bool) -> Result<bool, WriteError> {
        let result = self
            .timed(
                sqlx::query("UPDATE cairn_subscriptions SET paused = $2 WHERE id = $1")
                    .bind(id as i64)
                    .bind(paused)
                    .execute(self.pool()),
            )
            .await
            .map_err(write_error)?;
        Ok(result.rows_affected() > 0)
    }

    /// Ends leases that ran out by `now_ms` as failed attempts: each
    /// message waits for its backoff from the moment its lease ran out, or
    /// becomes a dead letter if that was its last attempt. Returns how many
    /// leases ended. One statement finds them; only if there are any, a
    /// second ends each one that is still the same lease (an ack or extend
    /// through another server in between wins).
    pub async fn expire_leases(
        &self,
        id: u64,
        rules: DeliveryRules<'_>,
        now_ms: Option<u64>,
    ) -> Result<u64, WriteError> {
        let rows = self
            .timed(
                sqlx::query(
                    "SELECT seq, round, attempts, leased_until_ms FROM cairn_messages
                     WHERE subscription_id = $1 AND status = 0 AND leased_until_ms IS NOT NULL
                       AND leased_until_ms <= coalesce($2::bigint, cairn_now_ms())
                     ORDER BY leased_until_ms, seq
                     LIMIT $3",
                )
                .bind(id as i64)
                .bind(now_ms.map(|now| now as i64))
                .bind(EXPIRIES_PER_CALL_MAX)
                .fetch_all(self.pool()),
            )
            .await
            .map_err(write_error)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut ends = Vec::with_capacity(rows.len());
        let mut ended_at: Vec<i64> = Vec::with_capacity(rows.len());
        for row in &rows {
            let seq = row.try_get::<i64, _>("seq").map_err(write_error)? as u64;
            let round = row.try_get::<i32, _>("round").map_err(write_error)? as u32;
            let attempts = row.try_get::<i32, _>("attempts").map_err(write_error)? as u32;
            ends.push(LeaseEnd::decide(rules, seq, round, attempts, None));
            ended_at.push(row.try_get("leased_until_ms").map_err(write_error)?);
        }
        let result = self
            .timed(
                sqlx::query(
                    "UPDATE cairn_messages m SET
                        status = CASE WHEN t.dead THEN 1 ELSE 0 END,
                        dead_at_ms = CASE WHEN t.dead THEN t.ended_at END,
                        available_at_ms = t.ended_at + t.delay_ms,
                        leased_until_ms = NULL,
                        last_error = $8
                     FROM unnest($2::bigint[], $3::int[], $4::int[], $5::bool[], $6::bigint[],
                                 $7::bigint[])
                          AS t(seq, round, attempts, dead, delay_ms, ended_at)
                     WHERE m.subscription_id = $1 AND m.seq = t.seq AND m.status = 0
                       AND m.round = t.round AND m.attempts = t.attempts
                       AND m.leased_until_ms = t.ended_at",
                )
                .bind(id as i64)
                .bind(ends.iter().map(|end| end.seq).collect::<Vec<_>>())
                .bind(ends.iter().map(|end| end.round).collect::<Vec<_>>())
                .bind(ends.iter().map(|end| end.attempts).collect::<Vec<_>>())
                .bind(ends.iter().map(|end| end.dead).collect::<Vec<_>>())
                .bind(ends.iter().map(|end| end.delay_ms).collect::<Vec<_>>())
                .bind(&ended_at)
                .bind(LEASE_EXPIRED_ERROR)
                .execute(self.pool()),
            )
            .await
            .map_err(write_error)?;
        Ok(result.rows_affected())
    }

    /// Admits matching facts beyond the cursor while the window of pending
    /// messages (`window_max`) has room, at most a batch per call, taking
    /// the subscription row's lock (or answering `Busy` if another server
    /// holds it). A fact's ordering key (the predecessor in the
    /// `ordering_key` role) and not-before time come from its canonical
    /// bytes, read only for facts that may carry a not-before time or when
    /// there is an ordering key, and verified against their hash. With
    /// `then_lease`, an admission that reaches the head of the log also
    /// leases in the same transaction, so a pull waiting for new facts gets
    /// them with one commit.
    pub async fn admit(
        &self,
        id: u64,
        selection: &MessageSelection,
        window_max: usize,
        ordering_key: Option<&str>,
        then_lease: Option<LeaseRequest>,
        now_ms: Option<u64>,
    ) -> Result<Admission, WriteError> {
        self.timed_transaction(self.admit_in_transaction(
            id,
            selection,
            window_max,
            ordering_key,
            then_lease,
            now_ms,
        ))
        .await
    }

    async fn admit_in_transaction(
        &self,
        id: u64,
        selection: &MessageSelection,
        window_max: usize,
        ordering_key: Option<&str>,
        then_lease: Option<LeaseRequest>,
        now_ms: Option<u64>,
    ) -> Result<Admission, WriteError> {
        let mut connection = TransactionConnection::acquire(self.pool())
            .await
            .map_err(write_error)?;
        let mut transaction = connection.begin().await.map_err(write_error)?;
        // Lock first: a pull that finds another one admitting must not pay
        // for counting the window.
        let cursor: Option<i64> = sqlx::query_scalar(
            "SELECT cursor_seq FROM cairn_subscriptions WHERE id = $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(id as i64)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(write_error)?;
        let Some(cursor) = cursor else {
            return Ok(Admission::Busy);
        };
        let (head, pending): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT last_seq FROM cairn_log_head),
                    (SELECT count(*) FROM (SELECT 1 FROM cairn_messages
                                           WHERE subscription_id = $1 AND status = 0
                                           LIMIT $2) p)",
        )
        .bind(id as i64)
        .bind(window_max as i64)
        .fetch_one(&mut *transaction)
        .await
        .map_err(write_error)?;
        let nothing = |window_full| Admission::Admitted {
            n_admitted: 0,
            cursor_seq: cursor as u64,
            window_full,
            leased: Vec::new(),
        };
        if cursor >= head {
            return Ok(nothing(false));
        }
        let room = (window_max as i64 - pending).min(ADMISSION_BATCH_MAX);
        if room <= 0 {
            return Ok(nothing(true));
        }
        let (type_name, filter) = match selection {
            MessageSelection::Type(type_name) => (type_name, "f.type_name = $3 AND f.seq > $4"),
            MessageSelection::Successors { type_name, .. } => (
                type_name,
                "f.seq IN (SELECT p.successor_seq FROM cairn_predecessors p
                           WHERE p.predecessor = $6 AND p.successor_type = $3
                             AND p.role = $7 AND p.successor_seq > $4)",
            ),
        };
        let sql = format!(
            "SELECT f.seq, f.hash,
                    CASE WHEN $1 OR position($2::bytea IN f.canonical) > 0 THEN f.canonical END
                    AS canonical
             FROM cairn_facts f WHERE {filter} ORDER BY f.seq LIMIT $5"
        );
        let mut query = sqlx::query(&sql)
            .bind(ordering_key.is_some())
            .bind(NOT_BEFORE_NEEDLE)
            .bind(type_name)
            .bind(cursor)
            .bind(room);
        if let MessageSelection::Successors {
            role, predecessor, ..
        } = selection
        {
            query = query.bind(predecessor.as_bytes().to_vec()).bind(role);
        }
        let rows = query
            .fetch_all(&mut *transaction)
            .await
            .map_err(write_error)?;
        let mut seqs = Vec::with_capacity(rows.len());
        let mut hashes = Vec::with_capacity(rows.len());
        let mut keys: Vec<Option<Vec<u8>>> = Vec::with_capacity(rows.len());
        let mut available: Vec<i64> = Vec::with_capacity(rows.len());
        for row in &rows {
            let seq = row.try_get::<i64, _>("seq").map_err(write_error)? as u64;
            let hash = hash_of(row.try_get("hash").map_err(write_error)?)
                .map_err(|error| WriteError::Corrupt(error.to_string()))?;
            let canonical: Option<Vec<u8>> = row.try_get("canonical").map_err(write_error)?;
            let attributes = match canonical {
                Some(canonical) => {
                    // Read bytes are verified like every other read: a
                    // damaged fact must not decide a message's key or time.
                    verified(seq, &hash, &canonical).map_err(WriteError::Corrupt)?;
                    fact_attributes(ordering_key, &canonical).map_err(|error| {
                        WriteError::Corrupt(format!("fact with seq {seq}: {error}"))
                    })?
                }
                None => cairn_delivery::MessageAttributes::default(),
            };
            seqs.push(seq as i64);
            hashes.push(hash.as_bytes().to_vec());
            keys.push(attributes.key.map(|key| key.as_bytes().to_vec()));
            available.push(attributes.not_before_ms.unwrap_or(0) as i64);
        }
        let last = seqs.last().copied().unwrap_or(cursor);
        // Fewer than asked: every match up to the head read above is in.
        let new_cursor = if (rows.len() as i64) < room {
            last.max(head)
        } else {
            last
        };
        sqlx::query(
            "WITH admitted AS (
                 INSERT INTO cairn_messages
                     (subscription_id, seq, hash, status, ordering_key, attempts, available_at_ms)
                 SELECT $1, t.seq, t.hash, 0, t.ordering_key, 0, t.available_at_ms
                 FROM unnest($2::bigint[], $3::bytea[], $4::bytea[], $5::bigint[])
                      AS t(seq, hash, ordering_key, available_at_ms)
                 ON CONFLICT DO NOTHING
             )
             UPDATE cairn_subscriptions SET cursor_seq = $6 WHERE id = $1",
        )
        .bind(id as i64)
        .bind(&seqs)
        .bind(&hashes)
        .bind(&keys)
        .bind(&available)
        .bind(new_cursor)
        .execute(&mut *transaction)
        .await
        .map_err(write_error)?;
        // Caught up with the log (the latency case: a few new facts), the
        // new messages are leased in the same commit. Admitting a backlog,
        // the lock is released first, so that other pulls lease in
        // parallel rather than wait for this one (measured with 6
        // consumers: 25k instead of 22k msg/s, and a third of the wait).
        let caught_up = (rows.len() as i64) < room;
        let leased = match then_lease {
            Some(request) if caught_up && !seqs.is_empty() => {
                lease_query(id, request.max as i64, &request, now_ms)
                    .fetch_all(&mut *transaction)
                    .await
                    .map_err(write_error)?
            }
            _ => Vec::new(),
        };
        transaction::commit(transaction)
            .await
            .map_err(write_error)?;
        let leased = leased
            .iter()
            .map(leased_message)
            .collect::<Result<_, _>>()?;
        Ok(Admission::Admitted {
            n_admitted: seqs.len() as u64,
            cursor_seq: new_cursor as u64,
            window_full: false,
            leased,
        })
    }

    /// Leases up to `request.max` deliverable messages, in seq order, with
    /// their facts: pending, not leased, due, not paused, and allowed by
    /// their ordering key (see [`lease_query`]). Rows other servers are
    /// leasing are skipped, never waited for. With a rate limit, the
    /// subscription row's token bucket is taken and updated in the same
    /// transaction.
    pub async fn lease(
        &self,
        id: u64,
        request: LeaseRequest,
        now_ms: Option<u64>,
    ) -> Result<Vec<LeasedMessage>, WriteError> {
        let rows = match request.rate_limit_per_s {
            // One statement, committed on its own: one round trip.
            None => self
                .timed(lease_query(id, request.max as i64, &request, now_ms).fetch_all(self.pool()))
                .await
                .map_err(write_error)?,
            Some(rate) => {
                self.timed_transaction(self.lease_rate_limited(id, rate, &request, now_ms))
                    .await?
            }
        };
        rows.iter().map(leased_message).collect()
    }

    /// A lease under a rate limit: the subscription row's token bucket is
    /// read, taken and written in the lease's transaction, at one time read
    /// once.
    async fn lease_rate_limited(
        &self,
        id: u64,
        rate: u32,
        request: &LeaseRequest,
        now_ms: Option<u64>,
    ) -> Result<Vec<PgRow>, WriteError> {
        let mut connection = TransactionConnection::acquire(self.pool())
            .await
            .map_err(write_error)?;
        let mut transaction = connection.begin().await.map_err(write_error)?;
        let row = sqlx::query(
            "SELECT rate_milli_tokens, rate_refilled_at_ms,
                    coalesce($2::bigint, cairn_now_ms()) AS now_ms
             FROM cairn_subscriptions WHERE id = $1 FOR UPDATE",
        )
        .bind(id as i64)
        .bind(now_ms.map(|now| now as i64))
        .fetch_optional(&mut *transaction)
        .await
        .map_err(write_error)?;
        let Some(row) = row else {
            return Ok(Vec::new());
        };
        let now_ms = row.try_get::<i64, _>("now_ms").map_err(write_error)? as u64;
        let stored: Option<i64> = row.try_get("rate_milli_tokens").map_err(write_error)?;
        let refilled: Option<i64> = row.try_get("rate_refilled_at_ms").map_err(write_error)?;
        let mut tokens = match (stored, refilled) {
            (Some(milli), Some(at)) => TokenBucket::from_parts(rate, milli as u64, at as u64),
            _ => TokenBucket::new(rate, now_ms),
        };
        let budget = (request.max as i64).min(tokens.available(now_ms) as i64);
        let rows = if budget > 0 {
            lease_query(id, budget, request, Some(now_ms))
                .fetch_all(&mut *transaction)
                .await
                .map_err(write_error)?
        } else {
            Vec::new()
        };
        tokens.take(rows.len() as u64, now_ms);
        let (milli, at) = tokens.parts();
        sqlx::query(
            "UPDATE cairn_subscriptions SET rate_milli_tokens = $2, rate_refilled_at_ms = $3
             WHERE id = $1",
        )
        .bind(id as i64)
        .bind(milli as i64)
        .bind(at as i64)
        .execute(&mut *transaction)
        .await
        .map_err(write_error)?;
        transaction::commit(transaction)
            .await
            .map_err(write_error)?;
        Ok(rows)
    }

    /// Acknowledges the messages whose latest lease `tokens` name (leased
    /// or not): their rows are deleted. Returns the tokens that acted.
    pub async fn ack_leases(
        &self,
        id: u64,
        tokens: &[LeaseToken],
    ) -> Result<Vec<LeaseToken>, WriteError> {
        let statement = token_statement(
            "DELETE FROM cairn_messages m
             USING unnest($2::bigint[], $3::int[], $4::int[]) AS t(seq, round, attempts)
             WHERE m.subscription_id = $1 AND m.seq = t.seq AND m.status = 0
               AND m.round = t.round AND m.attempts = t.attempts AND m.attempts > 0
             RETURNING m.seq, m.round, m.attempts",
            id,
            tokens,
        );
        let leases = self.token_leases(statement).await?;
        Ok(Self::acted_on(tokens, &leases))
    }

    /// Gives back the messages whose latest lease `tokens` name: a leased
    /// one has failed an attempt (dead if it was its last), one whose lease
    /// already ran out takes the delay and error given. Each waits
    /// `delay_ms`, or its backoff, from `now_ms`. Returns the tokens that
    /// acted.
    pub async fn nack_leases(
        &self,
        id: u64,
        tokens: &[LeaseToken],
        delay_ms: Option<u64>,
        error: Option<&str>,
        rules: DeliveryRules<'_>,
        now_ms: Option<u64>,
    ) -> Result<Vec<LeaseToken>, WriteError> {
        // Both fates are decided here; the statement picks the one that
        // fits the row (still leased, or its lease already ended).
        let failures: Vec<LeaseEnd> = tokens
            .iter()
            .map(|token| {
                LeaseEnd::decide(rules, token.seq, token.round(), token.attempt(), delay_ms)
            })
            .collect();
        let waits: Vec<i64> = tokens
            .iter()
            .map(|token| {
                retry_delay_ms(
                    rules.definition,
                    rules.key,
                    token.seq,
                    token.lease_id,
                    delay_ms,
                ) as i64
            })
            .collect();
        let statement = token_statement(
            "WITH now AS (SELECT coalesce($9::bigint, cairn_now_ms()) AS ms)
             UPDATE cairn_messages m SET
                 status = CASE WHEN m.leased_until_ms IS NOT NULL AND t.dead THEN 1 ELSE 0 END,
                 dead_at_ms = CASE WHEN m.leased_until_ms IS NOT NULL AND t.dead
                                   THEN now.ms END,
                 available_at_ms = now.ms + CASE WHEN m.leased_until_ms IS NOT NULL
                                                 THEN t.fail_delay_ms ELSE t.wait_ms END,
                 leased_until_ms = NULL,
                 last_error = coalesce($8, m.last_error)
             FROM unnest($2::bigint[], $3::int[], $4::int[], $5::bool[], $6::bigint[],
                         $7::bigint[]) AS t(seq, round, attempts, dead, fail_delay_ms, wait_ms),
                  now
             WHERE m.subscription_id = $1 AND m.seq = t.seq AND m.status = 0
               AND m.round = t.round AND m.attempts = t.attempts AND m.attempts > 0
             RETURNING m.seq, m.round, m.attempts",
            id,
            tokens,
        )
        .bind(failures.iter().map(|end| end.dead).collect::<Vec<_>>())
        .bind(failures.iter().map(|end| end.delay_ms).collect::<Vec<_>>())
        .bind(waits)
        .bind(error)
        .bind(now_ms.map(|now| now as i64));
        let leases = self.token_leases(statement).await?;
        Ok(Self::acted_on(tokens, &leases))
    }

    /// Renews the leases `tokens` name that have not ended by `now_ms`, for
    /// `lease_ms` from then. Returns the tokens that acted.
    pub async fn extend_leases(
        &self,
        id: u64,
        tokens: &[LeaseToken],
        lease_ms: u64,
        now_ms: Option<u64>,
    ) -> Result<Vec<LeaseToken>, WriteError> {
        let statement = token_statement(
            "WITH now AS (SELECT coalesce($6::bigint, cairn_now_ms()) AS ms)
             UPDATE cairn_messages m SET leased_until_ms = now.ms + $5
             FROM unnest($2::bigint[], $3::int[], $4::int[]) AS t(seq, round, attempts), now
             WHERE m.subscription_id = $1 AND m.seq = t.seq AND m.status = 0
               AND m.round = t.round AND m.attempts = t.attempts
               AND m.leased_until_ms > now.ms
             RETURNING m.seq, m.round, m.attempts",
            id,
            tokens,
        )
        .bind(lease_ms as i64)
        .bind(now_ms.map(|now| now as i64));
        let leases = self.token_leases(statement).await?;
        Ok(Self::acted_on(tokens, &leases))
    }

    /// The leases of the pending messages among `seqs`, by seq (to tell an
    /// expired token from an unknown one).
    pub async fn pending_leases(
        &self,
        id: u64,
        seqs: &[u64],
    ) -> Result<Vec<(u64, MessageLease)>, ReadError> {
        let seqs: Vec<i64> = seqs.iter().map(|&seq| seq as i64).collect();
        let rows = self
            .timed(
                sqlx::query(
                    "SELECT seq, round, attempts, leased_until_ms IS NOT NULL AS leased
                     FROM cairn_messages
                     WHERE subscription_id = $1 AND seq = ANY($2) AND status = 0",
                )
                .bind(id as i64)
                .bind(&seqs)
                .fetch_all(self.pool()),
            )
            .await
            .map_err(read_error)?;
        rows.iter()
            .map(|row| {
                let round = row.try_get::<i32, _>("round")? as u32;
                let attempts = row.try_get::<i32, _>("attempts")? as u32;
                Ok((
                    row.try_get::<i64, _>("seq")? as u64,
                    MessageLease {
                        lease_id: lease_number(round, attempts),
                        leased: row.try_get("leased")?,
                    },
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(read_error)
    }

    /// Counts for the subscription's view, at `now_ms`.
    pub async fn delivery_counts(
        &self,
        id: u64,
        selection: &MessageSelection,
        now_ms: Option<u64>,
    ) -> Result<Option<DeliveryCounts>, ReadError> {
        let Some(row) = self
            .timed(
                sqlx::query(
                    "WITH now AS (SELECT coalesce($2::bigint, cairn_now_ms()) AS ms)
                     SELECT s.paused, s.cursor_seq, now.ms AS now_ms,
                            count(m.seq) FILTER (WHERE m.status = 0) AS pending,
                            count(m.seq) FILTER (WHERE m.status = 0
                                                 AND m.leased_until_ms > now.ms) AS in_flight,
                            count(m.seq) FILTER (WHERE m.status = 1) AS dead,
                            count(m.seq) FILTER (WHERE m.status = 2) AS discarded,
                            min(m.first_delivered_at_ms) FILTER (WHERE m.status = 0) AS oldest,
                            min(m.seq) FILTER (WHERE m.status = 0) AS lowest
                     FROM now, cairn_subscriptions s
                     LEFT JOIN cairn_messages m ON m.subscription_id = s.id
                     WHERE s.id = $1
                     GROUP BY s.id, now.ms",
                )
                .bind(id as i64)
                .bind(now_ms.map(|now| now as i64))
                .fetch_optional(self.pool()),
            )
            .await
            .map_err(read_error)?
        else {
            return Ok(None);
        };
        let count = |name: &str| -> Result<u64, ReadError> {
            Ok(row.try_get::<i64, _>(name).map_err(read_error)? as u64)
        };
        let optional = |name: &str| -> Result<Option<u64>, ReadError> {
            Ok(row
                .try_get::<Option<i64>, _>(name)
                .map_err(read_error)?
                .map(|value| value as u64))
        };
        let cursor_seq = count("cursor_seq")?;
        let (untracked, first_untracked_seq) =
            self.count_matching_after(selection, cursor_seq).await?;
        Ok(Some(DeliveryCounts {
            pending: count("pending")?,
            in_flight: count("in_flight")?,
            dead: count("dead")?,
            discarded: count("discarded")?,
            untracked,
            first_untracked_seq,
            oldest_first_delivered_at_ms: optional("oldest")?,
            lowest_pending_seq: optional("lowest")?,
            cursor_seq,
            paused: row.try_get("paused").map_err(read_error)?,
            now_ms: count("now_ms")?,
        }))
    }

    /// How many facts matching `selection` have `seq > after_seq`, and the
    /// first of them.
    async fn count_matching_after(
        &self,
        selection: &MessageSelection,
        after_seq: u64,
    ) -> Result<(u64, Option<u64>), ReadError> {
        let query = match selection {
            MessageSelection::Type(type_name) => sqlx::query_as(
                "SELECT count(*), min(seq) FROM cairn_facts WHERE type_name = $1 AND seq > $2",
            )
            .bind(type_name.clone())
            .bind(after_seq as i64),
            MessageSelection::Successors {
                type_name,
                role,
                predecessor,
            } => sqlx::query_as(
                "SELECT count(DISTINCT successor_seq), min(successor_seq) FROM cairn_predecessors
                 WHERE successor_type = $1 AND successor_seq > $2
                   AND predecessor = $3 AND role = $4",
            )
            .bind(type_name.clone())
            .bind(after_seq as i64)
            .bind(predecessor.as_bytes().to_vec())
            .bind(role.clone()),
        };
        let (count, first): (i64, Option<i64>) = self
            .timed(query.fetch_one(self.pool()))
            .await
            .map_err(read_error)?;
        Ok((count as u64, first.map(|seq| seq as u64)))
    }

    /// Where the message at `seq` of subscription `id` stands, read in one
    /// statement with the subscription's cursor and start (addition,
    /// issue 17); `None` if the subscription is gone. Changes nothing.
    pub async fn message_state(
        &self,
        id: u64,
        seq: u64,
        now_ms: Option<u64>,
    ) -> Result<Option<MessageState>, ReadError> {
        let row = self
            .timed(
                sqlx::query(
                    "SELECT s.cursor_seq, s.start_seq, now.ms AS now_ms, m.status, m.attempts,
                            m.available_at_ms, m.leased_until_ms, m.last_error, m.dead_at_ms
                     FROM cairn_subscriptions s
                     CROSS JOIN (SELECT coalesce($3::bigint, cairn_now_ms()) AS ms) now
                     LEFT JOIN cairn_messages m ON m.subscription_id = s.id AND m.seq = $2
                     WHERE s.id = $1",
                )
                .bind(id as i64)
                .bind(seq as i64)
                .bind(now_ms.map(|now| now as i64))
                .fetch_optional(self.pool()),
            )
            .await
            .map_err(read_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let optional = |name: &str| -> Result<Option<u64>, ReadError> {
            Ok(row
                .try_get::<Option<i64>, _>(name)
                .map_err(read_error)?
                .map(|value| value as u64))
        };
        let status: Option<i16> = row.try_get("status").map_err(read_error)?;
        let message = match status {
            None => None,
            Some(status) => Some(MessageStateRow {
                status: match status {
                    0 => MessageStatus::Pending,
                    1 => MessageStatus::Dead,
                    _ => MessageStatus::Discarded,
                },
                attempts: row
                    .try_get::<Option<i32>, _>("attempts")
                    .map_err(read_error)?
                    .unwrap_or(0) as u32,
                available_at_ms: optional("available_at_ms")?.unwrap_or(0),
                leased_until_ms: optional("leased_until_ms")?,
                last_error: row.try_get("last_error").map_err(read_error)?,
                dead_at_ms: optional("dead_at_ms")?,
            }),
        };
        Ok(Some(MessageState {
            cursor_seq: optional("cursor_seq")?.unwrap_or(0),
            start_seq: optional("start_seq")?,
            now_ms: optional("now_ms")?.unwrap_or(0),
            message,
        }))
    }

    /// Dead letters (status `Dead` or `Discarded`) with `seq > after_seq`,
    /// with their facts.
    pub async fn message_rows(
        &self,
        id: u64,
        status: MessageStatus,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, MessageRecord, Vec<u8>)>, ReadError> {
        let status: i16 = match status {
            MessageStatus::Pending => 0,
            MessageStatus::Dead => 1,
            MessageStatus::Discarded => 2,
        };
        let rows = self
            .timed(
                sqlx::query(
                    "SELECT m.*, f.canonical FROM cairn_messages m
                     JOIN cairn_facts f ON f.seq = m.seq
                     WHERE m.subscription_id = $1 AND m.status = $2 AND m.seq > $3
                     ORDER BY m.seq LIMIT $4",
                )
                .bind(id as i64)
                .bind(status)
                .bind(after_seq as i64)
                .bind(limit as i64)
                .fetch_all(self.pool()),
            )
            .await
            .map_err(read_error)?;
        rows.iter().map(message_record).collect()
    }

    /// The dead letter of this fact, with the fact.
    pub async fn dead_message(
        &self,
        id: u64,
        hash: &Hash,
    ) -> Result<Option<(u64, MessageRecord, Vec<u8>)>, ReadError> {
        let row = self
            .timed(
                sqlx::query(
                    "SELECT m.*, f.canonical FROM cairn_messages m
                     JOIN cairn_facts f ON f.seq = m.seq
                     WHERE m.subscription_id = $1 AND m.hash = $2 AND m.status = 1",
                )
                .bind(id as i64)
                .bind(hash.as_bytes().as_slice())
                .fetch_optional(self.pool()),
            )
            .await
            .map_err(read_error)?;
        row.as_ref().map(message_record).transpose()
    }

    /// Brings dead letters back as new messages in a new replay round
    /// (these hashes, or the lowest ones), as many as the window of
    /// `window_max` pending messages has room for. Returns how many.
    pub async fn replay_dead(
        &self,
        id: u64,
        hashes: Option<&[Hash]>,
        window_max: usize,
        now_ms: Option<u64>,
    ) -> Result<u64, WriteError> {
        let hashes: Option<Vec<Vec<u8>>> =
            hashes.map(|hashes| hashes.iter().map(|hash| hash.as_bytes().to_vec()).collect());
        let result = self
            .timed(
                sqlx::query(
                    "WITH room AS (
                         SELECT greatest($3 - count(*), 0) AS n FROM (
                             SELECT 1 FROM cairn_messages
                             WHERE subscription_id = $1 AND status = 0 LIMIT $3) p
                     ),
                     chosen AS (
                         SELECT seq FROM cairn_messages
                         WHERE subscription_id = $1 AND status = 1
                           AND ($2::bytea[] IS NULL OR hash = ANY($2))
                         ORDER BY seq LIMIT (SELECT n FROM room)
                         FOR UPDATE SKIP LOCKED
                     )
                     UPDATE cairn_messages m SET
                         status = 0, round = m.round + 1, attempts = 0,
                         available_at_ms = coalesce($4::bigint, cairn_now_ms()),
                         leased_until_ms = NULL, first_delivered_at_ms = NULL, dead_at_ms = NULL
                     FROM chosen c
                     WHERE m.subscription_id = $1 AND m.seq = c.seq",
                )
                .bind(id as i64)
                .bind(hashes)
                .bind(window_max as i64)
                .bind(now_ms.map(|now| now as i64))
                .execute(self.pool()),
            )
            .await
            .map_err(write_error)?;
        Ok(result.rows_affected())
    }

    /// Discards one dead letter, keeping its row. False if it is not one.
    pub async fn discard_dead(&self, id: u64, hash: &Hash) -> Result<bool, WriteError> {
        let result = self
            .timed(
                sqlx::query(
                    "UPDATE cairn_messages SET status = 2
                     WHERE subscription_id = $1 AND hash = $2 AND status = 1",
                )
                .bind(id as i64)
                .bind(hash.as_bytes().as_slice())
                .execute(self.pool()),
            )
            .await
            .map_err(write_error)?;
        Ok(result.rows_affected() > 0)
    }
}
