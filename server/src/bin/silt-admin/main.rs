//! `silt-admin`: operator commands for a siltdb cluster — create a table, list tables, nodes
//! and partitions (who leads, how far each replica applied), node stats, checkpoint,
//! membership changes (move a replica, drain a node, add a node and rebalance onto it),
//! cluster duplication (add-dup, remove-dup, query-dup), bulk load (start, status), cold
//! backup (backup, restore), app envs (set-env, get-env, del-env), hot keys (hotkeys) and
//! partition split (split).
//! Every command is bounded by `--timeout-ms` per server; a server that does not answer is
//! reported as down, not waited for.

/// The one allocator of this process (seed S4): mimalloc, compiled in statically and pinned
/// in the workspace, like every other binary of the project.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;
mod commands;

use cli::Args;
use commands::run;
use std::process::ExitCode;

pub(crate) type Res<T> = Result<T, String>;

fn main() -> ExitCode {
    // `--version` names the allocator actually linked (seed S4).
    let args: Args = siltdb_server::allocator::parse_args();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("silt-admin: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("silt-admin: {e}");
            ExitCode::FAILURE
        }
    }
}
