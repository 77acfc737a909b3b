//! `strata-csi repair`: the operator's view of quarantined volumes, and the two ways out of
//! quarantine (rebuild from storage and kernel, or set aside).

use super::cli::RepairArgs;
use crate::engine::{Config, Engine};
use std::process::ExitCode;
use std::sync::Arc;

/// Runs the subcommand; errors print on one line and exit non-zero.
pub fn run(args: &RepairArgs) -> ExitCode {
    match repair(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            crate::stdout::error(&format!("error: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn repair(args: &RepairArgs) -> crate::engine::Result<()> {
    let engine = Engine::new(Config::new(&args.root), Arc::new(crate::sys::LinuxHost))?;
    // Repair works beside a serving server (each step holds the volume's lock); say which one.
    if let Ok(Some(h)) = crate::engine::claim::holder(&args.root) {
        crate::stdout::error(&format!(
            "note: strata-csi serve (pid {}, {}) holds {}; repair works beside it, one volume lock at a time",
            h.pid,
            h.endpoint,
            args.root.display()
        ));
    }
    if let Some(id) = &args.rebuild {
        let vol = engine.repair_rebuild(id, args.capacity)?;
        let staged =
            vol.staging.as_ref().map_or("not staged".to_owned(), |s| format!("staged at {}", s.path.display()));
        crate::stdout::print(&format!(
            "volume {id} rebuilt: {} {}, {staged}, {} publication(s)\n",
            vol.backend.as_str(),
            crate::quantity::with_bytes(vol.capacity),
            vol.publications.len()
        ));
        return Ok(());
    }
    if let Some(id) = &args.drop {
        let to = engine.repair_drop(id)?;
        crate::stdout::print(&format!("volume {id} set aside at {}; nothing was deleted\n", to.display()));
        return Ok(());
    }
    let quarantined = engine.quarantined()?;
    if quarantined.is_empty() {
        crate::stdout::print(&format!("no quarantined volumes under {}\n", args.root.display()));
    }
    for q in quarantined {
        crate::stdout::print(&format!("{}\t{}\n", q.id, q.reason));
    }
    Ok(())
}
