//! `CircuitBreakerLayer`: a `tower` layer that runs [`BreakerState`] around
//! any service failing with [`CallError`], so that a failing server stops
//! receiving traffic and callers fail fast with [`CallError::CircuitOpen`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};

use crate::breaker_state::{Admission, BreakerState, CircuitState, Outcome};
use crate::error::CallError;
use crate::options::{BuildError, CircuitBreakerOptions};

/// One circuit shared by every service this layer wraps (and their clones).
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer {
    shared: Arc<Mutex<BreakerState>>,
}

impl CircuitBreakerLayer {
    /// A closed circuit with the given thresholds.
    pub fn new(options: CircuitBreakerOptions) -> Result<Self, BuildError> {
        options.validate()?;
        Ok(CircuitBreakerLayer {
            shared: Arc::new(Mutex::new(BreakerState::new(options))),
        })
    }

    /// The circuit's state now, for metrics and tests.
    pub fn state(&self) -> CircuitState {
        lock(&self.shared).state(Instant::now())
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreaker<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service made by [`CircuitBreakerLayer`].
#[derive(Clone, Debug)]
pub struct CircuitBreaker<S> {
    inner: S,
    shared: Arc<Mutex<BreakerState>>,
}

impl<S, Request> Service<Request> for CircuitBreaker<S>
where
    S: Service<Request, Error = CallError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = CallError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, CallError>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let Some(admission) = lock(&self.shared).try_admit(Instant::now()) else {
            return Box::pin(std::future::ready(Err(CallError::CircuitOpen)));
        };
        let report = OutcomeReport {
            shared: Arc::clone(&self.shared),
            admission,
            outcome: Outcome::Cancelled,
        };
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            report.finish(match &result {
                Err(error) if error.is_server_failure() => Outcome::Failure,
                _ => Outcome::Success,
            });
            result
        })
    }
}

/// Records a call's outcome when the call's future ends or is dropped, so that
/// a cancelled probe frees its half-open slot instead of blocking it forever.
struct OutcomeReport {
    shared: Arc<Mutex<BreakerState>>,
    admission: Admission,
    outcome: Outcome,
}

impl OutcomeReport {
    /// Records `outcome` for a call that ran to its end.
    fn finish(mut self, outcome: Outcome) {
        self.outcome = outcome;
    }
}

impl Drop for OutcomeReport {
    fn drop(&mut self) {
        lock(&self.shared).record(Instant::now(), self.admission, self.outcome);
    }
}

/// The state is only changed by short, non-panicking methods, so a poisoned
/// lock still holds a consistent state and is used as is.
fn lock(shared: &Mutex<BreakerState>) -> MutexGuard<'_, BreakerState> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}
