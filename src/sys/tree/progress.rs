//! Progress and cancellation of one copy: counters the copy adds to as it goes (read by inspect,
//! metrics and the answers to the CO's retries), a flag that stops it between two steps (a
//! delete of what is being copied), and an optional rate limit (copies share the node's disk with
//! the pods). One [`Progress`] is shared through an `Arc` between the copy and its watchers.

use super::error::Fail;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest a rate-limited copy sleeps before it looks at the cancel flag again.
const NAP: Duration = Duration::from_millis(50);
/// How often a copy calls its reporter, at most.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Called by the copying thread with the bytes copied and the total, about once a second.
pub type Reporter = Box<dyn Fn(u64, u64) + Send + Sync>;

/// How far one copy is, and whether it should stop.
pub struct Progress {
    copied: AtomicU64,
    total: AtomicU64,
    cancelled: AtomicBool,
    /// Bytes per second at most; 0: no limit.
    rate: u64,
    started: Instant,
    reporter: Option<Reporter>,
    /// Milliseconds after `started` of the last report.
    reported_ms: AtomicU64,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("copied", &self.copied())
            .field("total", &self.total())
            .field("cancelled", &self.is_cancelled())
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl Default for Progress {
    fn default() -> Progress {
        Progress::limited(0)
    }
}

impl Progress {
    /// A copy that copies at most `rate` bytes per second (0: as fast as it can).
    pub fn limited(rate: u64) -> Progress {
        Progress {
            copied: AtomicU64::new(0),
            total: AtomicU64::new(0),
            cancelled: AtomicBool::new(false),
            rate,
            started: Instant::now(),
            reporter: None,
            reported_ms: AtomicU64::new(0),
        }
    }

    /// This copy also tells `reporter` how far it is, about once a second (from the copying
    /// thread, between two chunks).
    pub fn reporting(mut self, reporter: Reporter) -> Progress {
        self.reporter = Some(reporter);
        self
    }

    /// When the copy began.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Bytes of data copied so far (shared extents and holes count nothing).
    pub fn copied(&self) -> u64 {
        self.copied.load(Ordering::Relaxed)
    }

    /// Bytes of data the copy expects to copy, as measured before it began (0: not known yet).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub fn set_total(&self, bytes: u64) {
        self.total.store(bytes, Ordering::Relaxed);
    }

    /// Asks the copy to stop at its next step; it then fails with [`super::Error::Cancelled`].
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Between two entries of a tree: stops a cancelled copy.
    pub(super) fn check(&self) -> Result<(), Fail> {
        if self.is_cancelled() { Err(Fail::Cancelled) } else { Ok(()) }
    }

    /// Counts `bytes` copied; stops a cancelled copy, and holds a copy that runs ahead of its
    /// rate limit until it is back on it.
    pub(super) fn advance(&self, bytes: u64) -> Result<(), Fail> {
        let copied = self.copied.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.check()?;
        self.report(copied);
        if self.rate == 0 {
            return Ok(());
        }
        let due = Duration::from_secs_f64(copied as f64 / self.rate as f64);
        while let Some(ahead) = due.checked_sub(self.started.elapsed()) {
            if ahead.is_zero() {
                break;
            }
            std::thread::sleep(ahead.min(NAP));
            self.check()?;
        }
        Ok(())
    }

    fn report(&self, copied: u64) {
        let Some(reporter) = &self.reporter else { return };
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.reported_ms.load(Ordering::Relaxed);
        let due = u64::try_from(REPORT_EVERY.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(last) >= due
            && self.reported_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            reporter(copied, self.total());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_counted_and_a_cancel_stops_the_next_step() {
        let p = Progress::default();
        p.set_total(10);
        p.advance(4).unwrap();
        p.check().unwrap();
        assert_eq!((p.copied(), p.total()), (4, 10));
        p.cancel();
        assert!(matches!(p.check(), Err(Fail::Cancelled)));
        assert!(matches!(p.advance(1), Err(Fail::Cancelled)));
    }

    #[test]
    fn a_limited_copy_waits_for_its_rate_and_a_cancel_ends_the_wait() {
        let p = Progress::limited(1 << 20);
        let started = Instant::now();
        p.advance(1 << 19).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(400), "{:?}", started.elapsed());
        let p = std::sync::Arc::new(Progress::limited(1));
        let watcher = p.clone();
        let t = std::thread::spawn(move || watcher.advance(1 << 30));
        std::thread::sleep(Duration::from_millis(100));
        p.cancel();
        assert!(matches!(t.join().unwrap(), Err(Fail::Cancelled)));
    }
}
