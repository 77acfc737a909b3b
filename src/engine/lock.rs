//! Per-volume locks that hold across processes: an open-file-description byte-range lock
//! (`F_OFD_SETLK`) on one shared file per lock directory (`<dir>/ids.lock`, 0600), at an offset
//! taken from the id's SHA-256. The file is made once and kept: taking a lock creates no inode
//! and releasing one removes none (on filesystems that scan recently freed inodes at every
//! create, as ext4 without a journal does, a lock file per volume was a large part of a create).
//! Two ids share an offset with probability 2^-63; they would then only wait for each other.

use super::{Error, Result};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How to behave when another holder has the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Fail at once with [`Error::Busy`] (CSI answers ABORTED and the sidecar retries).
    No,
    /// Wait up to this long, then fail with [`Error::Busy`] (FlexVolume: kubelet does not retry quickly).
    Upto(Duration),
}

/// How often lockers found a volume's lock held, and how long they waited: two atomics, touched
/// only when the lock was contended, so an uncontended call pays nothing.
#[derive(Debug, Default)]
pub struct LockStats {
    waits: AtomicU64,
    wait_nanos: AtomicU64,
}

impl LockStats {
    /// Acquisitions (successful or not) that found the lock held by another caller.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// The time those acquisitions spent waiting, in seconds.
    pub fn wait_seconds(&self) -> f64 {
        Duration::from_nanos(self.wait_nanos.load(Ordering::Relaxed)).as_secs_f64()
    }

    fn record(&self, since: Instant) {
        let nanos = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.waits.fetch_add(1, Ordering::Relaxed);
        self.wait_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// The one file of a lock directory that every lock of it is a byte of.
pub const LOCK_FILE: &str = "ids.lock";

/// A held volume lock; released on drop.
#[derive(Debug)]
pub struct VolumeLock {
    file: File,
    offset: i64,
}

impl Drop for VolumeLock {
    /// Unlocks before the file is closed: closing alone releases the lock only once every copy
    /// of the descriptor is closed, and a child forked by another thread holds copies until it
    /// execs (`O_CLOEXEC`), which would keep the volume busy for that while.
    fn drop(&mut self) {
        let _ = set_lock(&self.file, self.offset, libc::F_UNLCK);
    }
}

impl VolumeLock {
    /// Takes the lock of volume `id` under `dir`.
    pub fn acquire(dir: &Path, id: &str, wait: Wait) -> Result<VolumeLock> {
        VolumeLock::acquire_counted(dir, id, wait, None)
    }

    /// [`VolumeLock::acquire`], counting a contended acquisition and its wait in `stats`.
    pub fn acquire_counted(dir: &Path, id: &str, wait: Wait, stats: Option<&LockStats>) -> Result<VolumeLock> {
        let mut contended = None;
        let result = VolumeLock::take(dir, id, wait, &mut contended);
        if let (Some(stats), Some(since)) = (stats, contended) {
            stats.record(since);
        }
        result
    }

    fn take(dir: &Path, id: &str, wait: Wait, contended: &mut Option<Instant>) -> Result<VolumeLock> {
        let path = dir.join(LOCK_FILE);
        let deadline = match wait {
            Wait::No => None,
            Wait::Upto(d) => Some(Instant::now() + d),
        };
        // A new open file description per lock: locks of one description never conflict.
        let file = super::perm::private_file()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::io("open lock", &path))?;
        let range = byte_of(id);
        loop {
            match set_lock(&file, range, libc::F_WRLCK) {
                Ok(()) => return Ok(VolumeLock { file, offset: range }),
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => {
                    contended.get_or_insert_with(Instant::now);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(errno) => return Err(Error::io("lock", &path)(errno.into())),
            }
            match deadline {
                Some(d) if Instant::now() < d => std::thread::sleep(Duration::from_millis(5)),
                _ => return Err(Error::Busy { id: id.to_owned() }),
            }
        }
    }
}

/// The offset of `id`'s byte: the first 63 bits of its SHA-256 (an `off_t` is signed).
fn byte_of(id: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first) & i64::MAX
}

/// Write-locks (`F_WRLCK`) or unlocks (`F_UNLCK`) one byte at `offset` of `file`, without waiting.
fn set_lock(file: &File, offset: i64, kind: libc::c_int) -> nix::Result<()> {
    // SAFETY: `flock` is plain old data; all-zero is a valid value that the fields below complete.
    let mut range: libc::flock = unsafe { std::mem::zeroed() };
    // F_WRLCK, F_UNLCK and SEEK_SET are small constants (1, 2, 0) that fit a c_short.
    range.l_type = libc::c_short::try_from(kind).map_err(|_| nix::errno::Errno::EINVAL)?;
    range.l_whence = libc::c_short::try_from(libc::SEEK_SET).map_err(|_| nix::errno::Errno::EINVAL)?;
    range.l_start = offset;
    range.l_len = 1;
    nix::fcntl::fcntl(file, nix::fcntl::FcntlArg::F_OFD_SETLK(&range)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_locker_is_busy_until_release() {
        let dir = tempfile::tempdir().unwrap();
        let a = VolumeLock::acquire(dir.path(), "v", Wait::No).unwrap();
        assert!(matches!(VolumeLock::acquire(dir.path(), "v", Wait::No), Err(Error::Busy { .. })));
        assert!(matches!(
            VolumeLock::acquire(dir.path(), "v", Wait::Upto(Duration::from_millis(20))),
            Err(Error::Busy { .. })
        ));
        VolumeLock::acquire(dir.path(), "other", Wait::No).unwrap();
        drop(a);
        VolumeLock::acquire(dir.path(), "v", Wait::No).unwrap();
    }

    #[test]
    fn contended_acquisitions_are_counted_with_their_wait() {
        let dir = tempfile::tempdir().unwrap();
        let stats = LockStats::default();
        let a = VolumeLock::acquire_counted(dir.path(), "v", Wait::No, Some(&stats)).unwrap();
        assert_eq!(stats.waits(), 0);
        let busy = VolumeLock::acquire_counted(dir.path(), "v", Wait::Upto(Duration::from_millis(30)), Some(&stats));
        assert!(matches!(busy, Err(Error::Busy { .. })));
        assert_eq!(stats.waits(), 1);
        assert!(stats.wait_seconds() >= 0.025, "{}", stats.wait_seconds());
        drop(a);
        VolumeLock::acquire_counted(dir.path(), "v", Wait::No, Some(&stats)).unwrap();
        assert_eq!(stats.waits(), 1);
    }

    #[test]
    fn ids_share_one_kept_file_and_other_processes_are_excluded() {
        let dir = tempfile::tempdir().unwrap();
        let a = VolumeLock::acquire(dir.path(), "v", Wait::No).unwrap();
        let b = VolumeLock::acquire(dir.path(), "w", Wait::No).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [LOCK_FILE]);
        // Another process is kept out of a held id, and not out of a free one.
        let held_elsewhere = in_child(|| VolumeLock::acquire(dir.path(), "v", Wait::No).is_err());
        assert!(held_elsewhere, "a second process took a held lock");
        let free_elsewhere = in_child(|| VolumeLock::acquire(dir.path(), "x", Wait::No).is_ok());
        assert!(free_elsewhere, "a second process could not take a free lock");
        drop((a, b));
        assert!(in_child(|| VolumeLock::acquire(dir.path(), "v", Wait::No).is_ok()));
        assert!(dir.path().join(LOCK_FILE).exists(), "the lock file is kept");
    }

    /// Runs `check` in a forked child; its answer is the child's exit status.
    fn in_child(check: impl FnOnce() -> bool) -> bool {
        // SAFETY: the child only opens a file, locks a byte of it and exits without returning
        // (glibc keeps malloc usable after fork); it touches nothing of the threads it lost.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let ok = check();
                // SAFETY: _exit ends the child without running the parent's destructors.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                status == nix::sys::wait::WaitStatus::Exited(child, 0)
            }
        }
    }

    #[test]
    fn a_released_lock_is_free_while_a_forked_child_still_holds_the_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let a = VolumeLock::acquire(dir.path(), "v", Wait::No).unwrap();
        // SAFETY: the child only sleeps and exits; it holds copies of every descriptor, as a
        // child forked by another thread does until it execs.
        let child = match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                std::thread::sleep(Duration::from_millis(500));
                // SAFETY: _exit ends the child without running the parent's destructors.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => child,
        };
        drop(a);
        let again = VolumeLock::acquire(dir.path(), "v", Wait::No);
        nix::sys::wait::waitpid(child, None).unwrap();
        again.expect("the lock was released at drop, not when the child let go of the descriptor");
    }

    #[test]
    fn offsets_are_stable_and_in_range() {
        assert_eq!(byte_of("v"), byte_of("v"));
        assert_ne!(byte_of("v"), byte_of("w"));
        assert!(byte_of("a-very-long-volume-name-0123456789") >= 0);
    }

    #[test]
    fn waiter_gets_the_lock_when_released() {
        let dir = tempfile::tempdir().unwrap();
        let a = VolumeLock::acquire(dir.path(), "v", Wait::No).unwrap();
        let p = dir.path().to_owned();
        let t = std::thread::spawn(move || VolumeLock::acquire(&p, "v", Wait::Upto(Duration::from_secs(5))).map(drop));
        std::thread::sleep(Duration::from_millis(30));
        drop(a);
        t.join().unwrap().unwrap();
    }
}
