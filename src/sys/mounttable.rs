//! This process's mount table, read again only when it changed: `/proc/self/mountinfo` stays
//! open, and `poll` on it reports a priority event after any mount or unmount in the namespace
//! (since Linux 2.6.15). A node with thousands of pods has thousands of mounts, 10 ms to read
//! and parse; a delete that asks the kernel whether its volume is in use then costs that only
//! when something was mounted or unmounted since the last look.

use super::mountinfo::{self, MountEntry};
use super::{Error, Result};
use std::io::{Read, Seek};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, PoisonError};

/// The mount table, shared: callers hold it as long as they need.
pub type MountTable = Arc<Vec<MountEntry>>;

#[derive(Debug)]
struct Cached {
    file: std::fs::File,
    table: MountTable,
}

static CACHE: Mutex<Option<Cached>> = Mutex::new(None);

/// The current mount table of this process's namespace.
pub fn read() -> Result<MountTable> {
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(c) = cache.as_mut() {
        if !changed(&c.file) {
            return Ok(c.table.clone());
        }
        c.table = Arc::new(parse(&mut c.file)?);
        return Ok(c.table.clone());
    }
    // Opened before the first read: a change during that read shows at the next poll.
    let mut file = std::fs::File::open("/proc/self/mountinfo").map_err(Error::MountTable)?;
    let table = Arc::new(parse(&mut file)?);
    *cache = Some(Cached { file, table: table.clone() });
    Ok(table)
}

/// Whether the namespace's mounts changed since the last poll (an error counts as a change).
fn changed(file: &std::fs::File) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLPRI)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(0) => false,
        Ok(_) => fds[0].revents().is_none_or(|r| r.intersects(PollFlags::POLLPRI | PollFlags::POLLERR)),
        Err(_) => true,
    }
}

fn parse(file: &mut std::fs::File) -> Result<Vec<MountEntry>> {
    let mut text = String::with_capacity(64 * 1024);
    file.rewind().and_then(|()| file.read_to_string(&mut text)).map_err(Error::MountTable)?;
    Ok(mountinfo::parse(&text))
}
