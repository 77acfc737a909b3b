//! Short engine calls on the polling thread: a call that is usually short (stage, publish,
//! unpublish, unstage, create, delete) runs where its request was read when no other engine call
//! runs and none began while it looked; otherwise it goes to a blocking thread, as every other
//! call does. One call alone saves the two thread wake-ups of a hand-off; calls that come
//! together keep the blocking pool, so concurrent clients stay concurrent and creates still share
//! their flushes. The engine declines, before changing anything, a call that may take long (see
//! `engine::quick`); it then runs on a blocking thread.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// What the engine calls of one driver are doing.
#[derive(Debug, Default)]
pub(super) struct Inline {
    /// Engine calls running now, on the polling thread or on blocking ones.
    running: AtomicUsize,
    /// Engine calls begun so far.
    begun: AtomicU64,
}

/// One engine call counted as running, until dropped.
#[derive(Debug)]
pub(super) struct Running<'a>(&'a Inline);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Inline {
    /// Counts a call that runs on a blocking thread.
    pub(super) fn pooled(&self) -> Running<'_> {
        self.begun.fetch_add(1, Ordering::AcqRel);
        self.running.fetch_add(1, Ordering::AcqRel);
        Running(self)
    }

    /// A turn on the polling thread: granted when no other engine call runs and none began
    /// while this one let the poller read what else has come. The yield puts this task behind
    /// the connections with a request waiting, whose calls then begin first.
    pub(super) async fn turn(&self) -> Option<Running<'_>> {
        self.running.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).ok()?;
        let held = Running(self);
        let mine = self.begun.fetch_add(1, Ordering::AcqRel) + 1;
        tokio::task::yield_now().await;
        (self.begun.load(Ordering::Acquire) == mine).then_some(held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_call_alone_gets_a_turn_and_one_beside_another_does_not() {
        let inline = Inline::default();
        let alone = inline.turn().await;
        assert!(alone.is_some(), "nothing else runs");
        assert!(inline.turn().await.is_none(), "a call runs on the poller already");
        drop(alone);
        let pooled = inline.pooled();
        assert!(inline.turn().await.is_none(), "a call runs on a blocking thread");
        drop(pooled);
        assert!(inline.turn().await.is_some(), "the counts come back down");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_call_that_begins_during_the_yield_takes_the_turn_away() {
        let inline = std::sync::Arc::new(Inline::default());
        let other = inline.clone();
        // Runs while the turn yields, as a connection's waiting request would.
        let beside = tokio::spawn(async move {
            let _running = other.pooled();
        });
        assert!(inline.turn().await.is_none(), "another call began meanwhile");
        beside.await.unwrap();
        assert_eq!(inline.running.load(Ordering::Acquire), 0, "nothing is left counted");
    }
}
