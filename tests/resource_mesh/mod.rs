mod allocation;
mod validation;
