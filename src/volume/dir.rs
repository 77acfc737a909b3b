//! Where a volume's files live under the data root.

use std::path::PathBuf;

/// The name of a volume's record in its directory.
pub const RECORD_FILE: &str = "volume.json";

/// Where a volume's files live: `<root>/volumes/<id>/`.
#[derive(Debug, Clone)]
pub struct VolumeDir(pub PathBuf);

impl VolumeDir {
    /// The data directory (dir), subvolume (btrfs) or tmpfs mount point (tmpfs).
    pub fn data(&self) -> PathBuf {
        self.0.join("data")
    }
    /// The backing file of a loop volume.
    pub fn image(&self) -> PathBuf {
        self.0.join("disk.img")
    }
    pub fn record(&self) -> PathBuf {
        self.0.join(RECORD_FILE)
    }
    /// Where the volume is staged and published on this node (node state, beside the record).
    pub fn node_state(&self) -> PathBuf {
        self.0.join("node.json")
    }
}
