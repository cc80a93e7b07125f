//! `eddy-mapper`: parse the command line, resolve the configuration, run the worker.

use std::process::ExitCode;

use clap::Parser;
use eddy_mapper::{MapperArgs, MapperCommand, MapperConfig};

// Parsing allocates many large, short-lived buffers on every core; mimalloc handles that
// with less contention and fewer page faults than the system allocator (bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = MapperArgs::parse();
    let env = eddy_common::env::Environment::of_process();
    eddy_node::logging::init(env.log_filter(), "info");
    if matches!(args.command, Some(MapperCommand::Am)) {
        return application_master(&env);
    }
    let config = match MapperConfig::resolve(args, &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("eddy-mapper: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("eddy-mapper: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(eddy_mapper::run(config)) {
        Ok(reason) if reason.is_clean() => {
            tracing::info!(%reason, "worker stopped");
            ExitCode::SUCCESS
        }
        Ok(reason) => {
            tracing::error!(%reason, "worker stopped");
            eprintln!("eddy-mapper: {reason}");
            ExitCode::FAILURE
        }
        Err(e) => {
            tracing::error!(error = %e, "worker failed");
            eprintln!("eddy-mapper: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `eddy-mapper am`: the YARN ApplicationMaster of a disowned cloud (started by
/// `eddy-driver yarn --disown` in its own container); the same code as an attached driver.
fn application_master(env: &eddy_common::env::Environment) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("eddy-mapper am: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(eddy_launch::yarn_application::run_master(env)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eddy-mapper am: {e}");
            ExitCode::FAILURE
        }
    }
}
