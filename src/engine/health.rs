//! Volume health: what is wrong with a volume's storage or its staging, in words.
//!
//! A healthy staging is proven with `statx` and `statfs` on its own path (it is a mount root
//! showing this volume, writable unless staged read-only), so that kubelet's NodeGetVolumeStats
//! of every volume, every minute, costs the same on a node with 10,000 mounts as on one with ten.
//! Only what those cannot prove (a staging gone, another mount there, a host that cannot tell)
//! is looked up in the mount table, read at most once per call.

use super::kernel::LazyTable;
use super::{Access, Engine, Result, Volume, validate};
use crate::sys::{MountEntry, mount_at};

/// A volume's condition as CSI's VolumeCondition carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub abnormal: bool,
    pub message: String,
}

impl Condition {
    fn of(problems: Vec<String>) -> Condition {
        let message = if problems.is_empty() { "healthy".to_owned() } else { problems.join("; ") };
        Condition { abnormal: !problems.is_empty(), message }
    }
}

impl Engine {
    /// Checks the storage and the staging mount (still there, still this volume, still
    /// writable), and says what is wrong; `abnormal: false` when nothing is.
    pub fn volume_condition(&self, id: &str) -> Result<Condition> {
        validate::id("volume", id)?;
        let vol = self.load_existing(id)?;
        self.condition(&vol, &mut LazyTable::new(&*self.host))
    }

    /// [`Engine::volume_condition`] of each of `vols` (records from [`Engine::list_volumes`]),
    /// reading the mount table at most once.
    pub fn volume_conditions(&self, vols: &[Volume]) -> Result<Vec<Condition>> {
        let mut table = LazyTable::new(&*self.host);
        vols.iter().map(|v| self.condition(v, &mut table)).collect()
    }

    fn condition(&self, vol: &Volume, table: &mut LazyTable) -> Result<Condition> {
        if vol.copy.is_some() || vol.staging.is_none() {
            return Ok(self.condition_in(vol, &[]));
        }
        if let Some(c) = self.condition_proven(vol) {
            return Ok(c);
        }
        Ok(self.condition_in(vol, table.get()?))
    }

    /// The condition of a staged volume whose staging `statx` shows holding it, and `statfs`
    /// writable or staged read-only: `None` when they cannot show it (ask the mount table).
    fn condition_proven(&self, vol: &Volume) -> Option<Condition> {
        let s = vol.staging.as_ref()?;
        let place = self.node_place_if_any("staging", &s.path).ok()??;
        self.staged_by_identity(vol, &place)?;
        if let Access::Mount { flags } = &s.access {
            let facts = self.host.fs_facts(&place)?;
            if facts.read_only && !flags.iter().any(|f| f == "ro") {
                return None;
            }
        }
        Some(Condition::of(self.storage_problems(vol)))
    }

    fn storage_problems(&self, vol: &Volume) -> Vec<String> {
        self.backend(vol.backend).storage_problem(&vol.spec(), &self.dir(&vol.id)).into_iter().collect()
    }

    /// The condition as `table` shows the staging (empty when the volume is not staged).
    pub(super) fn condition_in(&self, vol: &Volume, table: &[MountEntry]) -> Condition {
        if let Some(copy) = &vol.copy {
            let message = match &copy.failed {
                Some(f) => format!("its copy from {:?} failed: {}", copy.from, f.message),
                None => format!("being filled by a copy from {:?}", copy.from),
            };
            return Condition { abnormal: copy.failed.is_some(), message };
        }
        let mut problems = self.storage_problems(vol);
        if let Some(s) = &vol.staging {
            match mount_at(table, &s.path) {
                None if matches!(s.access, Access::Mount { .. }) => {
                    problems.push(format!("the staging mount at {} is gone", s.path.display()))
                }
                Some(m) if m.is_readonly() && !m.mount_options.iter().any(|o| o == "ro") => problems.push(format!(
                    "the filesystem at {} went read-only (an I/O or filesystem error)",
                    s.path.display()
                )),
                _ => {}
            }
            if self.staged_here(vol, table).is_none() && problems.len() < 2 {
                problems
                    .push(format!("{} no longer holds this volume (was its loop device detached?)", s.path.display()));
            }
        }
        Condition::of(problems)
    }
}
