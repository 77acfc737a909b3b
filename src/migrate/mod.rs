//! `strata-csi migrate-pv`: turns a FlexVolume PV of `strata/flex` into the CSI PV of the same
//! engine volume, so a volume moves from FlexVolume to CSI without copying a byte.
//!
//! The input is one PV, several YAML documents, or a `List` (YAML or JSON, as `kubectl get pv -o
//! yaml` prints it). Each strata/flex PV is converted; every other document (a claim, a pod, a
//! PV of another driver) is left out with a note. The options are read exactly as `strata-flex` reads them at mount time
//! ([`crate::flex::options::parse`] over kubelet's key merge), so the CSI PV names the volume that
//! `strata-flex` mounted: engine id `volumeID` (or the PV name) on the owning node, as the CSI
//! volume id `<engine id>@<node tag>` ([`crate::csi::volume_id`]). Everything that cannot be
//! carried over exactly is refused with an error, or said in a note on stderr.

mod flex_pv;
mod output;
mod yaml;

pub use flex_pv::{FLEX_DRIVER, affinity_nodes};
pub use output::migrate;

use clap::Args as ClapArgs;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

/// The CSI driver name strata registers by default.
pub const CSI_DRIVER: &str = "strata.csi.dev";

/// The arguments of `strata-csi migrate-pv`.
#[derive(Debug, Clone, ClapArgs)]
pub struct Args {
    /// The FlexVolume PV manifest (YAML or JSON); `-` or nothing reads stdin.
    #[arg(default_value = "-")]
    pub file: PathBuf,
    /// The node that holds the volume (its Kubernetes node name, which strata-csi uses as node
    /// id). Needed unless the PV's nodeAffinity names exactly one node.
    #[arg(long)]
    pub node: Option<String>,
    /// The CSI driver name the new PV uses.
    #[arg(long, default_value = CSI_DRIVER)]
    pub driver: String,
}

/// What went wrong; each names the PV and what in it cannot be carried over.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the input is not YAML or JSON: {reason}")]
    Parse { reason: String },
    #[error("the input holds no PersistentVolume")]
    Empty,
    #[error("the input holds no PersistentVolume of strata/flex: {held}")]
    NoFlexPv { held: String },
    #[error("document {index} is a {kind}, not a PersistentVolume")]
    NotAPv { index: usize, kind: String },
    #[error("PV {name:?} does not use strata/flex (it is {found}); migrate-pv only adopts strata/flex volumes")]
    NotStrataFlex { name: String, found: String },
    #[error("PV {name:?}: {field} {reason}")]
    Field { name: String, field: String, reason: String },
    #[error("PV {name:?}: its options are not ones strata-flex accepts: {source}")]
    Options { name: String, source: crate::flex::Error },
    #[error(
        "PV {name:?}: cannot tell which node holds the volume; pass --node <node name> (the PV has no \
         nodeAffinity that names exactly one node)"
    )]
    NoNode { name: String },
    #[error(
        "PV {name:?}: --node {given:?} contradicts the PV's nodeAffinity, which names {affinity:?}; the \
         volume lives on the node the PV is pinned to"
    )]
    NodeConflict { name: String, given: String, affinity: String },
    #[error(
        "PV {name:?}: the CSI volume id {id:?} would be {len} bytes, more than CSI's 128; this volume \
         id cannot be adopted"
    )]
    IdTooLong { name: String, id: String, len: usize },
}

/// Runs `strata-csi migrate-pv`: CSI PVs on stdout, notes on stderr, exit 1 on any error.
pub fn run(args: Args) -> ExitCode {
    match run_inner(&args) {
        Ok((yaml, notes)) => {
            for note in notes {
                eprintln!("note: {note}");
            }
            crate::stdout::write(yaml.as_bytes())
        }
        Err(e) => {
            eprintln!("strata-csi migrate-pv: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_inner(args: &Args) -> Result<(String, Vec<String>), Error> {
    let read_err = |source| Error::Read { path: args.file.clone(), source };
    let text = if args.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(read_err)?;
        s
    } else {
        std::fs::read_to_string(&args.file).map_err(read_err)?
    };
    let out = migrate(&text, args.node.as_deref(), &args.driver)?;
    Ok((out.yaml, out.notes))
}

#[cfg(test)]
mod tests;
