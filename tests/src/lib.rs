//! Shared helpers for the ripple integration tests.
