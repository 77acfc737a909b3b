//! Per-volume locks that hold across processes: `flock(2)` on `<root>/locks/<id>.lock` (0600).

use super::{Error, Result};
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
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

/// A held volume lock; released on drop.
#[derive(Debug)]
pub struct VolumeLock {
    _lock: Flock<File>,
    path: PathBuf,
    /// When this file does not exist at release, the volume is gone: remove the lock file too.
    owner: Option<PathBuf>,
}

impl Drop for VolumeLock {
    fn drop(&mut self) {
        if self.owner.as_ref().is_some_and(|o| !o.exists()) {
            self.remove_file();
        }
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
        let path = dir.join(format!("{id}.lock"));
        let deadline = match wait {
            Wait::No => None,
            Wait::Upto(d) => Some(Instant::now() + d),
        };
        loop {
            let file = super::perm::private_file()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(Error::io("open lock", &path))?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) if same_file(&lock, &path) => {
                    return Ok(VolumeLock { _lock: lock, path, owner: None });
                }
                Ok(_) => continue, // the file was removed by the previous holder: lock the new one
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    contended.get_or_insert_with(Instant::now);
                }
                Err((_, errno)) => return Err(Error::io("lock", &path)(errno.into())),
            }
            match deadline {
                Some(d) if Instant::now() < d => std::thread::sleep(Duration::from_millis(5)),
                _ => return Err(Error::Busy { id: id.to_owned() }),
            }
        }
    }

    /// Removes the lock file at release unless `record` exists then, so that a volume that
    /// does not exist leaves no lock file behind.
    pub fn tied_to(mut self, record: PathBuf) -> VolumeLock {
        self.owner = Some(record);
        self
    }

    /// Removes the lock file while still holding it (after the volume is deleted); later
    /// lockers notice the inode changed and lock a fresh file.
    pub fn remove_file(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn same_file(lock: &Flock<File>, path: &Path) -> bool {
    match (lock.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
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
    fn removed_lock_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let a = VolumeLock::acquire(dir.path(), "v", Wait::No).unwrap();
        a.remove_file();
        drop(a);
        let b = VolumeLock::acquire(dir.path(), "v", Wait::No).unwrap();
        assert!(dir.path().join("v.lock").exists());
        drop(b);
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
