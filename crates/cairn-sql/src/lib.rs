//! Transactional outbox and idempotent inbox for a service's own SQL database.
