//! The copies running in this process: what each fills, what it reads, how far it is, and a
//! way to wait for one to end or to stop it. Only a long-lived process (strata-csi) runs copies
//! in the background; a short one runs them inside its call and the registry only holds them
//! meanwhile.

use crate::engine::Source;
use crate::sys::tree::Progress;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// What a copy fills.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CopyKey {
    Snapshot(String),
    Volume(String),
}

impl std::fmt::Display for CopyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyKey::Snapshot(id) => write!(f, "snapshot {id}"),
            CopyKey::Volume(id) => write!(f, "volume {id}"),
        }
    }
}

/// One copy as its watchers see it.
#[derive(Debug)]
pub struct JobState {
    pub key: CopyKey,
    pub from: Source,
    pub progress: Arc<Progress>,
    /// The source volume's lock is held by the copy (a loop image held still).
    pub holds_source: bool,
    finished: Mutex<bool>,
    ended: Condvar,
}

impl JobState {
    pub(super) fn new(key: CopyKey, from: Source, progress: Arc<Progress>, holds_source: bool) -> JobState {
        JobState { key, from, progress, holds_source, finished: Mutex::new(false), ended: Condvar::new() }
    }

    fn finished(&self) -> MutexGuard<'_, bool> {
        self.finished.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits at most `upto` for the copy to end; whether it has.
    pub fn wait(&self, upto: Duration) -> bool {
        let guard = self.finished();
        let (guard, _) = self.ended.wait_timeout_while(guard, upto, |done| !*done).unwrap_or_else(|p| p.into_inner());
        *guard
    }

    pub(super) fn finish(&self) {
        *self.finished() = true;
        self.ended.notify_all();
    }

    /// How far the copy is, in words: `12.0 MiB of 64.0 MiB (18%) after 3 s`.
    pub fn describe(&self) -> String {
        describe(self.progress.copied(), self.progress.total(), self.progress.started().elapsed())
    }
}

/// `copied` of `total` bytes after `took`, in words.
pub fn describe(copied: u64, total: u64, took: Duration) -> String {
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    let part = match total {
        0 => format!("{:.1} MiB copied", mib(copied)),
        t => format!("{:.1} MiB of {:.1} MiB ({}%)", mib(copied), mib(t), copied.min(t) * 100 / t),
    };
    format!("{part} after {} s", took.as_secs())
}

/// The copies of one engine.
#[derive(Debug, Default)]
pub struct Registry {
    jobs: Mutex<HashMap<CopyKey, Arc<JobState>>>,
    /// Bytes copied by copies that have ended since the process started.
    done_bytes: AtomicU64,
}

/// What the copies of this process have done, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub running: u64,
    /// Bytes copied, by copies running and ended, since the process started.
    pub bytes: u64,
}

/// A copy's place in the registry: let go when the copy ends, or when a copy that never ran is
/// dropped (its record still says it is under way; the next call or start resumes it).
#[derive(Debug)]
pub struct Claim {
    registry: Arc<Registry>,
    state: Arc<JobState>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.registry.release(&self.state);
    }
}

impl Registry {
    /// Registers `job`; `None` when a copy of the same key already runs.
    pub(super) fn claim(self: &Arc<Self>, job: &Arc<JobState>) -> Option<Claim> {
        let mut jobs = self.jobs();
        if jobs.contains_key(&job.key) {
            return None;
        }
        jobs.insert(job.key.clone(), job.clone());
        Some(Claim { registry: self.clone(), state: job.clone() })
    }

    fn jobs(&self) -> MutexGuard<'_, HashMap<CopyKey, Arc<JobState>>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn release(&self, job: &JobState) {
        self.done_bytes.fetch_add(job.progress.copied(), Ordering::Relaxed);
        self.jobs().remove(&job.key);
        job.finish();
    }

    pub fn get(&self, key: &CopyKey) -> Option<Arc<JobState>> {
        self.jobs().get(key).cloned()
    }

    /// A copy that reads `source`, if one runs.
    pub fn reading(&self, source: &Source) -> Option<Arc<JobState>> {
        self.jobs().values().find(|j| &j.from == source).cloned()
    }

    /// A copy that holds volume `id`'s lock, if one runs.
    pub fn holding(&self, id: &str) -> Option<Arc<JobState>> {
        let source = Source::Volume(id.to_owned());
        self.jobs().values().find(|j| j.holds_source && j.from == source).cloned()
    }

    pub fn stats(&self) -> CopyStats {
        let jobs = self.jobs();
        let running: u64 = jobs.values().map(|j| j.progress.copied()).sum();
        CopyStats { running: jobs.len() as u64, bytes: self.done_bytes.load(Ordering::Relaxed) + running }
    }
}
