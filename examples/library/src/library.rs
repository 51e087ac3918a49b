//! [`Library`]: the loans service. Catalogue facts (books, members) go to
//! Cairn directly; loans and returns are written with the service's own
//! `loans` row and reach Cairn through the outbox. Its [`Service`] answers
//! availability requests, reminds borrowers of overdue loans (Cairn holds
//! each loan back until it is due) and runs the outbox relay.

use std::sync::Arc;
use std::time::Duration;

use cairn_client::{
    Client, ClientError, Delivery, HandlerFuture, Hash, IncomingRequest, Service, Subscriber,
    SubscriptionDefinition, TypedFact,
};
use cairn_sql::{with_inbox, Outbox, OutboxError, OutboxRelay, RelayHandle};
use sqlx::SqlitePool;
use time::OffsetDateTime;

use crate::facts::{Availability, Book, IsAvailable, Loan, Member, ReminderSent, Return};

/// How long a borrower waits for an availability answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the relay may publish what is committed when the service stops.
const RELAY_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The subscription whose messages are the loans as they fall due.
pub const REMINDERS_SUBSCRIPTION: &str = "library-reminders";

/// The service's own tables, beside the outbox and inbox of `cairn-sql`.
/// `reminders` has no unique key on purpose: a reminder handled twice
/// would show as two rows.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS loans (loan_hash TEXT PRIMARY KEY, due_at_s INTEGER NOT NULL,
        returned INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS reminders (reminder_id INTEGER PRIMARY KEY AUTOINCREMENT,
        loan_hash TEXT NOT NULL)",
];

/// Why a library operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// Cairn refused or could not be reached (after the client's retries).
    #[error("cannot talk to Cairn")]
    Cairn(#[from] ClientError),
    /// The service's SQLite database failed.
    #[error("cannot use the library's database")]
    Database(#[from] sqlx::Error),
    /// A fact could not be written to the outbox.
    #[error("cannot enqueue a fact")]
    Outbox(#[from] OutboxError),
    /// The loan is unknown or was returned already.
    #[error("loan {0} is not open")]
    LoanNotOpen(Hash),
}

/// The library's operations, cheap to clone.
#[derive(Clone, Debug)]
pub struct Library {
    client: Client,
    database: SqlitePool,
    relay: RelayHandle,
}

impl Library {
    /// Creates the tables and returns the library with its service, to be
    /// run (`Service::run_until`) for requests, reminders and publishing.
    pub async fn start(
        client: Client,
        database: SqlitePool,
    ) -> Result<(Library, Service), LibraryError> {
        cairn_sql::migrate(&database).await?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&database).await?;
        }
        let relay = OutboxRelay::new(database.clone(), Arc::new(client.clone()));
        let library = Library {
            client: client.clone(),
            database: database.clone(),
            relay: relay.handle(),
        };
        let responder = library
            .client
            .responder(move |request: IncomingRequest<IsAvailable>| {
                let open_loans = client.successors::<Loan>(&request.command.book);
                async move {
                    let open_loan = open_loans.without::<Return>().first().await?;
                    Ok(Availability {
                        request: request.hash,
                        available: open_loan.is_none(),
                    })
                }
            });
        let reminders = reminder_handler(database);
        let service = Service::new("library")
            .subscriber(
                Subscriber::new(library.client.clone(), "library-availability", responder)
                    .definition(SubscriptionDefinition::new(IsAvailable::TYPE_NAME)),
            )
            .subscriber(
                Subscriber::new(library.client.clone(), REMINDERS_SUBSCRIPTION, reminders)
                    .definition(SubscriptionDefinition::new(Loan::TYPE_NAME)),
            )
            .task("outbox relay", move |shutdown| {
                relay.run_draining(shutdown, RELAY_DRAIN_TIMEOUT)
            });
        Ok((library, service))
    }

    /// The Cairn client the library uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Adds a book to the catalogue; returns its hash.
    pub async fn add_book(&self, book: &Book) -> Result<Hash, LibraryError> {
        Ok(self.client.put(book).await?.hash)
    }

    /// Adds a member; returns their hash.
    pub async fn add_member(&self, member: &Member) -> Result<Hash, LibraryError> {
        Ok(self.client.put(member).await?.hash)
    }

    /// Lends `book` to `member` until `due_at`; returns the loan's hash.
    pub async fn borrow(
        &self,
        book: Hash,
        member: Hash,
        due_at: OffsetDateTime,
    ) -> Result<Hash, LibraryError> {
        let loan_id = cairn_client::unique_id()?;
        let loan = Loan {
            book,
            member,
            loan_id,
            due_at,
        };
        let mut transaction = self.database.begin().await?;
        let loan_hash = Outbox::new().enqueue_value(&mut transaction, &loan).await?;
        sqlx::query("INSERT INTO loans (loan_hash, due_at_s) VALUES ($1, $2)")
            .bind(loan_hash.to_hex())
            .bind(due_at.unix_timestamp())
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        self.relay.notify();
        Ok(loan_hash)
    }

    /// Ends an open loan; returns the hash of its [`Return`].
    pub async fn return_book(&self, loan: Hash) -> Result<Hash, LibraryError> {
        let mut transaction = self.database.begin().await?;
        let updated =
            sqlx::query("UPDATE loans SET returned = 1 WHERE loan_hash = $1 AND returned = 0")
                .bind(loan.to_hex())
                .execute(&mut *transaction)
                .await?;
        if updated.rows_affected() == 0 {
            return Err(LibraryError::LoanNotOpen(loan));
        }
        let return_hash = Outbox::new()
            .enqueue_value(&mut transaction, &Return { loan })
            .await?;
        transaction.commit().await?;
        self.relay.notify();
        Ok(return_hash)
    }

    /// Asks the service (through Cairn) whether `book` is on the shelf.
    pub async fn is_available(&self, book: Hash) -> Result<bool, LibraryError> {
        let pending = self.client.request(&IsAvailable { book }).await?;
        let reply = pending.reply::<Availability>(REPLY_TIMEOUT).await?;
        Ok(reply.value.available)
    }
}

/// The reminder subscription's handler: each loan arrives once it is due,
/// and unless its book came back the reminder is recorded and announced,
/// in the inbox's transaction, so that a redelivered loan reminds no one
/// twice. Whether the loan was returned is read from the `loans` table in
/// that transaction: a return committed there is certain to reach Cairn,
/// even if the relay has not published it yet.
pub fn reminder_handler(
    database: SqlitePool,
) -> impl Fn(Delivery) -> HandlerFuture + Send + Sync + 'static {
    with_inbox(database, |delivery: Delivery, transaction| {
        Box::pin(async move {
            let loan = delivery.hash();
            let open: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM loans WHERE loan_hash = $1 AND returned = 0")
                    .bind(loan.to_hex())
                    .fetch_optional(&mut **transaction)
                    .await?;
            if open.is_some() {
                sqlx::query("INSERT INTO reminders (loan_hash) VALUES ($1)")
                    .bind(loan.to_hex())
                    .execute(&mut **transaction)
                    .await?;
                Outbox::new()
                    .enqueue_value(transaction, &ReminderSent { loan })
                    .await?;
            }
            Ok(())
        })
    })
}
