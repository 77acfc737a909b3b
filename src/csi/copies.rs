//! Background copies on the CSI side. A call that begins a copy (CreateSnapshot, CreateVolume
//! from a source) hands it to a blocking thread and waits a moment for it: a small copy answers
//! whole in the same call, a large one answers at once — a snapshot with `ready_to_use: false`
//! (csi-snapshotter calls again until it is true), a volume with ABORTED naming the progress
//! (csi-provisioner retries with backoff). The retry finds the copy through the record.

use super::Driver;
use crate::engine::{CopyJob, CopyKey, Engine, Snapshot, Volume};
use std::sync::Arc;
use std::time::Duration;
use tonic::Status;

/// How long CreateSnapshot waits for a copy before it answers `ready_to_use: false`.
pub(super) const SNAPSHOT_WAIT: Duration = Duration::from_millis(500);
/// How long CreateVolume waits for a clone or restore before it answers ABORTED.
pub(super) const VOLUME_WAIT: Duration = Duration::from_secs(3);

/// What an engine call that may begin a copy returns: whether its copy is still under way.
pub(super) trait Pending {
    fn pending(&self) -> Option<CopyKey>;
}

impl Pending for Snapshot {
    fn pending(&self) -> Option<CopyKey> {
        (!self.ready()).then(|| CopyKey::Snapshot(self.id.clone()))
    }
}

impl Pending for Volume {
    fn pending(&self) -> Option<CopyKey> {
        self.copy.is_some().then(|| CopyKey::Volume(self.id.clone()))
    }
}

/// An engine call that may begin a copy, called again to see how it stands.
pub(super) type Start<T> = dyn Fn(&Engine) -> Result<(T, Vec<CopyJob>), Status> + Send + Sync;

impl Driver {
    /// Runs a copy on a blocking thread of its own, to its end.
    pub(super) fn run_in_background(&self, job: CopyJob) {
        let engine = self.engine.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| engine.run_copy(job)));
    }

    /// Runs `start`, runs the copy it begins in the background, waits at most `wait` for that
    /// copy, and answers what `start` finds then (whole, still copying, or failed).
    pub(super) async fn with_copy<T>(&self, start: Arc<Start<T>>, wait: Duration) -> Result<T, Status>
    where
        T: Pending + Send + 'static,
    {
        let first = start.clone();
        let (made, jobs) = self.blocking(move |e| first(e)).await?;
        jobs.into_iter().for_each(|job| self.run_in_background(job));
        let Some(key) = made.pending() else { return Ok(made) };
        self.blocking(move |e| {
            if let Some(job) = e.copy_job(&key) {
                job.wait(wait);
            }
            Ok::<_, Status>(())
        })
        .await?;
        let (settled, jobs) = self.blocking(move |e| start(e)).await?;
        jobs.into_iter().for_each(|job| self.run_in_background(job));
        Ok(settled)
    }
}
