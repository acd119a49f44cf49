mod mesh;
pub mod validation;
