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

/// Turns transparent huge pages off for this process, before `main` and its first
/// allocations (a constructor in `.init_array`). mimalloc asks for them on the arenas it
/// reserves (`madvise`), and the kernel then faults in whole 2 MiB pages: measured on a host
/// with THP on `madvise`, an idle worker's RSS and the import of the reference CSV both fell
/// without them (bench/RESULTS.md). Hosts with THP `always` get the same. Failing is harmless
/// (an old kernel): the worker runs as before.
#[used]
#[unsafe(link_section = ".init_array")]
static NO_TRANSPARENT_HUGE_PAGES: extern "C" fn() = {
    extern "C" fn no_transparent_huge_pages() {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
        let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
    no_transparent_huge_pages
};

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
