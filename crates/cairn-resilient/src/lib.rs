//! Resilient service-to-service HTTP calls.
