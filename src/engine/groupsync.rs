//! Group commit of a sync: of `volumes/` (creates and deletes that rename a volume directory
//! make the rename durable by syncing it) and of the intent journal's file. Callers that arrive
//! while a sync runs wait for the next one, which covers all of them, so eight concurrent creates
//! share a sync or two instead of paying eight (csi-provisioner runs many workers).

use std::fs::File;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, PoisonError};

#[derive(Debug, Default)]
struct Turns {
    /// Tickets handed out: a caller needs a sync that starts after it took its ticket.
    asked: u64,
    /// Every ticket up to this one is covered by a finished sync.
    done: u64,
    running: bool,
}

/// One sync, run for whoever asks.
type SyncFn = Box<dyn Fn() -> std::io::Result<()> + Send + Sync>;

/// The syncs of one directory or file.
pub(super) struct GroupSync {
    run: SyncFn,
    turns: Mutex<Turns>,
    finished: Condvar,
}

impl std::fmt::Debug for GroupSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupSync").field("turns", &self.turns).finish_non_exhaustive()
    }
}

impl GroupSync {
    /// Syncs of the directory `dir` (opened for each sync).
    pub(super) fn dir(dir: PathBuf) -> GroupSync {
        GroupSync::new(Box::new(move || File::open(&dir)?.sync_all()))
    }

    pub(super) fn new(run: SyncFn) -> GroupSync {
        GroupSync { run, turns: Mutex::new(Turns::default()), finished: Condvar::new() }
    }

    /// Returns once a sync that began after this call has finished.
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
                let synced = (self.run)();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_callers_share_syncs_and_each_returns_after_one_that_began_after_it() {
        let d = tempfile::tempdir().unwrap();
        let group = Arc::new(GroupSync::dir(d.path().to_owned()));
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
        let group = GroupSync::dir(d.path().join("missing"));
        assert!(group.sync().is_err());
    }
}
