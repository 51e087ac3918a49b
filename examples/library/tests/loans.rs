//! The library service end to end against an embedded Cairn store in a
//! temporary directory: availability answers are fresh after a return, two
//! identical loans stay two facts, a reminder is sent once per overdue loan
//! (also when the loan is delivered again) and never for a returned one,
//! and the outbox publishes everything. Every wait is bounded.

use std::future::Future;
use std::time::Duration;

use anyhow::{bail, ensure};
use cairn_client::wire::Message;
use cairn_client::{Client, ClientOptions, Delivery, Hash, ServiceError, ServiceReport};
use cairn_example_library::{
    reminder_handler, Book, Library, Loan, Member, ReminderSent, REMINDERS_SUBSCRIPTION,
};
use cairn_server::NodeOptions;
use cairn_sql::Outbox;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The longest any condition of these tests is waited for.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Between two looks at a condition.
const WAIT_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A library service running on a fresh embedded store and database.
struct RunningLibrary {
    library: Library,
    client: Client,
    database: SqlitePool,
    stop: CancellationToken,
    service: JoinHandle<Result<ServiceReport, ServiceError>>,
    /// The Cairn server's stop signal and task, when the library talks to
    /// one over HTTP.
    server: Option<(CancellationToken, JoinHandle<std::io::Result<()>>)>,
    _directory: tempfile::TempDir,
}

impl RunningLibrary {
    /// A library on an embedded store.
    async fn start() -> anyhow::Result<RunningLibrary> {
        let directory = tempfile::tempdir()?;
        let client = Client::embedded(directory.path().join("cairn")).await?;
        RunningLibrary::start_with(client, None, directory).await
    }

    /// A library talking to a Cairn server on a loopback port.
    async fn start_remote() -> anyhow::Result<RunningLibrary> {
        let directory = tempfile::tempdir()?;
        let node = NodeOptions::embedded(directory.path().join("cairn"))
            .build()
            .await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let server_stop = CancellationToken::new();
        let server = tokio::spawn(node.run(listener, server_stop.clone().cancelled_owned()));
        let client = Client::remote(ClientOptions::new([url]))?;
        RunningLibrary::start_with(client, Some((server_stop, server)), directory).await
    }

    async fn start_with(
        client: Client,
        server: Option<(CancellationToken, JoinHandle<std::io::Result<()>>)>,
        directory: tempfile::TempDir,
    ) -> anyhow::Result<RunningLibrary> {
        let database_options = SqliteConnectOptions::new()
            .filename(directory.path().join("library.sqlite"))
            .create_if_missing(true);
        let database = SqlitePool::connect_with(database_options).await?;
        let (library, service) = Library::start(client.clone(), database.clone()).await?;
        let stop = CancellationToken::new();
        let service = tokio::spawn(service.run_until(stop.clone().cancelled_owned()));
        Ok(RunningLibrary {
            library,
            client,
            database,
            stop,
            service,
            server,
            _directory: directory,
        })
    }

    /// A book and a member to lend it to.
    async fn book_and_member(&self) -> anyhow::Result<(Hash, Hash)> {
        let book = Book {
            isbn: "978-0-13-110362-7".into(),
            title: "The C Programming Language".into(),
        };
        let book = self.library.add_book(&book).await?;
        let member = self
            .library
            .add_member(&Member { name: "Ada".into() })
            .await?;
        Ok((book, member))
    }

    /// Stops the service, checks that no handler failed, closes the store.
    async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        let report = tokio::time::timeout(WAIT_TIMEOUT, self.service).await???;
        for (subscription, subscriber) in &report.subscribers {
            ensure!(
                subscriber.messages_failed == 0,
                "{subscription}: {subscriber:?}"
            );
        }
        self.client.close().await;
        if let Some((server_stop, server)) = self.server {
            server_stop.cancel();
            tokio::time::timeout(WAIT_TIMEOUT, server).await???;
        }
        Ok(())
    }
}

/// Waits until `condition` holds, for [`WAIT_TIMEOUT`] at most.
async fn eventually<F, Fut>(what: &str, mut condition: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + WAIT_TIMEOUT;
    while !condition().await? {
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out waiting until {what}");
        }
        tokio::time::sleep(WAIT_POLL_INTERVAL).await;
    }
    Ok(())
}

fn in_a_week() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::from_secs(7 * 24 * 3600)
}

#[tokio::test]
async fn the_same_question_after_a_return_gets_a_fresh_answer() -> anyhow::Result<()> {
    fresh_answers_after_a_return(RunningLibrary::start().await?).await
}

#[tokio::test]
async fn a_remote_server_gives_fresh_answers_too() -> anyhow::Result<()> {
    fresh_answers_after_a_return(RunningLibrary::start_remote().await?).await
}

async fn fresh_answers_after_a_return(running: RunningLibrary) -> anyhow::Result<()> {
    let library = &running.library;
    let (book, member) = running.book_and_member().await?;
    assert!(library.is_available(book).await?);

    let loan = library.borrow(book, member, in_a_week()).await?;
    library.client().wait_for_fact(&loan, WAIT_TIMEOUT).await?;
    assert!(!library.is_available(book).await?);
    assert!(!library.is_available(book).await?, "asked twice");

    let returned = library.return_book(loan).await?;
    library
        .client()
        .wait_for_fact(&returned, WAIT_TIMEOUT)
        .await?;
    assert!(library.is_available(book).await?, "a stale answer");
    assert!(library.return_book(loan).await.is_err(), "returned twice");
    running.stop().await
}

#[tokio::test]
async fn two_identical_loans_stay_two_facts() -> anyhow::Result<()> {
    let running = RunningLibrary::start().await?;
    let library = &running.library;
    let (book, member) = running.book_and_member().await?;
    let due_at = in_a_week();
    let first = library.borrow(book, member, due_at).await?;
    let second = library.borrow(book, member, due_at).await?;
    assert_ne!(first, second);
    library.client().wait_for_fact(&first, WAIT_TIMEOUT).await?;
    library
        .client()
        .wait_for_fact(&second, WAIT_TIMEOUT)
        .await?;

    let loans = running.client.successors::<Loan>(&book).all().await?;
    assert_eq!(loans.len(), 2);
    let (one, other) = (&loans[0].value, &loans[1].value);
    assert_eq!(
        (one.book, one.member, one.due_at),
        (other.book, other.member, other.due_at)
    );

    // One loan returned leaves the other open.
    library
        .client()
        .wait_for_fact(&library.return_book(first).await?, WAIT_TIMEOUT)
        .await?;
    assert!(!library.is_available(book).await?);
    library
        .client()
        .wait_for_fact(&library.return_book(second).await?, WAIT_TIMEOUT)
        .await?;
    assert!(library.is_available(book).await?);
    running.stop().await
}

#[tokio::test]
async fn a_reminder_is_sent_once_per_overdue_loan_and_never_for_a_returned_one(
) -> anyhow::Result<()> {
    let running = RunningLibrary::start().await?;
    let (library, client) = (&running.library, &running.client);
    let (book, member) = running.book_and_member().await?;
    let overdue_since = OffsetDateTime::now_utc() - Duration::from_secs(60);
    let overdue = [
        library.borrow(book, member, overdue_since).await?,
        library.borrow(book, member, overdue_since).await?,
    ];
    // Returned before it falls due, two seconds from now.
    let returned = library
        .borrow(
            book,
            member,
            OffsetDateTime::now_utc() + Duration::from_secs(2),
        )
        .await?;
    library
        .client()
        .wait_for_fact(&library.return_book(returned).await?, WAIT_TIMEOUT)
        .await?;
    for loan in overdue {
        library.client().wait_for_fact(&loan, WAIT_TIMEOUT).await?;
    }

    // Every loan delivered and acknowledged, the returned one once it fell due.
    eventually("every loan is handled", || async {
        let view = client.subscription(REMINDERS_SUBSCRIPTION).await?;
        Ok(view.is_some_and(|view| view.acked >= 3 && view.backlog == 0))
    })
    .await?;

    // A redelivery of an overdue loan (as after a crash before the ack).
    let stored = client.get_fact(&overdue[0]).await?.expect("published");
    let message = Message {
        token: "redelivery".into(),
        hash: stored.hash,
        seq: stored.seq,
        attempt: 2,
        fact: stored.fact,
        upcast: None,
        original: None,
    };
    let handler = reminder_handler(running.database.clone());
    handler(Delivery::new(REMINDERS_SUBSCRIPTION.into(), message))
        .await
        .map_err(|error| anyhow::anyhow!(error.message().to_string()))?;

    eventually("the outbox is published", || async {
        let unsent = Outbox::unsent_count(&running.database).await?;
        Ok(unsent == 0 && Outbox::dead_letter_count(&running.database).await? == 0)
    })
    .await?;
    for (loan, reminders_expected) in [(overdue[0], 1), (overdue[1], 1), (returned, 0)] {
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reminders WHERE loan_hash = $1")
            .bind(loan.to_hex())
            .fetch_one(&running.database)
            .await?;
        let facts = client.successors::<ReminderSent>(&loan).all().await?;
        assert_eq!(
            (rows, facts.len()),
            (reminders_expected, reminders_expected as usize)
        );
    }
    running.stop().await
}

#[tokio::test]
async fn the_demo_runs_the_whole_scenario() -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_library"))
        .arg("--data")
        .arg(directory.path().join("cairn"))
        .arg("--database")
        .arg(directory.path().join("library.sqlite"))
        .args(["demo", "--loan-period-s", "1"])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(WAIT_TIMEOUT, output).await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "available before any loan: true",
        "available while lent: false",
        "available after the return: true",
        "reminder sent for the overdue loan",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
    Ok(())
}
