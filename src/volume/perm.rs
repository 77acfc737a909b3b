//! The mode of the files strata keeps its own state in, for the engine and the backends alike.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;

/// Mode of every file strata keeps its own state in (records, node state, locks, images).
pub const FILE_MODE: u32 = 0o600;

/// Options that create a file with [`FILE_MODE`] (umask can only narrow it).
pub fn private_file() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE);
    o
}
