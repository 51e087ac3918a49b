//! [`Service`]: the long-running parts of a service — its subscribers
//! (responders are subscribers too) and other tasks such as an outbox
//! relay — started together and stopped together, in the order that loses
//! nothing: first the subscribers stop taking messages and drain their
//! handlers (whose work may enqueue facts), then the other tasks stop (a
//! relay publishing what the handlers left).
//!
//! A part that fails stops the whole service, as a supervisor would: the
//! others are shut down in the same order and the first failure is
//! returned.

use std::error::Error;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::subscriber::{Delivery, HandlerError, Subscriber, SubscriberReport};

/// The error a part ends with, boxed.
pub type PartError = Box<dyn Error + Send + Sync>;

/// One part, ready to be started with the shutdown signal of its group.
type Starter = Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, PartOutcome> + Send>;

/// How a part ended.
type PartOutcome = (String, Result<(), PartError>);

/// A service's subscribers and tasks, run by [`Service::run_until`].
///
/// ```
/// # use cairn_client::{Client, Delivery, HandlerError, Service, Subscriber, SubscriptionDefinition};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let data = tempfile::tempdir()?;
/// # let client = Client::embedded(data.path()).await?;
/// # let stop = tokio_util::sync::CancellationToken::new();
/// # stop.cancel();
/// let handler = |delivery: Delivery| async move { Ok::<(), HandlerError>(()) };
/// Service::new("billing")
///     .subscriber(
///         Subscriber::new(client.clone(), "billing", handler)
///             .definition(SubscriptionDefinition::new("Shop.Order")),
///     )
///     .task("heartbeat", |shutdown| async move {
///         shutdown.cancelled().await;
///         Ok::<(), std::io::Error>(())
///     })
///     // In a binary: `async { tokio::signal::ctrl_c().await.ok(); }`.
///     .run_until(stop.cancelled_owned())
///     .await?;
/// # client.close().await;
/// # Ok(()) }
/// ```
pub struct Service {
    name: String,
    subscribers: Vec<Starter>,
    tasks: Vec<Starter>,
    reports: Arc<Mutex<Vec<(String, SubscriberReport)>>>,
}

/// What the subscribers of a stopped service did, by subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceReport {
    /// Each subscriber's report, in the order they stopped.
    pub subscribers: Vec<(String, SubscriberReport)>,
}

/// Why a service stopped other than by its stop signal; every other part
/// was shut down first.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// A part returned an error.
    #[error("service {service}: {part} failed")]
    PartFailed {
        /// The service's name.
        service: String,
        /// The part's name (a subscription, or the name of a task).
        part: String,
        /// Its error.
        #[source]
        source: PartError,
    },
    /// A part panicked.
    #[error("service {service}: a part panicked: {message}")]
    PartPanicked {
        /// The service's name.
        service: String,
        /// The panic's text, if it had one.
        message: String,
    },
}

impl Service {
    /// A service with no parts yet; `name` appears in logs and errors.
    pub fn new(name: impl Into<String>) -> Service {
        Service {
            name: name.into(),
            subscribers: Vec::new(),
            tasks: Vec::new(),
            reports: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Adds a subscriber (or a responder: a subscriber whose handler is
    /// [`Client::responder`](crate::Client::responder)).
    pub fn subscriber<H, F>(mut self, subscriber: Subscriber<H>) -> Service
    where
        H: Fn(Delivery) -> F + Send + Sync + 'static,
        F: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let reports = Arc::clone(&self.reports);
        self.subscribers.push(Box::new(move |shutdown| {
            Box::pin(async move {
                let name = subscriber.subscription().to_string();
                match subscriber.run(shutdown).await {
                    Ok(report) => {
                        lock(&reports).push((name.clone(), report));
                        (name, Ok(()))
                    }
                    Err(error) => (name, Err(PartError::from(error))),
                }
            })
        }));
        self
    }

    /// Adds a task: `start(shutdown)` runs until `shutdown` is cancelled,
    /// which happens after every subscriber has stopped. A task that ends
    /// early with `Ok` is done (its value is dropped); with `Err` it stops
    /// the service.
    pub fn task<S, F, T, E>(mut self, name: impl Into<String>, start: S) -> Service
    where
        S: FnOnce(CancellationToken) -> F + Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<PartError>,
    {
        let name = name.into();
        self.tasks.push(Box::new(move |shutdown| {
            Box::pin(async move { (name, start(shutdown).await.map(drop).map_err(Into::into)) })
        }));
        self
    }

    /// Starts every part and runs until `stop` completes (for example
    /// `tokio::signal::ctrl_c()`) or a part fails; then stops the
    /// subscribers (each drains its handlers), then the tasks.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()>,
    ) -> Result<ServiceReport, ServiceError> {
        let subscribers_shutdown = CancellationToken::new();
        let tasks_shutdown = CancellationToken::new();
        let mut subscribers = JoinSet::new();
        for start in self.subscribers {
            subscribers.spawn(start(subscribers_shutdown.clone()));
        }
        let mut tasks = JoinSet::new();
        for start in self.tasks {
            tasks.spawn(start(tasks_shutdown.clone()));
        }
        tracing::info!(service = %self.name, "service started");

        let mut first_failure = None;
        tokio::pin!(stop);
        loop {
            let ended = tokio::select! {
                () = &mut stop => break,
                Some(ended) = subscribers.join_next() => ended,
                Some(ended) = tasks.join_next() => ended,
                else => break,
            };
            if let Some(failure) = failure_of(&self.name, ended) {
                tracing::error!(service = %self.name, "{failure}; stopping the service");
                first_failure = Some(failure);
                break;
            }
        }

        subscribers_shutdown.cancel();
        while let Some(ended) = subscribers.join_next().await {
            first_failure = first_failure.or(failure_of(&self.name, ended));
        }
        tasks_shutdown.cancel();
        while let Some(ended) = tasks.join_next().await {
            first_failure = first_failure.or(failure_of(&self.name, ended));
        }
        tracing::info!(service = %self.name, "service stopped");
        match first_failure {
            Some(failure) => Err(failure),
            None => Ok(ServiceReport {
                subscribers: std::mem::take(&mut *lock(&self.reports)),
            }),
        }
    }
}

/// The failure in how a part ended, if any.
fn failure_of(
    service: &str,
    ended: Result<PartOutcome, tokio::task::JoinError>,
) -> Option<ServiceError> {
    match ended {
        Ok((_, Ok(()))) => None,
        Ok((part, Err(source))) => Some(ServiceError::PartFailed {
            service: service.to_string(),
            part,
            source,
        }),
        Err(join_error) => Some(ServiceError::PartPanicked {
            service: service.to_string(),
            message: join_error.to_string(),
        }),
    }
}

/// Locks a mutex, also after a panic elsewhere (each update is one push).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
