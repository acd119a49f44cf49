mod allocation;
pub mod validation;
