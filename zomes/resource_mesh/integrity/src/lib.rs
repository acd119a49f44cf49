//! Integrity model of the `resource_mesh` DNA (issue 5, in progress): what a provider offers and
//! the ledger of its grants, from which every validator can prove that a provider never grants
//! more than it offered — no coordinator, only the provider's own chain.
//!
//! Not yet part of the hApp: the entry types, validation and coordinator zomes arrive with the
//! rest of the issue. This crate holds the pure capacity arithmetic and field rules they will use.
pub mod capacity;
pub mod entries;

pub use capacity::{Capacity, Holding, LedgerError};
pub use entries::{AllocationRequest, LocalityPreference, ResourceOffer, ResourceType};
