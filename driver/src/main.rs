//! `eddy-driver`: parse the command line and run.

use std::process::ExitCode;

use clap::Parser;
use eddy_driver::{Cli, Outcome};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = eddy_common::env::Environment::of_process();
    eddy_node::logging::init(env.log_filter(), "warn");
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("eddy-driver: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(eddy_driver::run(cli, env));
    // Without waiting for blocking tasks: the read of standard input (--stop-on-stdin-eof)
    // never ends while the starting process holds the pipe, and a plain drop would wait for it.
    runtime.shutdown_background();
    match result {
        Ok(outcome @ Outcome::Interrupted(_)) => {
            eprintln!("eddy-driver: interrupted before the cloud formed");
            ExitCode::from(outcome.exit_code())
        }
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) => {
            eprintln!("eddy-driver: {e}");
            ExitCode::FAILURE
        }
    }
}
