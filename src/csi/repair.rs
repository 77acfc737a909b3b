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
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn repair(args: &RepairArgs) -> Result<(), String> {
    let engine = Engine::new(Config::new(&args.root), Arc::new(crate::sys::LinuxHost)).map_err(|e| e.to_string())?;
    if let Some(id) = &args.rebuild {
        let vol = engine.repair_rebuild(id, args.capacity).map_err(|e| e.to_string())?;
        let staged =
            vol.staging.as_ref().map_or("not staged".to_owned(), |s| format!("staged at {}", s.path.display()));
        println!(
            "volume {id} rebuilt: {} {} bytes, {staged}, {} publication(s)",
            vol.backend.as_str(),
            vol.capacity,
            vol.publications.len()
        );
        return Ok(());
    }
    if let Some(id) = &args.drop {
        let to = engine.repair_drop(id).map_err(|e| e.to_string())?;
        println!("volume {id} set aside at {}; nothing was deleted", to.display());
        return Ok(());
    }
    let quarantined = engine.quarantined().map_err(|e| e.to_string())?;
    if quarantined.is_empty() {
        println!("no quarantined volumes under {}", args.root.display());
    }
    for q in quarantined {
        println!("{}\t{}", q.id, q.reason);
    }
    Ok(())
}
