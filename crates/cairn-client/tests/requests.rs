//! Request/response against a real in-process server: every request is a
//! fact of its own (no stale replies), a responder answers through a
//! subscriber, skips expired requests, answers a request once, and a
//! request resent (as an outbox relay would) is the same request.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_client::{
    Client, ClientError, Fact, Hash, IncomingRequest, Request, Start, Subscriber,
    SubscriptionDefinition, TypedFact,
};
use common::TestServer;
use tokio_util::sync::CancellationToken;

/// "Is this book available?"
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Library.IsAvailable")]
struct IsAvailable {
    isbn: String,
}

/// The answer, naming its request.
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Library.Availability", reply_to = IsAvailable)]
struct Availability {
    #[predecessor]
    request: Hash,
    available: bool,
}

const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs a responder on the subscription `availability` (created from the
/// beginning of the log) that answers with `available()`, counting the
/// handler's calls.
struct Responder {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<cairn_client::Result<cairn_client::SubscriberReport>>,
    calls: Arc<AtomicUsize>,
}

impl Responder {
    async fn start(
        client: &Client,
        available: Arc<dyn Fn() -> bool + Send + Sync>,
    ) -> anyhow::Result<Responder> {
        let definition = SubscriptionDefinition {
            start: Some(Start::Beginning),
            ..SubscriptionDefinition::new(IsAvailable::TYPE_NAME)
        };
        let calls = Arc::new(AtomicUsize::new(0));
        let handler_calls = Arc::clone(&calls);
        let responder = client.responder(move |request: IncomingRequest<IsAvailable>| {
            handler_calls.fetch_add(1, Ordering::SeqCst);
            let available = available();
            async move {
                Ok(Availability {
                    request: request.hash,
                    available,
                })
            }
        });
        let shutdown = CancellationToken::new();
        let subscriber = Subscriber::new(client.clone(), "availability", responder)
            .definition(definition)
            .wait_ms(200);
        let task = tokio::spawn(subscriber.run(shutdown.clone()));
        Ok(Responder {
            shutdown,
            task,
            calls,
        })
    }

    async fn stop(self) -> anyhow::Result<usize> {
        self.shutdown.cancel();
        self.task.await??;
        Ok(self.calls.load(Ordering::SeqCst))
    }
}

#[tokio::test]
async fn the_same_question_asked_again_gets_a_fresh_answer() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    let question = IsAvailable {
        isbn: "978-0-13-110362-7".into(),
    };
    let book_on_shelf = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let shelf = Arc::clone(&book_on_shelf);
    let responder =
        Responder::start(&client, Arc::new(move || shelf.load(Ordering::SeqCst))).await?;

    let first = client.request(&question).await?;
    let first_reply = first.reply::<Availability>(REPLY_TIMEOUT).await?;
    assert!(!first_reply.value.available);
    assert_eq!(
        first_reply.value.request,
        first.hash(),
        "read back filled in"
    );

    // The book is returned; the identical question is a new request.
    book_on_shelf.store(true, Ordering::SeqCst);
    let second = client.request(&question).await?;
    assert_ne!(second.hash(), first.hash());
    let second_reply = second.reply::<Availability>(REPLY_TIMEOUT).await?;
    assert!(second_reply.value.available, "a stale reply was returned");
    assert_eq!(responder.stop().await?, 2);

    // The old behaviour, kept as the reason: a command stored as a plain
    // fact twice is one fact, so its first reply would answer the second.
    assert_eq!(
        client.put(&question).await?.hash,
        client.put(&question).await?.hash
    );
    server.stop().await
}

#[tokio::test]
async fn a_request_resent_is_the_same_request_and_is_answered_once() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    let request = Request::new(&IsAvailable { isbn: "1".into() })?;
    // Sent twice (a retry, or an outbox relay publishing it again).
    let first = client.send_request(&request).await?;
    let again = client.send_request(&request).await?;
    assert_eq!(first.hash(), again.hash());
    assert_eq!(first.hash(), request.hash());

    let responder = Responder::start(&client, Arc::new(|| true)).await?;
    let reply = again.reply::<Availability>(REPLY_TIMEOUT).await?;
    // A handle made from the hash alone (a request published elsewhere)
    // finds the same reply.
    let by_hash = client.pending_request::<IsAvailable>(request.hash());
    assert_eq!(
        by_hash.reply::<Availability>(REPLY_TIMEOUT).await?.hash,
        reply.hash
    );
    assert_eq!(responder.stop().await?, 1);
    server.stop().await
}

#[tokio::test]
async fn a_responder_from_the_beginning_skips_requests_nobody_waits_for() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    let question = IsAvailable { isbn: "2".into() };
    let expired = client
        .send_request(&Request::expiring_in(&question, Duration::from_millis(1))?)
        .await?;
    let lasting = client
        .send_request(&Request::without_expiry(&question)?)
        .await?;
    tokio::time::sleep(Duration::from_millis(20)).await;

    // Started afterwards, from the beginning of the log.
    let responder = Responder::start(&client, Arc::new(|| true)).await?;
    lasting.reply::<Availability>(REPLY_TIMEOUT).await?;
    // The expired request was delivered before the lasting one (seq order)
    // and acknowledged without an answer.
    match expired
        .reply::<Availability>(Duration::from_millis(300))
        .await
    {
        Err(ClientError::ReplyTimeout { .. }) => {}
        other => panic!("an expired request was answered: {other:?}"),
    }
    assert_eq!(responder.stop().await?, 1);
    let view = client.subscription("availability").await?.expect("exists");
    assert_eq!((view.backlog, view.in_flight, view.dead), (0, 0, 0));
    server.stop().await
}

#[tokio::test]
async fn an_unanswered_request_times_out() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    let pending = client.request(&IsAvailable { isbn: "3".into() }).await?;
    match pending
        .reply::<Availability>(Duration::from_millis(300))
        .await
    {
        Err(ClientError::ReplyTimeout {
            request, waited_ms, ..
        }) => {
            assert_eq!(request, pending.hash());
            assert!(waited_ms >= 300);
        }
        other => panic!("expected a reply timeout, got {other:?}"),
    }
    server.stop().await
}

#[tokio::test]
async fn a_reply_that_names_another_request_is_a_handler_error() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    let definition = SubscriptionDefinition {
        max_attempts: Some(1),
        ..SubscriptionDefinition::new(IsAvailable::TYPE_NAME)
    };
    let elsewhere = client
        .put(&IsAvailable {
            isbn: "other".into(),
        })
        .await?
        .hash;
    let responder = client.responder(move |_: IncomingRequest<IsAvailable>| async move {
        Ok(Availability {
            request: elsewhere,
            available: true,
        })
    });
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        Subscriber::new(client.clone(), "misreply", responder)
            .definition(definition)
            .wait_ms(100)
            .run(shutdown.clone()),
    );
    let pending = client.request(&IsAvailable { isbn: "4".into() }).await?;
    let mut dead = Vec::new();
    for _ in 0..300 {
        dead = client
            .dead_letters("misreply", cairn_client::DeadLetterQuery::default())
            .await?
            .messages;
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    task.await??;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].hash, pending.hash());
    let last_error = dead[0].last_error.clone().unwrap_or_default();
    assert!(last_error.contains("does not name"), "{last_error}");
    server.stop().await
}
