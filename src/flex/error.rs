//! Errors of the FlexVolume front-end; each names what kubelet sent that cannot be served.

use crate::engine::{self, quote};
use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line does not match what kubelet sends for this command.
    #[error("wrong arguments for {command}: expected `{usage}`, got {got} argument(s)")]
    Usage { command: &'static str, usage: &'static str, got: usize },
    /// An argument that should be text is not valid UTF-8.
    #[error("argument {index} is not valid UTF-8")]
    NotUtf8 { index: usize },
    /// The options argument is not a JSON object of strings.
    #[error("the options argument is not a JSON object of strings: {reason}")]
    Json { reason: String },
    /// One option has a value strata cannot use.
    #[error("option {} {reason}", quote(.key))]
    Option { key: String, reason: String },
    /// A byte count argument is not a decimal number.
    #[error("{what} {} is not a decimal byte count", quote(.value))]
    Bytes { what: &'static str, value: String },
    /// The driver's configuration file or environment is wrong.
    #[error("configuration {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    /// A directory the driver needs cannot be used (`mount`'s node checks).
    #[error("{what} {} is not usable: {reason} (`strata-flex check` on this node shows every check)", path.display())]
    Unusable { what: &'static str, path: PathBuf, reason: Box<super::problem::Problem> },
    /// This process may not mount (`mount`'s node checks).
    #[error("{reason} (`strata-flex check` on this node shows every check)")]
    NoMountRight { reason: Box<super::problem::Problem> },
    /// Options strata does not know: a misspelt one would otherwise be lost silently.
    #[error(
        "unknown option(s) {}; strata-flex knows backend, size, mountOptions, allocation, devices, encryption and volumeID",
        .keys.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ")
    )]
    UnknownOptions { keys: Vec<String> },
    /// `volumeID` names a volume that does not exist.
    #[error(
        "volume {id} named by option \"volumeID\" does not exist; create it first, or drop \
         \"volumeID\" to use a volume named after the PV"
    )]
    NoSuchVolume { id: String },
    /// `expandfs` names a volume this node does not hold.
    #[error("volume {id} does not exist on this node; kubelet calls expandfs on the node that holds it")]
    NotOnThisNode { id: String },
    /// The CSI driver has staged the volume (for CSI pods): FlexVolume cannot stage it too.
    #[error(
        "volume {id} is staged by strata-csi at {}: pods of a CSI PV use it; a FlexVolume pod can \
         mount it once they are gone (`strata-csi inspect {id}` shows its mounts)",
        path.display()
    )]
    StagedByCsi { id: String, path: PathBuf },
    /// The options describe another volume than the one that exists under that id.
    #[error("volume {id} exists with {what} {had}, but the options ask for {asked}")]
    Mismatch { id: String, what: &'static str, had: String, asked: String },
    #[error(transparent)]
    Engine(#[from] engine::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_keys_and_values_are_quoted_bounded() {
        let key = "k".repeat(50_000);
        let msg = Error::Option { key, reason: "is unknown".into() }.to_string();
        assert!(msg.len() < 400 && msg.ends_with("\"… is unknown"), "{msg}");
        let msg = Error::Bytes { what: "size", value: "1\u{1b}[2J".into() }.to_string();
        assert_eq!(msg, r#"size "1\u{1b}[2J" is not a decimal byte count"#);
    }
}
