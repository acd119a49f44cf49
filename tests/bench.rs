//! Benchmarks (`cargo xtask bench …`), ignored in normal test runs.
