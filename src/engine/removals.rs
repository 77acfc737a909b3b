//! Deleted volumes' files removed after the delete answered (a long-lived server only): the
//! queue the deletes hand their asides to, and the ids whose removal is pending, so that a
//! repeated delete answers at once and a delete of a volume made again under the same id waits
//! for the old one's files to go.

use std::collections::HashSet;
use std::sync::mpsc::Sender;
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub(super) struct Removals {
    queue: OnceLock<Mutex<Sender<String>>>,
    pending: Mutex<HashSet<String>>,
    done: Condvar,
}

impl Removals {
    /// Starts taking hand-overs into `queue`; false when already started.
    pub(super) fn start(&self, queue: Sender<String>) -> bool {
        self.queue.set(Mutex::new(queue)).is_ok()
    }

    pub(super) fn started(&self) -> bool {
        self.queue.get().is_some()
    }

    /// Hands the aside of `id` over; false when there is no worker to take it.
    pub(super) fn hand_over(&self, id: &str) -> bool {
        let Some(queue) = self.queue.get() else { return false };
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).insert(id.to_owned());
        let sent = queue.lock().unwrap_or_else(PoisonError::into_inner).send(id.to_owned()).is_ok();
        if !sent {
            self.finished(id);
        }
        sent
    }

    /// The worker is done with `id`.
    pub(super) fn finished(&self, id: &str) {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
        self.done.notify_all();
    }

    pub(super) fn is_pending(&self, id: &str) -> bool {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).contains(id)
    }

    /// Waits until the removal of `id` is done, at most `limit`; false when it still is not.
    pub(super) fn wait(&self, id: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        while pending.contains(id) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            pending = self.done.wait_timeout(pending, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }
}
