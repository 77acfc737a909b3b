//! The threads engine calls run on ([`Pool`]): at most so many, each leaving after a while idle,
//! like tokio's blocking pool, but an idle thread is woken only after the queue's lock is
//! released. tokio's pool wakes it while still holding the lock, so on a machine with a free core
//! the woken thread finds the lock taken, sleeps on it and is woken a second time: two more
//! context switches per call, which on a small VM cost about as much CPU as a node call's engine
//! work.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

/// A bounded pool of threads for blocking work.
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    wake: Condvar,
    max_threads: usize,
    keep_alive: Duration,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Threads alive.
    threads: usize,
    /// Threads waiting for work that no one has woken yet.
    sleeping: usize,
    /// Wake-ups sent and not yet taken by a thread.
    woken: usize,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("queued", &self.queue.len()).field("threads", &self.threads).finish()
    }
}

impl Pool {
    /// A pool of at most `max_threads` threads (at least one), each leaving after `keep_alive`
    /// without work.
    pub fn new(max_threads: usize, keep_alive: Duration) -> Pool {
        let inner =
            Inner { state: Mutex::default(), wake: Condvar::new(), max_threads: max_threads.max(1), keep_alive };
        Pool { inner: Arc::new(inner) }
    }

    /// Runs `f` on a thread of the pool and gives its result; `None` when it panicked.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.spawn(Box::new(move || {
            if let Ok(value) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                let _ = tx.send(value);
            }
        }));
        rx.await.ok()
    }

    /// Queues `job`, then wakes a sleeping thread or starts one; with every thread busy and the
    /// pool full, the job waits for the first thread that frees up.
    fn spawn(&self, job: Job) {
        let mut state = self.inner.lock();
        state.queue.push_back(job);
        let (wake, start) = if state.sleeping > 0 {
            state.sleeping -= 1;
            state.woken += 1;
            (true, false)
        } else if state.threads < self.inner.max_threads {
            state.threads += 1;
            (false, true)
        } else {
            (false, false)
        };
        drop(state);
        if wake {
            self.inner.wake.notify_one();
        }
        if start {
            let inner = self.inner.clone();
            let started = std::thread::Builder::new().name("strata-engine".into()).spawn(move || inner.work());
            if let Err(e) = started {
                // The queued job is run by a thread that exists, if there is one.
                tracing::warn!(error = %e, "cannot start an engine thread");
                let mut state = self.inner.lock();
                state.threads -= 1;
                // With no thread left, nothing would ever run the queue: its callers get `None`.
                let stranded: Vec<Job> = if state.threads == 0 { state.queue.drain(..).collect() } else { Vec::new() };
                drop(state);
                drop(stranded);
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A job never runs under the lock, so a poisoned lock still guards consistent counts.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A thread's life: run queued jobs; leave after `keep_alive` without one.
    fn work(&self) {
        while let Some(job) = self.next() {
            job();
        }
    }

    /// The next job, waiting for one up to `keep_alive`; `None` when the thread should leave.
    fn next(&self) -> Option<Job> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                return Some(job);
            }
            state.sleeping += 1;
            let (again, waited) =
                self.wake.wait_timeout(state, self.keep_alive).unwrap_or_else(PoisonError::into_inner);
            state = again;
            if state.woken > 0 {
                // Woken by a spawn (or spuriously while a wake-up was on its way: either way one
                // of the sleepers takes it, and `sleeping` was counted down by the spawn).
                state.woken -= 1;
            } else {
                state.sleeping -= 1;
                if waited.timed_out() && state.queue.is_empty() {
                    state.threads -= 1;
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_every_job_on_at_most_max_threads() {
        let pool = Pool::new(3, Duration::from_millis(50));
        let busy = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let calls = (0..40).map(|i| {
            let (pool, busy, most) = (pool.clone(), busy.clone(), most.clone());
            tokio::spawn(async move {
                pool.run(move || {
                    let now = busy.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(2));
                    busy.fetch_sub(1, Ordering::SeqCst);
                    i * 2
                })
                .await
            })
        });
        let results: Vec<_> = futures_join(calls).await;
        assert_eq!(results, (0..40).map(|i| Some(i * 2)).collect::<Vec<_>>());
        let most = most.load(Ordering::SeqCst);
        assert!((2..=3).contains(&most), "{most} jobs ran at once");
    }

    #[tokio::test]
    async fn idle_threads_leave_and_a_panic_is_none() {
        let pool = Pool::new(4, Duration::from_millis(20));
        assert_eq!(pool.run(|| 7).await, Some(7));
        assert_eq!(pool.inner.lock().threads, 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(pool.inner.lock().threads, 0, "the idle thread left");
        assert_eq!(pool.run(|| -> u8 { panic!("a job that panics") }).await, None);
        assert_eq!(pool.run(|| 8).await, Some(8), "the pool still works after a panic");
    }

    async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
        let mut out = Vec::new();
        for h in handles.collect::<Vec<_>>() {
            out.push(h.await.unwrap());
        }
        out
    }
}
