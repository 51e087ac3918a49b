//! Behaviour of the delivery state machine, with simulated time: leases,
//! acks, retries with backoff, dead letters, replay, per-key ordering,
//! delays, rate limits, pause, and restoring from persisted changes.

mod common;

use cairn_delivery::{
    AdmittedMessage, Change, MessageAttributes, MessageRecord, MessageStatus,
    SubscriptionDefinition, SubscriptionState, TokenKey, TokenStatus,
};
use cairn_fact::Hash;
use common::model_store::DiskImage;

fn definition(json: &str) -> SubscriptionDefinition {
    SubscriptionDefinition::from_json(json.as_bytes()).unwrap()
}

fn message(seq: u64, key: Option<u8>, not_before_ms: Option<u64>) -> AdmittedMessage {
    AdmittedMessage {
        seq,
        hash: Hash::of_bytes(&seq.to_be_bytes()),
        attributes: MessageAttributes {
            key: key.map(|key| Hash::of_bytes(&[key])),
            not_before_ms,
        },
    }
}

fn state(json: &str, n_messages: u64) -> SubscriptionState {
    let mut state = SubscriptionState::new(
        1,
        "s".into(),
        definition(json),
        0,
        0,
        TokenKey::from_seed(42),
    );
    let messages: Vec<_> = (1..=n_messages)
        .map(|seq| message(seq, None, None))
        .collect();
    state.admit(&messages, n_messages, 0);
    state
}

fn tokens(leases: &[cairn_delivery::Lease]) -> Vec<String> {
    leases.iter().map(|lease| lease.token.to_string()).collect()
}

#[test]
fn pull_leases_in_seq_order_and_ack_removes_for_good() {
    let mut state = state(r#"{"type":"T"}"#, 3);
    let (leases, _) = state.pull(2, None, 0);
    assert_eq!(leases.iter().map(|l| l.seq).collect::<Vec<_>>(), [1, 2]);
    assert!(leases.iter().all(|lease| lease.attempt == 1));
    let (outcomes, changes) = state.ack(&tokens(&leases));
    assert!(outcomes.iter().all(|o| o.status == TokenStatus::Acked));
    assert_eq!(changes.len(), 2);
    // Acking again: the messages are gone.
    let (outcomes, changes) = state.ack(&tokens(&leases));
    assert!(outcomes.iter().all(|o| o.status == TokenStatus::Unknown));
    assert!(changes.is_empty());
    let (leases, _) = state.pull(10, None, 0);
    assert_eq!(leases.iter().map(|l| l.seq).collect::<Vec<_>>(), [3]);
    let (outcomes, _) = state.ack(&["nonsense".into(), "1-2".into()]);
    assert!(outcomes.iter().all(|o| o.status == TokenStatus::Unknown));
    // After the lease of 3 expires (30 s), it is delivered again.
    assert!(state.pull(10, None, 29_999).0.is_empty());
    let (again, _) = state.pull(10, None, 30_000 + 400);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 2);
    assert_eq!(state.counters(30_400).redelivered, 1);
    // The old token now reports expired; the new one acks.
    assert_eq!(
        state.ack(&tokens(&leases)).0[0].status,
        TokenStatus::Expired
    );
    assert_eq!(state.ack(&tokens(&again)).0[0].status, TokenStatus::Acked);
}

#[test]
fn nacked_message_comes_back_after_growing_backoff_then_dies_and_replays() {
    let json = r#"{"type":"T","max_attempts":4,"backoff":{"initial_ms":100,"max_ms":10000}}"#;
    let mut state = state(json, 1);
    let mut now = 0;
    let mut delays = Vec::new();
    for attempt in 1..=4 {
        let (leases, _) = state.pull(1, None, now);
        assert_eq!(leases.len(), 1, "attempt {attempt}");
        assert_eq!(leases[0].attempt, attempt);
        let (outcomes, changes) = state.nack(&tokens(&leases), None, Some("boom"), now);
        assert_eq!(outcomes[0].status, TokenStatus::Nacked);
        if attempt == 4 {
            let Change::Message { record, .. } = &changes[0] else {
                panic!()
            };
            assert_eq!(record.status, MessageStatus::Dead);
            assert_eq!(record.attempts, 4);
            assert_eq!(record.last_error.as_deref(), Some("boom"));
            break;
        }
        // Find when it becomes deliverable again.
        let due = state.next_event_at_ms().unwrap();
        assert!(state.pull(1, None, due - 1).0.is_empty());
        delays.push(due - now);
        now = due;
    }
    assert!(
        delays.windows(2).all(|pair| pair[1] >= pair[0]),
        "{delays:?}"
    );
    assert!(
        delays[0] >= 50 && delays[0] <= 100 && delays[2] >= 200,
        "{delays:?}"
    );
    assert_eq!(state.counters(now).dead, 1);
    assert!(state.pull(1, None, now + 100_000).0.is_empty());
    let dead = MessageRecord {
        hash: Hash::of_bytes(&1u64.to_be_bytes()),
        status: MessageStatus::Dead,
        attempts: 4,
        available_at_ms: now,
        first_delivered_at_ms: Some(0),
        last_error: Some("boom".into()),
        dead_at_ms: Some(now),
        key: None,
        round: 0,
    };
    let (replayed, changes) = state.replay(vec![(1, dead)], now);
    assert_eq!(replayed, 1);
    let Change::Message { record, .. } = &changes[0] else {
        panic!("a replay writes the message's record");
    };
    assert_eq!((record.round, record.attempts), (1, 0), "a new round");
    let (leases, _) = state.pull(1, None, now);
    assert_eq!(leases[0].attempt, 1);
    assert_eq!(leases[0].token.round(), 1);
}

#[test]
fn lease_expiry_counts_as_a_failed_attempt() {
    let mut state = state(r#"{"type":"T","max_attempts":2,"lease_ms":1000}"#, 1);
    assert_eq!(state.pull(1, None, 0).0.len(), 1);
    let changes = state.advance(1_000);
    assert_eq!(changes.len(), 1);
    let due = state.next_event_at_ms().unwrap();
    assert_eq!(state.pull(1, None, due).0[0].attempt, 2);
    let changes = state.advance(due + 1_000);
    let Change::Message { record, .. } = &changes[0] else {
        panic!()
    };
    assert_eq!(record.status, MessageStatus::Dead);
    assert_eq!(record.last_error.as_deref(), Some("lease expired"));
}

#[test]
fn extend_keeps_a_lease_alive() {
    let mut state = state(r#"{"type":"T","lease_ms":1000}"#, 1);
    let (leases, _) = state.pull(1, None, 0);
    let outcomes = state.extend(&tokens(&leases), None, 900);
    assert_eq!(outcomes[0].status, TokenStatus::Extended);
    assert!(state.advance(1_500).is_empty());
    assert_eq!(state.tracked_message(1), Some((1, true)));
    assert_eq!(state.ack(&tokens(&leases)).0[0].status, TokenStatus::Acked);
}

#[test]
fn ordering_key_delivers_one_at_a_time_per_key_in_seq_order() {
    let mut state = SubscriptionState::new(
        1,
        "s".into(),
        definition(r#"{"type":"T","ordering_key":"k"}"#),
        0,
        0,
        TokenKey::from_seed(1),
    );
    let messages = [
        message(1, Some(1), None),
        message(2, Some(1), None),
        message(3, Some(2), None),
        message(4, None, None),
        message(5, Some(1), None),
    ];
    state.admit(&messages, 5, 0);
    let (leases, _) = state.pull(10, None, 0);
    assert_eq!(leases.iter().map(|l| l.seq).collect::<Vec<_>>(), [1, 3, 4]);
    // A nack of key 1's head keeps 2 and 5 behind it.
    state.nack(&tokens(&leases[..1]), Some(50), None, 0);
    assert!(state.pull(10, None, 10).0.is_empty());
    let (retry, _) = state.pull(10, None, 50);
    assert_eq!(retry.iter().map(|l| l.seq).collect::<Vec<_>>(), [1]);
    state.ack(&tokens(&retry));
    let (next, _) = state.pull(10, None, 50);
    assert_eq!(next.iter().map(|l| l.seq).collect::<Vec<_>>(), [2]);
    state.ack(&tokens(&next));
    let (last, _) = state.pull(10, None, 50);
    assert_eq!(last.iter().map(|l| l.seq).collect::<Vec<_>>(), [5]);
}

#[test]
fn max_in_flight_per_key_allows_that_many() {
    let json = r#"{"type":"T","ordering_key":"k","max_in_flight_per_key":2}"#;
    let mut state = SubscriptionState::new(
        1,
        "s".into(),
        definition(json),
        0,
        0,
        TokenKey::from_seed(1),
    );
    let messages: Vec<_> = (1..=4).map(|seq| message(seq, Some(9), None)).collect();
    state.admit(&messages, 4, 0);
    let (leases, _) = state.pull(10, None, 0);
    assert_eq!(leases.iter().map(|l| l.seq).collect::<Vec<_>>(), [1, 2]);
    state.ack(&tokens(&leases[1..]));
    let (more, _) = state.pull(10, None, 0);
    assert_eq!(more.iter().map(|l| l.seq).collect::<Vec<_>>(), [3]);
}

#[test]
fn not_before_delays_delivery() {
    let mut state = SubscriptionState::new(
        1,
        "s".into(),
        definition(r#"{"type":"T"}"#),
        0,
        0,
        TokenKey::from_seed(1),
    );
    state.admit(
        &[message(1, None, Some(5_000)), message(2, None, None)],
        2,
        0,
    );
    let (leases, _) = state.pull(10, None, 0);
    assert_eq!(leases.iter().map(|l| l.seq).collect::<Vec<_>>(), [2]);
    assert_eq!(state.next_event_at_ms(), Some(5_000));
    assert!(state.pull(10, None, 4_999).0.is_empty());
    assert_eq!(state.pull(10, None, 5_000).0[0].seq, 1);
}

#[test]
fn rate_limit_and_pause() {
    let mut state = state(r#"{"type":"T","rate_limit_per_s":10}"#, 100);
    assert_eq!(state.pull(100, None, 0).0.len(), 10);
    assert!(state.pull(100, None, 50).0.is_empty());
    assert_eq!(state.pull(100, None, 100).0.len(), 1);
    assert_eq!(state.pull(100, None, 1_100).0.len(), 10);
    state.set_paused(true);
    assert!(state.pull(100, None, 60_000).0.is_empty());
    assert!(!state.has_deliverable(60_000));
    state.set_paused(false);
    assert_eq!(state.pull(100, None, 60_000).0.len(), 10);
}

/// Found by `tests/sim_wake_ups.rs`: while paused, with ready messages and
/// tokens in the bucket, the next event used to be the bucket's last refill
/// (a time already past), so a runtime's long-polling pull woke at once,
/// over and over, until its wait ran out.
#[test]
fn a_paused_rate_limited_subscription_asks_for_no_wake_up_in_the_past() {
    let mut state = state(r#"{"type":"T","rate_limit_per_s":10}"#, 20);
    state.set_paused(true);
    assert!(state.pull(100, None, 1_000).0.is_empty());
    assert_eq!(state.next_event_at_ms(), None);
    // Unpaused, an exhausted bucket still schedules its next token.
    state.set_paused(false);
    assert_eq!(state.pull(100, None, 1_000).0.len(), 10);
    assert!(state.pull(100, None, 1_000).0.is_empty());
    assert_eq!(state.next_event_at_ms(), Some(1_100));
}

#[test]
fn restored_state_keeps_acks_and_failed_attempts_and_redelivers_leased() {
    let mut disk = DiskImage::default();
    let json = r#"{"type":"T","backoff":{"initial_ms":10,"max_ms":10}}"#;
    let mut state = SubscriptionState::new(
        1,
        "s".into(),
        definition(json),
        0,
        0,
        TokenKey::from_seed(1),
    );
    disk.apply_all(vec![Change::Subscription(state.record())]);
    let messages: Vec<_> = (1..=5).map(|seq| message(seq, None, None)).collect();
    disk.apply_all(state.admit(&messages, 5, 0));
    let (leases, changes) = state.pull(3, None, 0);
    assert!(changes.is_empty(), "leases are not persisted");
    disk.apply_all(changes);
    let (_, changes) = state.ack(&tokens(&leases[..1]));
    disk.apply_all(changes);
    let (_, changes) = state.nack(&tokens(&leases[1..2]), Some(0), Some("boom"), 0);
    disk.apply_all(changes);
    let mut restored = disk.restore(10, TokenKey::from_seed(7));
    // Message 1 is acked; 2 failed once; 3 was leased and comes back; 4, 5 are new.
    let (again, _) = restored.pull(10, None, 10);
    let seen: Vec<(u64, u32)> = again.iter().map(|l| (l.seq, l.attempt)).collect();
    assert_eq!(seen, [(2, 2), (3, 1), (4, 1), (5, 1)]);
    // A token from before the restart no longer acks: the new
    // incarnation's key did not sign it.
    assert_eq!(
        restored.ack(&tokens(&leases[2..3])).0[0].status,
        TokenStatus::Unknown
    );
    assert_eq!(
        restored.ack(&tokens(&leases[..1])).0[0].status,
        TokenStatus::Unknown
    );
    assert_eq!(restored.cursor_seq(), 5);
}

#[test]
fn tokens_act_only_as_issued_and_only_on_their_own_lease() {
    let json = r#"{"type":"T","backoff":{"initial_ms":10,"max_ms":10}}"#;
    let mut state = state(json, 2);
    let (first, _) = state.pull(1, None, 0);
    let text = first[0].token.to_string();
    let mut other = SubscriptionState::new(
        2,
        "other".into(),
        definition(json),
        0,
        0,
        TokenKey::from_seed(99),
    );
    other.admit(&[message(1, None, None)], 1, 0);
    let (foreign, _) = other.pull(1, None, 0);
    let forged = cairn_delivery::LeaseToken {
        mac: first[0].token.mac ^ 1,
        ..first[0].token
    };
    let spellings = [
        text.to_uppercase(),
        format!("0{text}"),
        foreign[0].token.to_string(),
        forged.to_string(),
        "1-1-0000000000000000".to_string(),
    ];
    for spelling in &spellings {
        let (outcomes, changes) = state.ack(std::slice::from_ref(spelling));
        assert_eq!(outcomes[0].status, TokenStatus::Unknown, "{spelling}");
        assert!(changes.is_empty());
        let (outcomes, _) = state.nack(std::slice::from_ref(spelling), None, None, 0);
        assert_eq!(outcomes[0].status, TokenStatus::Unknown, "{spelling}");
        let outcomes = state.extend(std::slice::from_ref(spelling), None, 0);
        assert_eq!(outcomes[0].status, TokenStatus::Unknown, "{spelling}");
    }
    // Nacked, then leased again: the nacked token's lease is over.
    let (outcomes, _) = state.nack(&[text.clone(), text.clone()], Some(0), None, 0);
    let statuses: Vec<_> = outcomes.iter().map(|o| o.status).collect();
    assert_eq!(statuses, [TokenStatus::Nacked, TokenStatus::Nacked]);
    let (again, _) = state.pull(1, None, 0);
    assert_eq!((again[0].seq, again[0].attempt), (1, 2));
    for verb_status in [
        state.ack(std::slice::from_ref(&text)).0[0].status,
        state.nack(std::slice::from_ref(&text), None, None, 0).0[0].status,
        state.extend(std::slice::from_ref(&text), None, 0)[0].status,
    ] {
        assert_eq!(verb_status, TokenStatus::Expired);
    }
    // A repeated ack acts once; the repeat finds the message gone.
    let current = again[0].token.to_string();
    let (outcomes, changes) = state.ack(&[current.clone(), current]);
    let statuses: Vec<_> = outcomes.iter().map(|o| o.status).collect();
    assert_eq!(statuses, [TokenStatus::Acked, TokenStatus::Unknown]);
    assert_eq!(changes.len(), 1);
}

#[test]
fn an_updated_definition_keeps_leases_attempts_and_dead_letters_and_applies_from_then_on() {
    let mut state = state(
        r#"{"type":"T","max_attempts":5,"lease_ms":1000,"backoff":{"initial_ms":100,"max_ms":100}}"#,
        4,
    );
    // Message 1 fails twice; message 2 is leased; message 3 dies after a
    // lowered max_attempts, message 4 waits.
    let (first, _) = state.pull(1, None, 0);
    state.nack(&tokens(&first), None, Some("boom"), 0);
    let (second, _) = state.pull(1, None, 200);
    assert_eq!((second[0].seq, second[0].attempt), (1, 2));
    state.nack(&tokens(&second), Some(10_000), None, 200);
    let (leased, _) = state.pull(1, None, 300);
    assert_eq!(leased[0].seq, 2);
    let generation = state.generation();

    let changes = state.update_definition(
        definition(
            r#"{"type":"T","max_attempts":2,"lease_ms":5000,"backoff":{"initial_ms":300,"max_ms":300},"rate_limit_per_s":1}"#,
        ),
        400,
    );
    assert_eq!(state.generation(), generation + 1);
    assert!(
        matches!(&changes[..], [Change::Subscription(record)] if record.generation == generation + 1)
    );
    // New pulls take the new lease and the new rate limit (a full bucket
    // of one message).
    let (third, _) = state.pull(10, None, 400);
    assert_eq!(third.iter().map(|lease| lease.seq).collect::<Vec<_>>(), [3]);
    assert_eq!(
        state.extend(&tokens(&third), None, 400)[0].status,
        TokenStatus::Extended
    );
    // The lease granted before keeps its deadline (1300); the new one
    // lasts the new lease_ms.
    state.advance(1_299);
    assert_eq!(state.tracked_message(2), Some((1, true)));
    state.advance(1_300);
    assert_eq!(state.tracked_message(2), Some((1, false)));
    assert_eq!(state.tracked_message(3), Some((1, true)));
    // A first failure under max_attempts 2 is retried.
    state.nack(&tokens(&third), None, None, 1_300);
    assert_eq!(state.tracked_message(3), Some((1, false)));
    // Message 1 already used two attempts: its next delivery is attempt 3,
    // and that failure is its last under the lowered max_attempts.
    let (again, _) = state.pull(10, None, 10_300);
    let one = again
        .iter()
        .find(|lease| lease.seq == 1)
        .expect("message 1 is due");
    assert_eq!(one.attempt, 3);
    let (outcomes, changes) = state.nack(&tokens(std::slice::from_ref(one)), None, None, 10_300);
    assert_eq!(outcomes[0].status, TokenStatus::Nacked);
    assert!(changes.iter().any(|change| matches!(
        change,
        Change::Message { seq: 1, record, .. } if record.status == MessageStatus::Dead
    )));
    assert_eq!(state.counters(10_300).dead, 1);
}
