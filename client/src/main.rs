//! `ripple`: see `ripple --help`.
fn main() -> std::process::ExitCode {
    ripple::cli::main()
}
