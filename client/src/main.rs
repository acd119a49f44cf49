//! `ripple`: see `ripple --help`.
use std::process::ExitCode;

use clap::Parser;

const THREAD_STACK: usize = 8 * 1024 * 1024;

fn main() -> ExitCode {
    let cli = ripple::cli::Cli::parse();
    // Holochain and kitsune2 warn about routine network churn; RUST_LOG brings their logs back.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,ripple=info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
    ripple::allocator::tune();
    // The embedded conductor runs zome calls, validation included, on these threads; Holochain's
    // call paths can outgrow the 2 MiB default stack (in debug builds above all).
    let runtime = match tokio::runtime::Builder::new_multi_thread().thread_stack_size(THREAD_STACK).enable_all().build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ripple::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ripple::cli::exit_code(&e)
        }
    }
}
