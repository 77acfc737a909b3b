//! Volume health: what is wrong with a volume's storage or its staging, in words.

use super::{Access, Engine, Result, Volume, validate};
use crate::sys::{MountEntry, mount_at};

/// A volume's condition as CSI's VolumeCondition carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub abnormal: bool,
    pub message: String,
}

impl Engine {
    /// Checks the storage and the staging mount (still there, still this volume, still
    /// writable), and says what is wrong; `abnormal: false` when nothing is.
    pub fn volume_condition(&self, id: &str) -> Result<Condition> {
        validate::id("volume", id)?;
        let vol = self.load_existing(id)?;
        Ok(self.condition_in(&vol, &self.host.mount_table()?))
    }

    /// [`Engine::volume_condition`] of each of `vols` (records from [`Engine::list_volumes`]),
    /// reading the mount table once.
    pub fn volume_conditions(&self, vols: &[Volume]) -> Result<Vec<Condition>> {
        let table = self.host.mount_table()?;
        Ok(vols.iter().map(|v| self.condition_in(v, &table)).collect())
    }

    pub(super) fn condition_in(&self, vol: &Volume, table: &[MountEntry]) -> Condition {
        if let Some(copy) = &vol.copy {
            let message = match &copy.failed {
                Some(f) => format!("its copy from {:?} failed: {}", copy.from, f.message),
                None => format!("being filled by a copy from {:?}", copy.from),
            };
            return Condition { abnormal: copy.failed.is_some(), message };
        }
        let dir = self.dir(&vol.id);
        let mut problems = Vec::new();
        problems.extend(self.backend(vol.backend).storage_problem(&vol.spec(), &dir));
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
        let message = if problems.is_empty() { "healthy".to_owned() } else { problems.join("; ") };
        Condition { abnormal: !problems.is_empty(), message }
    }
}
