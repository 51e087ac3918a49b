//! Claims and leases through the SDK against a real server: the first
//! claim wins and every client sees the same winner; leader election with
//! a lease, where the old leader's fenced writes are refused once a new
//! leader holds the lease, and the SDK reports the server's codes.

mod common;

use std::time::{Duration, Instant};

use cairn_client::{CanonicalFact, ClientError};
use common::TestServer;
use serde_json::json;

fn fact(type_name: &str, fields: serde_json::Value) -> CanonicalFact {
    let value = json!({"type": type_name, "fields": fields, "predecessors": {}});
    CanonicalFact::from_json(value.to_string().as_bytes(), 65_536).unwrap()
}

fn code_of(error: &ClientError) -> Option<&str> {
    match error {
        ClientError::Api { code, .. } => Some(code.as_str()),
        _ => None,
    }
}

#[tokio::test]
async fn the_first_claim_wins_and_every_client_sees_it() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (ann, bob) = (server.client()?, server.client()?);
    let ann_booking = fact("Seat.Booking", json!({"by": "ann"}));
    let bob_booking = fact("Seat.Booking", json!({"by": "bob"}));
    ann.put_facts(vec![ann_booking.clone(), bob_booking.clone()])
        .await?;
    assert_eq!(bob.claim_holder("seat/12A").await?, None);
    let won = ann.claim("seat/12A", &ann_booking.hash).await?;
    assert_eq!(
        (won.won, won.fact, won.generation),
        (Some(true), ann_booking.hash, 1)
    );
    let lost = bob.claim("seat/12A", &bob_booking.hash).await?;
    assert_eq!((lost.won, lost.fact), (Some(false), ann_booking.hash));
    let holder = bob.claim_holder("seat/12A").await?.expect("a holder");
    assert_eq!(
        (holder.fact, holder.claimed),
        (ann_booking.hash, won.claimed)
    );

    let refused = bob.release_claim("seat/12A", &bob_booking.hash).await;
    assert_eq!(
        refused.as_ref().err().and_then(code_of),
        Some("not_claim_holder")
    );
    let released = ann.release_claim("seat/12A", &ann_booking.hash).await?;
    assert_eq!(released.fact, ann_booking.hash);
    assert_eq!(bob.claim_holder("seat/12A").await?, None);
    server.stop().await
}

#[tokio::test]
async fn a_paused_old_leader_cannot_write_once_a_new_leader_holds_the_lease() -> anyhow::Result<()>
{
    let server = TestServer::start().await?;
    let (first, second) = (server.client()?, server.client()?);
    let old = first
        .acquire_lease("billing-leader", "worker-1", Duration::from_millis(200))
        .await?;
    assert_eq!(old.fence, 1);
    let held = second
        .acquire_lease("billing-leader", "worker-2", Duration::from_secs(60))
        .await;
    assert_eq!(held.as_ref().err().and_then(code_of), Some("lease_held"));
    first
        .put_facts_fenced(vec![fact("Billing.Run", json!({"n": 1}))], &old)
        .await?;

    // worker-1 "pauses"; its lease runs out and worker-2 takes over.
    let deadline = Instant::now() + Duration::from_secs(10);
    let new = loop {
        match second
            .acquire_lease("billing-leader", "worker-2", Duration::from_secs(60))
            .await
        {
            Ok(grant) => break grant,
            Err(error) if code_of(&error) == Some("lease_held") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => return Err(error.into()),
        }
    };
    assert_eq!(new.fence, 2);
    let stale = first
        .put_facts_fenced(vec![fact("Billing.Run", json!({"n": 2}))], &old)
        .await;
    assert_eq!(stale.as_ref().err().and_then(code_of), Some("stale_fence"));
    assert_eq!(
        first
            .renew_lease(&old)
            .await
            .as_ref()
            .err()
            .and_then(code_of),
        Some("stale_fence")
    );
    second
        .put_facts_fenced(vec![fact("Billing.Run", json!({"n": 3}))], &new)
        .await?;
    let renewed = second.renew_lease(&new).await?;
    assert!(renewed.expires_at_ms >= new.expires_at_ms);
    let released = second.release_lease(&renewed).await?;
    assert!(released.released);
    let seen = first
        .lease("billing-leader")
        .await?
        .expect("granted before");
    assert_eq!((seen.fence, seen.released), (2, true));
    assert_eq!(first.lease("never-granted").await?, None);
    server.stop().await
}
