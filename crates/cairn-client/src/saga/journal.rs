//! [`SagaJournal`]: one saga instance as its facts tell it, and the pure
//! decision of what comes next ([`SagaJournal::next`]). No I/O: the runner
//! reads the facts, asks for the decision, carries it out and writes the
//! transition, then reads again; the CLI shows the same reading.
//!
//! *The chain rule.* Transitions name the transition they follow
//! (`previous`). Two runners (or one runner before and after a crash) may
//! write two different successors of one transition; the journal follows
//! the one with the lowest `seq` (the first stored) and ignores the others
//! (`superseded`). Every reader applies the same rule to the same facts,
//! so all of them agree on one chain, and a runner only ever carries out
//! the attempt that is on the chain.

use std::collections::HashMap;

use cairn_fact::Hash;
use serde::Serialize;

use crate::saga::facts::{
    AbortRequestedFact, DefinitionFact, RetryRequestedFact, StartedFact, StepDefinitionFact,
    TransitionFact, TransitionKind,
};
use crate::typed::Typed;

/// Where a saga stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaState {
    /// Steps are being run.
    Running,
    /// A step failed for good (or an abort was accepted): completed steps
    /// are being compensated.
    Compensating,
    /// Every step succeeded (terminal).
    Completed,
    /// A step failed for good and the completed steps were compensated
    /// (terminal).
    Compensated,
    /// A compensation failed for good: waits for `cairn sagas retry` or
    /// `abort`.
    Failed,
    /// Aborted by an operator, the completed steps compensated (terminal).
    Aborted,
}

impl SagaState {
    /// The state's name (`running`, `completed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SagaState::Running => "running",
            SagaState::Compensating => "compensating",
            SagaState::Completed => "completed",
            SagaState::Compensated => "compensated",
            SagaState::Failed => "failed",
            SagaState::Aborted => "aborted",
        }
    }

    /// Every state, for parsing and help texts.
    pub const ALL: [SagaState; 6] = [
        SagaState::Running,
        SagaState::Compensating,
        SagaState::Completed,
        SagaState::Compensated,
        SagaState::Failed,
        SagaState::Aborted,
    ];

    /// The state named `text`, if any.
    pub fn parse(text: &str) -> Option<SagaState> {
        SagaState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
    }

    /// Whether nothing more will happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SagaState::Completed | SagaState::Compensated | SagaState::Aborted
        )
    }
}

/// What the runner should do next for a saga.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Store this transition (it follows the journal's last one).
    Write(TransitionFact),
    /// Run the action of the attempt on the chain (a new attempt, or one
    /// interrupted by a crash: the same attempt, with the same idempotency
    /// key) and store its outcome.
    RunAction {
        /// The `step_attempted` transition.
        attempt_transition: Hash,
        /// The attempt's idempotency key: the attempt transition's hash,
        /// or its `key_attempt`'s after a timeout.
        idempotency_key: Hash,
        /// The step's index.
        step: u32,
        /// The attempt number.
        attempt: u32,
        /// When the attempt times out, if the step has a timeout.
        deadline_ms: Option<u64>,
    },
    /// Run the compensation of the attempt on the chain and store its
    /// outcome.
    RunCompensation {
        /// The `compensation_attempted` transition: its hash is the key.
        attempt_transition: Hash,
        /// The step's index.
        step: u32,
        /// The attempt number.
        attempt: u32,
    },
    /// A compensation failed for good: nothing until an operator's retry
    /// or abort.
    WaitForOperator,
    /// The saga has ended.
    Finished,
}

/// One attempt (of an action or a compensation) and its outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttemptView {
    /// The attempt number.
    pub attempt: u32,
    /// The attempt's idempotency key (its transition's hash, or the
    /// `key_attempt`'s).
    pub key: Hash,
    /// When it was made (ms since the Unix epoch).
    pub at_ms: Option<u64>,
    /// When it times out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// `succeeded`, `failed`, `timed_out`, or `running` without outcome.
    pub outcome: &'static str,
    /// The error of a failed attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One step as the journal tells it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepView {
    /// The step's name.
    pub name: String,
    /// `pending`, `running`, `succeeded`, `failed`, `compensating`,
    /// `compensated` or `compensation_failed`.
    pub status: &'static str,
    /// The action's attempts.
    pub attempts: Vec<AttemptView>,
    /// The output of the attempt that succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// The compensation's attempts.
    pub compensation_attempts: Vec<AttemptView>,
}

/// A saga instance read from its facts.
#[derive(Clone, Debug, PartialEq)]
pub struct SagaJournal {
    /// The saga's id: the hash of its `Saga.Started`.
    pub id: Hash,
    /// The instance.
    pub started: Typed<StartedFact>,
    /// Its definition.
    pub definition: Typed<DefinitionFact>,
    /// The transitions on the chain, in order.
    pub chain: Vec<Typed<TransitionFact>>,
    /// Transitions off the chain (a second successor of a transition).
    pub superseded: Vec<Typed<TransitionFact>>,
    /// Operators' retry requests, in `seq` order.
    pub retry_requests: Vec<Typed<RetryRequestedFact>>,
    /// Operators' abort requests, in `seq` order.
    pub abort_requests: Vec<Typed<AbortRequestedFact>>,
}

impl SagaJournal {
    /// The journal of `started` from its transitions (every
    /// `Saga.Transition` naming it as `saga`, in any order) and requests:
    /// follows the chain rule (see the module's documentation).
    pub fn new(
        started: Typed<StartedFact>,
        definition: Typed<DefinitionFact>,
        mut transitions: Vec<Typed<TransitionFact>>,
        retry_requests: Vec<Typed<RetryRequestedFact>>,
        abort_requests: Vec<Typed<AbortRequestedFact>>,
    ) -> SagaJournal {
        transitions.sort_by_key(|transition| transition.seq);
        let mut first_successor: HashMap<Hash, usize> = HashMap::new();
        for (index, transition) in transitions.iter().enumerate() {
            first_successor
                .entry(transition.value.previous)
                .or_insert(index);
        }
        let mut on_chain = vec![false; transitions.len()];
        let mut head = started.hash;
        // Bounded: each index is visited once, as `on_chain` grows.
        while let Some(&index) = first_successor.get(&head) {
            if on_chain[index] {
                break;
            }
            on_chain[index] = true;
            head = transitions[index].hash;
        }
        let mut chain = Vec::new();
        let mut superseded = Vec::new();
        for (transition, is_on_chain) in transitions.into_iter().zip(on_chain) {
            if is_on_chain {
                chain.push(transition);
            } else {
                superseded.push(transition);
            }
        }
        // The chain in chain order (which is also seq order: a successor
        // is stored after what it names).
        let mut ordered = Vec::with_capacity(chain.len());
        let mut by_previous: HashMap<Hash, Typed<TransitionFact>> = chain
            .into_iter()
            .map(|transition| (transition.value.previous, transition))
            .collect();
        let mut head = started.hash;
        while let Some(transition) = by_previous.remove(&head) {
            head = transition.hash;
            ordered.push(transition);
        }
        SagaJournal {
            id: started.hash,
            started,
            definition,
            chain: ordered,
            superseded,
            retry_requests,
            abort_requests,
        }
    }

    /// The saga's name.
    pub fn name(&self) -> &str {
        &self.definition.value.name
    }

    /// The definition's version the instance runs under.
    pub fn version(&self) -> u32 {
        self.definition.value.version
    }

    /// The steps of the definition.
    pub fn step_definitions(&self) -> &[StepDefinitionFact] {
        &self.definition.value.steps
    }

    /// The hash of the journal's last transition (the `Saga.Started` if
    /// there is none yet).
    pub fn head(&self) -> Hash {
        self.chain
            .last()
            .map_or(self.started.hash, |transition| transition.hash)
    }

    fn head_transition(&self) -> Option<&TransitionFact> {
        self.chain.last().map(|transition| &transition.value)
    }

    fn has_kind(&self, kind: TransitionKind) -> bool {
        self.chain
            .iter()
            .any(|transition| transition.value.kind == kind)
    }

    /// Where the saga stands.
    pub fn state(&self) -> SagaState {
        match self.head_transition().map(|transition| transition.kind) {
            Some(TransitionKind::Completed) => SagaState::Completed,
            Some(TransitionKind::Compensated) => SagaState::Compensated,
            Some(TransitionKind::Aborted) => SagaState::Aborted,
            Some(TransitionKind::Failed) => SagaState::Failed,
            _ if self.is_compensating() => SagaState::Compensating,
            _ => SagaState::Running,
        }
    }

    fn is_compensating(&self) -> bool {
        self.has_kind(TransitionKind::AbortAccepted)
            || self.has_kind(TransitionKind::CompensationAttempted)
            || self.forward_step().is_err()
    }

    /// The transitions of one step of one family (action or compensation),
    /// with their positions on the chain.
    fn step_transitions(
        &self,
        step: u32,
        kinds: &[TransitionKind],
    ) -> impl Iterator<Item = (usize, &Typed<TransitionFact>)> {
        let kinds = kinds.to_vec();
        self.chain
            .iter()
            .enumerate()
            .filter(move |(_, transition)| {
                transition.value.step == Some(step) && kinds.contains(&transition.value.kind)
            })
    }

    fn succeeded(&self, step: u32) -> bool {
        self.step_transitions(step, &[TransitionKind::StepSucceeded])
            .next()
            .is_some()
    }

    fn compensated(&self, step: u32) -> bool {
        self.step_transitions(step, &[TransitionKind::StepCompensated])
            .next()
            .is_some()
    }

    /// The step to run forward: `Ok(None)` when every step succeeded,
    /// `Ok(Some((step, next attempt, key attempt)))`, or `Err(error)` when
    /// the current step failed for good.
    fn forward_step(&self) -> Result<Option<(u32, u32, Option<Hash>)>, String> {
        let steps = self.step_definitions();
        let Some(step) = (0..steps.len()).find(|step| !self.succeeded(step_index(*step))) else {
            return Ok(None);
        };
        let step = step_index(step);
        let definition = &steps[step as usize];
        let outcomes: Vec<&TransitionFact> = self
            .step_transitions(
                step,
                &[TransitionKind::StepFailed, TransitionKind::StepTimedOut],
            )
            .map(|(_, transition)| &transition.value)
            .collect();
        // After a timeout, the next attempt reuses the key of the attempt
        // that started the run of timeouts.
        let key_attempt = outcomes
            .last()
            .filter(|last| last.kind == TransitionKind::StepTimedOut)
            .and_then(|last| {
                let timed_out = self
                    .chain
                    .iter()
                    .find(|transition| transition.hash == last.previous)?;
                Some(timed_out.value.key_attempt.unwrap_or(timed_out.hash))
            });
        let attempts_n = u32::try_from(
            self.step_transitions(step, &[TransitionKind::StepAttempted])
                .count(),
        )
        .unwrap_or(u32::MAX);
        match outcomes.last() {
            None => Ok(Some((step, attempts_n + 1, None))),
            Some(last) => {
                let retryable =
                    last.kind == TransitionKind::StepTimedOut || last.retryable == Some(true);
                let error = last
                    .error
                    .clone()
                    .unwrap_or_else(|| "the step timed out".to_string());
                if retryable && attempts_n < definition.attempts_max {
                    Ok(Some((step, attempts_n + 1, key_attempt)))
                } else {
                    Err(error)
                }
            }
        }
    }

    /// A draft transition after the head.
    fn draft(&self, kind: TransitionKind) -> TransitionFact {
        TransitionFact {
            saga: self.id,
            previous: self.head(),
            request: None,
            key_attempt: None,
            kind,
            step: None,
            step_name: None,
            attempt: None,
            deadline_ms: None,
            at_ms: None,
            output: None,
            error: None,
            retryable: None,
        }
    }

    /// A draft transition about `step`, after the head.
    fn step_draft(&self, kind: TransitionKind, step: u32, attempt: u32) -> TransitionFact {
        TransitionFact {
            step: Some(step),
            step_name: self
                .step_definitions()
                .get(step as usize)
                .map(|definition| definition.name.clone()),
            attempt: Some(attempt),
            ..self.draft(kind)
        }
    }

    /// The outcome transition of the attempt at the head, built by the
    /// runner once the action or compensation returned (or timed out):
    /// `None` if the head is not an attempt.
    pub fn outcome(
        &self,
        kind: TransitionKind,
        output: Option<serde_json::Value>,
        error: Option<(String, bool)>,
    ) -> Option<TransitionFact> {
        let head = self.head_transition()?;
        let step = head.step?;
        let attempt = head.attempt?;
        let mut outcome = self.step_draft(kind, step, attempt);
        match kind {
            TransitionKind::StepSucceeded => outcome.output = output,
            TransitionKind::StepFailed => {
                let (text, retryable) = error?;
                outcome.error = Some(text);
                outcome.retryable = Some(retryable);
            }
            TransitionKind::CompensationFailed => outcome.error = error.map(|(text, _)| text),
            TransitionKind::StepTimedOut => outcome.deadline_ms = head.deadline_ms,
            _ => {}
        }
        Some(outcome)
    }

    /// What comes next, at `now_ms` (ms since the Unix epoch).
    pub fn next(&self, now_ms: u64) -> Decision {
        if let Some(head) = self.chain.last() {
            match head.value.kind {
                TransitionKind::Completed
                | TransitionKind::Compensated
                | TransitionKind::Aborted => return Decision::Finished,
                TransitionKind::StepAttempted => {
                    let (Some(step), Some(attempt)) = (head.value.step, head.value.attempt) else {
                        return Decision::WaitForOperator;
                    };
                    if head
                        .value
                        .deadline_ms
                        .is_some_and(|deadline_ms| now_ms >= deadline_ms)
                    {
                        let mut timed_out =
                            self.step_draft(TransitionKind::StepTimedOut, step, attempt);
                        timed_out.deadline_ms = head.value.deadline_ms;
                        return Decision::Write(timed_out);
                    }
                    return Decision::RunAction {
                        attempt_transition: head.hash,
                        idempotency_key: head.value.key_attempt.unwrap_or(head.hash),
                        step,
                        attempt,
                        deadline_ms: head.value.deadline_ms,
                    };
                }
                TransitionKind::CompensationAttempted => {
                    let (Some(step), Some(attempt)) = (head.value.step, head.value.attempt) else {
                        return Decision::WaitForOperator;
                    };
                    return Decision::RunCompensation {
                        attempt_transition: head.hash,
                        step,
                        attempt,
                    };
                }
                _ => {}
            }
        }
        let aborting = self.has_kind(TransitionKind::AbortAccepted);
        if !aborting {
            if let Some(request) = self.abort_requests.first() {
                let mut accepted = self.draft(TransitionKind::AbortAccepted);
                accepted.request = Some(request.hash);
                return Decision::Write(accepted);
            }
        }
        if self.head_transition().map(|head| head.kind) == Some(TransitionKind::Failed) {
            let head = self.head();
            return match self
                .retry_requests
                .iter()
                .find(|request| request.value.after == head)
            {
                Some(request) => {
                    let mut accepted = self.draft(TransitionKind::RetryAccepted);
                    accepted.request = Some(request.hash);
                    Decision::Write(accepted)
                }
                None => Decision::WaitForOperator,
            };
        }
        if !aborting && !self.has_kind(TransitionKind::CompensationAttempted) {
            match self.forward_step() {
                Ok(None) => return Decision::Write(self.draft(TransitionKind::Completed)),
                Ok(Some((step, attempt, key_attempt))) => {
                    let mut attempted =
                        self.step_draft(TransitionKind::StepAttempted, step, attempt);
                    attempted.at_ms = Some(now_ms);
                    attempted.key_attempt = key_attempt;
                    attempted.deadline_ms = self.step_definitions()[step as usize]
                        .timeout_ms
                        .map(|timeout_ms| now_ms.saturating_add(timeout_ms));
                    return Decision::Write(attempted);
                }
                Err(_) => {}
            }
        }
        self.next_compensation(aborting, now_ms)
    }

    /// The next move while compensating.
    fn next_compensation(&self, aborting: bool, now_ms: u64) -> Decision {
        let steps = self.step_definitions();
        let next_step = (0..steps.len()).rev().map(step_index).find(|step| {
            steps[*step as usize].compensable && self.succeeded(*step) && !self.compensated(*step)
        });
        let Some(step) = next_step else {
            let kind = if aborting {
                TransitionKind::Aborted
            } else {
                TransitionKind::Compensated
            };
            return Decision::Write(self.draft(kind));
        };
        // A round of attempts starts after the last accepted request.
        let round_start = self
            .chain
            .iter()
            .rposition(|transition| {
                matches!(
                    transition.value.kind,
                    TransitionKind::RetryAccepted | TransitionKind::AbortAccepted
                )
            })
            .map_or(0, |position| position + 1);
        let attempts_n = u32::try_from(
            self.step_transitions(step, &[TransitionKind::CompensationAttempted])
                .count(),
        )
        .unwrap_or(u32::MAX);
        let round_attempts_n = self
            .step_transitions(step, &[TransitionKind::CompensationAttempted])
            .filter(|(position, _)| *position >= round_start)
            .count();
        let last_error = self
            .step_transitions(step, &[TransitionKind::CompensationFailed])
            .last()
            .and_then(|(_, transition)| transition.value.error.clone());
        let attempts_max = steps[step as usize].compensation_attempts_max;
        if round_attempts_n >= attempts_max as usize {
            let mut failed = self.draft(TransitionKind::Failed);
            failed.step = Some(step);
            failed.step_name = Some(steps[step as usize].name.clone());
            failed.error = Some(format!(
                "the compensation of step {:?} failed {round_attempts_n} time(s): {}",
                steps[step as usize].name,
                last_error.unwrap_or_default()
            ));
            return Decision::Write(failed);
        }
        let mut attempted =
            self.step_draft(TransitionKind::CompensationAttempted, step, attempts_n + 1);
        attempted.at_ms = Some(now_ms);
        Decision::Write(attempted)
    }

    /// The output of a step that succeeded.
    pub fn output(&self, step: u32) -> Option<&serde_json::Value> {
        self.step_transitions(step, &[TransitionKind::StepSucceeded])
            .next()
            .and_then(|(_, transition)| transition.value.output.as_ref())
    }

    /// Why the saga is compensating, failed or ended other than completed:
    /// the last error on the chain.
    pub fn last_error(&self) -> Option<&str> {
        self.chain
            .iter()
            .rev()
            .find_map(|transition| transition.value.error.as_deref())
    }

    /// The steps as the journal tells them.
    pub fn steps(&self) -> Vec<StepView> {
        let steps = self.step_definitions();
        (0..steps.len())
            .map(|index| {
                let step = step_index(index);
                let attempts = self.attempts(
                    step,
                    TransitionKind::StepAttempted,
                    &[
                        TransitionKind::StepSucceeded,
                        TransitionKind::StepFailed,
                        TransitionKind::StepTimedOut,
                    ],
                );
                let compensation_attempts = self.attempts(
                    step,
                    TransitionKind::CompensationAttempted,
                    &[
                        TransitionKind::StepCompensated,
                        TransitionKind::CompensationFailed,
                    ],
                );
                let status = if self.compensated(step) {
                    "compensated"
                } else if let Some(last) = compensation_attempts.last() {
                    match last.outcome {
                        "failed" => "compensation_failed",
                        _ => "compensating",
                    }
                } else if self.succeeded(step) {
                    "succeeded"
                } else if let Some(last) = attempts.last() {
                    match last.outcome {
                        "running" => "running",
                        _ => "failed",
                    }
                } else {
                    "pending"
                };
                StepView {
                    name: steps[index].name.clone(),
                    status,
                    attempts,
                    output: self.output(step).cloned(),
                    compensation_attempts,
                }
            })
            .collect()
    }

    fn attempts(
        &self,
        step: u32,
        attempt_kind: TransitionKind,
        outcome_kinds: &[TransitionKind],
    ) -> Vec<AttemptView> {
        self.step_transitions(step, &[attempt_kind])
            .map(|(_, attempt)| {
                let outcome = self
                    .chain
                    .iter()
                    .find(|transition| {
                        transition.value.previous == attempt.hash
                            && outcome_kinds.contains(&transition.value.kind)
                    })
                    .map(|transition| &transition.value);
                AttemptView {
                    attempt: attempt.value.attempt.unwrap_or_default(),
                    key: attempt.value.key_attempt.unwrap_or(attempt.hash),
                    at_ms: attempt.value.at_ms,
                    deadline_ms: attempt.value.deadline_ms,
                    outcome: match outcome.map(|outcome| outcome.kind) {
                        None => "running",
                        Some(TransitionKind::StepSucceeded | TransitionKind::StepCompensated) => {
                            "succeeded"
                        }
                        Some(TransitionKind::StepTimedOut) => "timed_out",
                        Some(_) => "failed",
                    },
                    error: outcome.and_then(|outcome| outcome.error.clone()),
                }
            })
            .collect()
    }

    /// The journal as JSON, for `cairn sagas show --json` and readers in
    /// other languages: id, name, version, state, input, steps, the chain
    /// of transitions and the requests.
    pub fn to_json(&self) -> serde_json::Value {
        let transition_json = |transition: &Typed<TransitionFact>| {
            let mut json = serde_json::json!({
                "hash": transition.hash.to_hex(),
                "seq": transition.seq,
                "kind": transition.value.kind.as_str(),
            });
            let members = json.as_object_mut().expect("an object");
            if let Some(step) = &transition.value.step_name {
                members.insert("step".into(), step.clone().into());
            }
            if let Some(attempt) = transition.value.attempt {
                members.insert("attempt".into(), attempt.into());
            }
            if let Some(error) = &transition.value.error {
                members.insert("error".into(), error.clone().into());
            }
            if let Some(at_ms) = transition.value.at_ms {
                members.insert("at_ms".into(), at_ms.into());
            }
            json
        };
        serde_json::json!({
            "id": self.id.to_hex(),
            "name": self.name(),
            "version": self.version(),
            "definition": self.definition.hash.to_hex(),
            "state": self.state().as_str(),
            "started_seq": self.started.seq,
            "input": self.started.value.input,
            "last_error": self.last_error(),
            "steps": self.steps(),
            "transitions": self.chain.iter().map(transition_json).collect::<Vec<_>>(),
            "superseded": self.superseded.iter().map(transition_json).collect::<Vec<_>>(),
            "retry_requests": self.retry_requests.iter().map(|request| serde_json::json!({
                "hash": request.hash.to_hex(), "reason": request.value.reason,
                "requested_at_ms": request.value.requested_at_ms,
            })).collect::<Vec<_>>(),
            "abort_requests": self.abort_requests.iter().map(|request| serde_json::json!({
                "hash": request.hash.to_hex(), "reason": request.value.reason,
                "requested_at_ms": request.value.requested_at_ms,
            })).collect::<Vec<_>>(),
        })
    }
}

/// A step's index as the journal's `u32` (definitions have at most
/// `SAGA_STEPS_MAX` steps).
fn step_index(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saga::facts::RegistryFact;
    use crate::typed::to_canonical_fact;
    use crate::TypedFact;

    /// A fact as read back, at `seq`.
    fn typed<T: TypedFact + Clone>(value: &T, seq: u64) -> Typed<T> {
        let fact = to_canonical_fact(value).expect("a fact");
        Typed {
            hash: fact.hash,
            seq,
            value: value.clone(),
            predecessors: value.predecessors(),
        }
    }

    fn step(name: &str, attempts_max: u32, timeout_ms: Option<u64>) -> StepDefinitionFact {
        StepDefinitionFact {
            name: name.to_string(),
            attempts_max,
            timeout_ms,
            compensable: true,
            compensation_attempts_max: 2,
        }
    }

    /// A three-step saga's journal, as a runner would grow it.
    struct Scenario {
        started: Typed<StartedFact>,
        definition: Typed<DefinitionFact>,
        transitions: Vec<Typed<TransitionFact>>,
        aborts: Vec<Typed<AbortRequestedFact>>,
        retries: Vec<Typed<RetryRequestedFact>>,
        seq: u64,
    }

    impl Scenario {
        fn new() -> Scenario {
            let registry = to_canonical_fact(&RegistryFact {}).expect("a fact").hash;
            let definition = typed(
                &DefinitionFact {
                    registry,
                    name: "checkout".to_string(),
                    version: 1,
                    steps: vec![
                        step("reserve", 1, None),
                        step("charge", 3, None),
                        step("ship", 2, Some(1_000)),
                    ],
                },
                1,
            );
            let started = typed(
                &StartedFact {
                    definition: definition.hash,
                    id: "o-1".to_string(),
                    input: serde_json::json!({}),
                },
                2,
            );
            Scenario {
                started,
                definition,
                transitions: Vec::new(),
                aborts: Vec::new(),
                retries: Vec::new(),
                seq: 2,
            }
        }

        fn journal(&self) -> SagaJournal {
            SagaJournal::new(
                self.started.clone(),
                self.definition.clone(),
                self.transitions.clone(),
                self.retries.clone(),
                self.aborts.clone(),
            )
        }

        fn store(&mut self, transition: TransitionFact) -> Hash {
            self.seq += 1;
            let stored = typed(&transition, self.seq);
            self.transitions.push(stored.clone());
            stored.hash
        }

        /// Stores what `next` asks to write; the decision otherwise.
        fn advance(&mut self, now_ms: u64) -> Decision {
            match self.journal().next(now_ms) {
                Decision::Write(transition) => {
                    self.store(transition.clone());
                    Decision::Write(transition)
                }
                other => other,
            }
        }

        /// Stores the outcome of the attempt at the head.
        fn outcome(&mut self, kind: TransitionKind, error: Option<(&str, bool)>) {
            let outcome = self
                .journal()
                .outcome(
                    kind,
                    Some(serde_json::json!({"ok": true})),
                    error.map(|(text, retryable)| (text.to_string(), retryable)),
                )
                .expect("an attempt at the head");
            self.store(outcome);
        }

        fn kinds(&self) -> Vec<(&'static str, Option<String>)> {
            self.journal()
                .chain
                .iter()
                .map(|t| (t.value.kind.as_str(), t.value.step_name.clone()))
                .collect()
        }
    }

    fn written(decision: &Decision) -> TransitionKind {
        match decision {
            Decision::Write(transition) => transition.kind,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    #[test]
    fn every_step_succeeds_then_the_saga_completes() {
        let mut scenario = Scenario::new();
        for _ in 0..3 {
            assert_eq!(
                written(&scenario.advance(10)),
                TransitionKind::StepAttempted
            );
            assert!(matches!(scenario.advance(10), Decision::RunAction { .. }));
            scenario.outcome(TransitionKind::StepSucceeded, None);
        }
        assert_eq!(written(&scenario.advance(10)), TransitionKind::Completed);
        assert_eq!(scenario.advance(10), Decision::Finished);
        assert_eq!(scenario.journal().state(), SagaState::Completed);
    }

    #[test]
    fn an_interrupted_attempt_runs_again_with_its_key_and_times_out_past_its_deadline() {
        let mut scenario = Scenario::new();
        for _ in 0..2 {
            scenario.advance(10);
            scenario.outcome(TransitionKind::StepSucceeded, None);
        }
        scenario.advance(100);
        let attempt = scenario.journal().head();
        // A runner that starts again before the deadline runs the same
        // attempt, under the same key.
        match scenario.advance(500) {
            Decision::RunAction {
                idempotency_key,
                deadline_ms,
                ..
            } => {
                assert_eq!(idempotency_key, attempt);
                assert_eq!(deadline_ms, Some(1_100));
            }
            other => panic!("{other:?}"),
        }
        // Past it, the attempt times out, and the retry keeps its key.
        assert_eq!(
            written(&scenario.advance(1_100)),
            TransitionKind::StepTimedOut
        );
        assert_eq!(
            written(&scenario.advance(1_200)),
            TransitionKind::StepAttempted
        );
        let retry = scenario.journal().head();
        match scenario.advance(1_300) {
            Decision::RunAction {
                idempotency_key,
                attempt_transition,
                attempt: 2,
                ..
            } => {
                assert_eq!(idempotency_key, attempt, "a timeout's retry keeps the key");
                assert_eq!(attempt_transition, retry);
            }
            other => panic!("{other:?}"),
        }
        // The second timeout fails the step for good: compensation in
        // reverse order.
        assert_eq!(
            written(&scenario.advance(5_000)),
            TransitionKind::StepTimedOut
        );
        let compensate = scenario.advance(5_000);
        assert_eq!(written(&compensate), TransitionKind::CompensationAttempted);
        assert_eq!(scenario.journal().state(), SagaState::Compensating);
        scenario.outcome(TransitionKind::StepCompensated, None);
        scenario.advance(5_000);
        scenario.outcome(TransitionKind::StepCompensated, None);
        assert_eq!(
            written(&scenario.advance(5_000)),
            TransitionKind::Compensated
        );
        let compensated: Vec<_> = scenario
            .kinds()
            .into_iter()
            .filter(|(kind, _)| *kind == "step_compensated")
            .map(|(_, step)| step.unwrap_or_default())
            .collect();
        assert_eq!(compensated, ["charge", "reserve"]);
        assert_eq!(scenario.journal().state(), SagaState::Compensated);
    }

    #[test]
    fn a_failure_retries_with_a_new_key_and_a_permanent_one_compensates() {
        let mut scenario = Scenario::new();
        scenario.advance(10);
        scenario.outcome(TransitionKind::StepSucceeded, None);
        scenario.advance(10);
        let first = scenario.journal().head();
        scenario.outcome(TransitionKind::StepFailed, Some(("busy", true)));
        scenario.advance(10);
        match scenario.advance(10) {
            Decision::RunAction {
                idempotency_key,
                attempt: 2,
                ..
            } => assert_ne!(idempotency_key, first, "a real retry has its own key"),
            other => panic!("{other:?}"),
        }
        scenario.outcome(TransitionKind::StepFailed, Some(("declined", false)));
        assert_eq!(
            written(&scenario.advance(10)),
            TransitionKind::CompensationAttempted
        );
        assert_eq!(scenario.journal().last_error(), Some("declined"));
    }

    #[test]
    fn the_first_stored_successor_wins_and_the_other_is_superseded() {
        let mut scenario = Scenario::new();
        scenario.advance(10);
        let journal = scenario.journal();
        let late = journal
            .outcome(
                TransitionKind::StepFailed,
                None,
                Some(("late".into(), true)),
            )
            .expect("an outcome");
        let early = journal
            .outcome(
                TransitionKind::StepSucceeded,
                Some(serde_json::json!(1)),
                None,
            )
            .expect("an outcome");
        scenario.store(early);
        scenario.store(late);
        let journal = scenario.journal();
        assert_eq!(journal.superseded.len(), 1);
        assert_eq!(
            journal.chain.last().map(|t| t.value.kind),
            Some(TransitionKind::StepSucceeded)
        );
    }

    #[test]
    fn a_failed_compensation_waits_for_a_retry_and_an_abort_compensates() {
        let mut scenario = Scenario::new();
        scenario.advance(10);
        scenario.outcome(TransitionKind::StepSucceeded, None);
        scenario.advance(10);
        scenario.outcome(TransitionKind::StepFailed, Some(("declined", false)));
        for _ in 0..2 {
            scenario.advance(10);
            scenario.outcome(TransitionKind::CompensationFailed, Some(("closed", true)));
        }
        assert_eq!(written(&scenario.advance(10)), TransitionKind::Failed);
        assert_eq!(scenario.advance(10), Decision::WaitForOperator);
        assert_eq!(scenario.journal().state(), SagaState::Failed);
        // A retry made against an older head is not accepted.
        let stale = RetryRequestedFact {
            saga: scenario.started.hash,
            definition: scenario.definition.hash,
            after: scenario.started.hash,
            id: "r-0".into(),
            reason: String::new(),
            requested_at_ms: 0,
        };
        scenario.retries.push(typed(&stale, 90));
        assert_eq!(scenario.advance(10), Decision::WaitForOperator);
        let retry = RetryRequestedFact {
            after: scenario.journal().head(),
            id: "r-1".into(),
            ..stale
        };
        scenario.retries.push(typed(&retry, 100));
        assert_eq!(
            written(&scenario.advance(10)),
            TransitionKind::RetryAccepted
        );
        assert_eq!(
            written(&scenario.advance(10)),
            TransitionKind::CompensationAttempted
        );
        scenario.outcome(TransitionKind::StepCompensated, None);
        assert_eq!(written(&scenario.advance(10)), TransitionKind::Compensated);
    }

    #[test]
    fn an_abort_waits_for_the_running_attempt_then_compensates() {
        let mut scenario = Scenario::new();
        scenario.advance(10);
        scenario.aborts.push(typed(
            &AbortRequestedFact {
                saga: scenario.started.hash,
                definition: scenario.definition.hash,
                id: "a-1".into(),
                reason: "customer".into(),
                requested_at_ms: 0,
            },
            50,
        ));
        assert!(matches!(scenario.advance(10), Decision::RunAction { .. }));
        scenario.outcome(TransitionKind::StepSucceeded, None);
        assert_eq!(
            written(&scenario.advance(10)),
            TransitionKind::AbortAccepted
        );
        assert_eq!(
            written(&scenario.advance(10)),
            TransitionKind::CompensationAttempted
        );
        scenario.outcome(TransitionKind::StepCompensated, None);
        assert_eq!(written(&scenario.advance(10)), TransitionKind::Aborted);
        assert_eq!(scenario.journal().state(), SagaState::Aborted);
    }
}
