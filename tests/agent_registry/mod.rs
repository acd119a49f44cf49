mod mesh;
mod validation;
