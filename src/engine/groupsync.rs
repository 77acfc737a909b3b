//! Group commit of `volumes/`'s directory sync: creates and deletes that rename a volume
//! directory make the rename durable by syncing `volumes/`; callers that arrive while a sync runs
//! wait for the next one, which covers all of them, so eight concurrent creates share a sync or
//! two instead of paying eight (csi-provisioner runs many workers).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, PoisonError};

#[derive(Debug, Default)]
struct Turns {
    /// Tickets handed out: a caller needs a sync that starts after it took its ticket.
    asked: u64,
    /// Every ticket up to this one is covered by a finished sync.
    done: u64,
    running: bool,
}

/// The syncs of one directory.
#[derive(Debug)]
pub(super) struct GroupSync {
    dir: PathBuf,
    turns: Mutex<Turns>,
    finished: Condvar,
}

impl GroupSync {
    pub(super) fn new(dir: PathBuf) -> GroupSync {
        GroupSync { dir, turns: Mutex::new(Turns::default()), finished: Condvar::new() }
    }

    /// Returns once a sync of the directory that began after this call has finished.
    pub(super) fn sync(&self) -> std::io::Result<()> {
        let mut turns = self.turns.lock().unwrap_or_else(PoisonError::into_inner);
        turns.asked += 1;
        let ticket = turns.asked;
        loop {
            if turns.done >= ticket {
                return Ok(());
            }
            if !turns.running {
                turns.running = true;
                let covers = turns.asked;
                drop(turns);
                let synced = sync_dir(&self.dir);
                turns = self.turns.lock().unwrap_or_else(PoisonError::into_inner);
                turns.running = false;
                if synced.is_ok() {
                    turns.done = covers;
                }
                self.finished.notify_all();
                // A failed sync covers nobody: each waiting caller tries one of its own.
                synced?;
                continue;
            }
            turns = self.finished.wait(turns).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_callers_share_syncs_and_each_returns_after_one_that_began_after_it() {
        let d = tempfile::tempdir().unwrap();
        let group = Arc::new(GroupSync::new(d.path().to_owned()));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let g = group.clone();
                std::thread::spawn(move || (0..20).try_for_each(|_| g.sync()))
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        let turns = group.turns.lock().unwrap();
        assert_eq!((turns.asked, turns.done, turns.running), (320, 320, false));
    }

    #[test]
    fn a_sync_that_fails_is_an_error_for_its_callers() {
        let d = tempfile::tempdir().unwrap();
        let group = GroupSync::new(d.path().join("missing"));
        assert!(group.sync().is_err());
    }
}
