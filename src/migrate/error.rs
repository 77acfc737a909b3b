//! Why a FlexVolume PV cannot be adopted: the input, or what in one PV cannot be carried over.

use std::path::PathBuf;

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
