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

mod error;
mod flex_pv;
mod output;
mod yaml;

pub use error::Error;
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
