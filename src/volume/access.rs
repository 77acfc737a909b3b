//! How a volume is consumed (a mounted filesystem or a raw block device) and where it is staged.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How a volume is consumed: as a mounted filesystem or as a raw block device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum Access {
    Mount {
        /// Extra mount options for the stage mount (loop) or the bind (others).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        flags: Vec<String>,
    },
    Block,
}

/// Where and how a volume is staged on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staging {
    pub path: PathBuf,
    pub access: Access,
    /// The loop device, for `loop` volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<PathBuf>,
}

impl Staging {
    /// What a publication binds: the loop device node (block access), else the staging mount.
    pub fn bind_source(&self) -> &Path {
        match (&self.access, &self.device) {
            (Access::Block, Some(device)) => device,
            _ => &self.path,
        }
    }
}
