//! The narrow view of a volume a backend makes and serves it from: its kind, size, filesystem
//! and the few choices that change what is on disk. The engine's record holds more (names,
//! sources, copies, node state); a backend sees only this.

use super::Kind;
use crate::sys::FsType;
use std::collections::BTreeMap;

/// The StorageClass parameter (FlexVolume option) that asks for a preallocated loop image.
pub const PARAM_ALLOCATION: &str = "allocation";

/// Whether a new loop image is preallocated (`allocation: thick`) or sparse (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    Thin,
    Thick,
}

impl Allocation {
    /// What a volume's recorded parameters ask for: thick only when they say so exactly (they
    /// were checked when the volume was made).
    pub fn of(params: &BTreeMap<String, String>) -> Allocation {
        match params.get(PARAM_ALLOCATION).map(String::as_str) {
            Some("thick") => Allocation::Thick,
            _ => Allocation::Thin,
        }
    }
}

/// What a backend needs to know of a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub kind: Kind,
    /// The size in bytes the volume was promised.
    pub capacity: u64,
    /// The filesystem strata makes on it (formatting kinds), if the record names one.
    pub fs_type: Option<FsType>,
    pub allocation: Allocation,
    /// Whether the volume is encrypted (its filesystem must support it).
    pub encrypted: bool,
    /// The device grew and the filesystem must follow at the next stage.
    pub grow_fs: bool,
}

impl Spec {
    /// The filesystem of a volume that must have one (ext4 unless the record says otherwise).
    pub fn fs(&self) -> FsType {
        self.fs_type.unwrap_or(FsType::Ext4)
    }
}
