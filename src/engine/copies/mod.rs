//! Copies that outlast a call: snapshots, clones and restores whose data cannot be shared at once
//! run in the background from an intent recorded before they start (`copy` in the target's
//! record, format [`super::record::FORMAT_COPYING`]), are reported while they run (the CSI
//! `ready_to_use`, an ABORTED answer naming the progress, inspect, metrics) and survive a restart.
//!
//! The engine never starts a thread: a call that begins a copy returns a [`CopyJob`] and the
//! front-end runs it ([`super::Engine::run_copy`]), on a thread of its own (strata-csi) or inside
//! the call (a short-lived process, the tests). What is "cut" when the call answers, per backend,
//! is in docs/architecture.md ("Background copies").

mod job;
mod registry;
mod resume;
mod start;
#[cfg(test)]
mod tests;

pub use job::{CopyJob, PROGRESS_FILE};
pub(super) use registry::Registry;
pub use registry::{CopyKey, CopyStats, JobState, describe};

use super::record::{self, CopyIntent};
use super::{Engine, Error, Source};
use crate::backend::VolumeDir;
use crate::sys::tree::CopyReport;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// What a running copy last wrote about its progress (for `strata-csi inspect`, which runs in a
/// process of its own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CopyProgress {
    pub copied: u64,
    pub total: u64,
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`); empty where it cannot be read.
pub(super) fn boot_id() -> &'static str {
    static BOOT: OnceLock<String> = OnceLock::new();
    BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim().to_owned()
    })
}

/// A new intent to copy `from`, started now in this boot.
pub(super) fn intent(from: Source, still: Option<record::Stamp>) -> CopyIntent {
    let started_unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CopyIntent { from, started_unix, boot: boot_id().to_owned(), still, failed: None }
}

/// One line per copy that made a snapshot or a volume: what, from what, how much, how fast, and
/// what was left out of it.
pub(super) fn log_copy(key: &CopyKey, from: &Source, report: &CopyReport, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    let rate = (report.bytes as f64 / secs.max(1e-6) / f64::from(1 << 20)).round();
    tracing::info!(
        copy = %key,
        from = ?from,
        files = report.files,
        dirs = report.dirs,
        bytes = report.bytes,
        reflinked = report.reflinked,
        devices_left_out = report.devices_skipped,
        mounts_left_out = report.mounts_skipped,
        seconds = secs,
        mib_per_second = rate,
        "copy done"
    );
    if report.devices_skipped > 0 {
        tracing::warn!(copy = %key, devices = report.devices_skipped, "the copy left out device nodes: a copy is data, not devices");
    }
}

impl Engine {
    /// How the copies of this process stand, for metrics.
    pub fn copy_stats(&self) -> CopyStats {
        self.copies.stats()
    }

    /// The copy of `key` running in this process, if one runs.
    pub fn copy_job(&self, key: &CopyKey) -> Option<std::sync::Arc<JobState>> {
        self.copies.get(key)
    }

    /// How far the copy into `dir` (of `key`) is: from the running copy, else from what it last
    /// wrote (another process runs it, or it waits to be resumed).
    pub fn copy_progress(&self, key: &CopyKey, dir: &VolumeDir) -> String {
        if let Some(job) = self.copies.get(key) {
            return job.describe();
        }
        let file = dir.0.join(PROGRESS_FILE);
        match record::load_json::<CopyProgress>(&file) {
            Ok(Some(p)) => format!("{} (as last recorded)", describe(p.copied, p.total, Default::default())),
            _ => "not started yet in this process (it resumes at the next call or start)".to_owned(),
        }
    }

    /// The ABORTED answer about `key` while its copy runs.
    pub fn copying(&self, key: &CopyKey) -> Error {
        let dir = match key {
            CopyKey::Snapshot(id) => self.snapshot_dir(id),
            CopyKey::Volume(id) => self.dir(id),
        };
        Error::Copying { what: key.to_string(), progress: self.copy_progress(key, &dir) }
    }
}
