pub mod allocation;
pub mod validation;
