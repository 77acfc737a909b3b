//! A survey of the root for metrics, taken when they are scraped rather than kept up to date on
//! every call: the volumes and snapshots that exist, what node state says is staged and
//! published, the loop devices attached, and the volumes that are quarantined or abnormal.

use super::lock::LockStats;
use super::{Engine, Result, Snapshot, Volume};
use crate::sys::FsStats;

/// What exists under the root, read once.
#[derive(Debug, Default)]
pub struct Survey {
    /// Volumes whose record and node state read, by id.
    pub volumes: Vec<Volume>,
    /// Volumes whose record or node state does not read: quarantined (destructive calls refused).
    pub quarantined: usize,
    /// Volumes whose storage or staging has a problem (see [`Engine::volume_condition`]).
    pub abnormal: usize,
    /// Snapshots whose record reads.
    pub snapshots: Vec<Snapshot>,
    /// Snapshot records that do not read.
    pub unreadable_snapshots: usize,
}

impl Engine {
    /// Reads every record and node state under the root and the mount table once. One
    /// unreadable record is counted, never fatal.
    pub fn survey(&self) -> Result<Survey> {
        let mut out = Survey::default();
        for id in self.volume_ids()? {
            match self.load(&id) {
                Ok(Some(v)) => out.volumes.push(v),
                Ok(None) => {}
                Err(_) => out.quarantined += 1,
            }
        }
        for id in self.snapshot_ids()? {
            match self.snapshot_of(&id) {
                Ok(s) => out.snapshots.extend(s),
                Err(_) => out.unreadable_snapshots += 1,
            }
        }
        out.abnormal = self.volume_conditions(&out.volumes)?.iter().filter(|c| c.abnormal).count();
        Ok(out)
    }

    /// Size and free space of the filesystem holding the data root.
    pub fn root_stats(&self) -> Result<FsStats> {
        Ok(self.host.statvfs(&self.cfg.root)?)
    }

    /// Loop devices whose backing file is a volume image under this root.
    pub fn loop_devices_attached(&self) -> Result<usize> {
        let volumes = self.cfg.root.join("volumes");
        Ok(crate::sys::loops_under(&self.host.loop_list()?, &volumes).len())
    }

    /// How often volume and snapshot locks were found held, and the time spent waiting.
    pub fn lock_stats(&self) -> &LockStats {
        &self.locks
    }
}
