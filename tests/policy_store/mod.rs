//! policy_store: every rule broken on purpose, the honest publish/decide/audit path, and the
//! write-ahead gate on real conductors.
pub mod gate;
pub mod validation;
