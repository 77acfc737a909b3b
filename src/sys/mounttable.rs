//! This process's mount table, read from `/proc/self/mountinfo` each time it is asked for.
//!
//! It is never cached: `poll` on the file reports mounts and unmounts, but not a rename of a
//! directory that holds a mount point or the root of a bind, and the paths the table shows are
//! worked out when it is read. strata renames volume directories that hold tmpfs mounts and bind
//! roots (creates and deletes work aside), in this process and in strata-flex's, so a table kept
//! across calls could show a tmpfs where it no longer is, and a destructive decision made on it
//! (a delete asking whether its volume is in use) must see the kernel as it is.

use super::mountinfo::{self, MountEntry};
use super::{Action, Error, Result};
use std::sync::Arc;

/// The mount table, shared: callers hold it as long as they need, and pass it around freely.
pub type MountTable = Arc<Vec<MountEntry>>;

/// The current mount table of this process's namespace.
pub fn read() -> Result<MountTable> {
    const PATH: &str = "/proc/self/mountinfo";
    let text = read_proc(PATH).map_err(Error::on(Action::ReadMountTable, PATH))?;
    Ok(Arc::new(mountinfo::parse(&text)))
}

/// A procfs file whole. procfs reports a size of 0, so `read_to_string` starts with 32-byte reads
/// and doubles: about ten reads for a small mount table. One 64 KiB buffer takes it in one or two.
fn read_proc(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::with_capacity(64 << 10);
    std::fs::File::open(path)?.read_to_string(&mut text)?;
    Ok(text)
}
