//! The client's `tower` retry policy: which failures are retried, how long to
//! wait, and the shared retry budget that keeps a sick server from being hit
//! by a retry storm.

use std::sync::Arc;
use std::time::Duration;

use tower::retry::backoff::{Backoff, ExponentialBackoff};
use tower::retry::budget::{Budget, TpsBudget};
use tower::retry::Policy;

use crate::call::{CallRequest, CallResponse};
use crate::error::CallError;

/// Per-call retry state; cloned from a template for each call by `tower`.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    attempts_made: u32,
    attempts_max: u32,
    budget: Arc<TpsBudget>,
    backoff: ExponentialBackoff,
    retry_after_max: Duration,
}

impl RetryPolicy {
    /// A policy for a fresh call; `budget` is shared by all calls of a client.
    pub fn new(
        attempts_max: u32,
        budget: Arc<TpsBudget>,
        backoff: ExponentialBackoff,
        retry_after_max: Duration,
    ) -> Self {
        RetryPolicy {
            attempts_made: 0,
            attempts_max,
            budget,
            backoff,
            retry_after_max,
        }
    }
}

impl Policy<CallRequest, CallResponse, CallError> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        request: &mut CallRequest,
        result: &mut Result<CallResponse, CallError>,
    ) -> Option<Self::Future> {
        // Every call earns budget once, on its first outcome; retries spend it.
        if self.attempts_made == 0 {
            self.budget.deposit();
        }
        self.attempts_made += 1;
        let Err(error) = result else {
            return None;
        };
        if !error.is_retryable()
            || !request.is_retry_safe()
            || self.attempts_made >= self.attempts_max
        {
            return None;
        }
        if !self.budget.withdraw() {
            let last_error = Box::new(std::mem::replace(error, CallError::Timeout));
            *error = CallError::RetryBudgetExhausted { last_error };
            return None;
        }
        match error {
            CallError::Status {
                retry_after: Some(delay),
                ..
            } => Some(tokio::time::sleep((*delay).min(self.retry_after_max))),
            _ => Some(self.backoff.next_backoff()),
        }
    }

    fn clone_request(&mut self, request: &CallRequest) -> Option<CallRequest> {
        Some(request.clone())
    }
}
