//! Damage is contained: a volume whose record or node state cannot be read, or whose directory
//! has no record, is quarantined (listed with the reason, refused by destructive calls) instead
//! of stopping the node or being taken for "not in use". Creates and deletes work aside (see
//! [`super::aside`]), so a volume's own directory without a record is never strata's leftover,
//! except an empty one or one holding an older strata's intent file.

use super::{Engine, Error, Result};
use std::path::{Path, PathBuf};

/// A volume that cannot be used until an operator repairs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantine {
    pub id: String,
    pub reason: String,
}

/// Moves `dir` (under `volumes/` or `snapshots/`) to `.quarantine/<name>.<unix seconds>` beside
/// it, for an operator: inside the same directory (which may be a mount of its own), under a
/// name no id takes. Mounts inside it and loop devices on files in it follow it.
pub(super) fn set_aside(dir: &Path) -> Result<PathBuf> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(Error::io("move aside", dir)(std::io::ErrorKind::InvalidInput.into()));
    };
    let aside = parent.join(".quarantine");
    super::perm::make_dir(&aside)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let to = aside.join(format!("{}.{now}", name.to_string_lossy()));
    std::fs::rename(dir, &to).map_err(Error::io("move aside", dir))?;
    Ok(to)
}

impl Engine {
    /// Why the volume `id` is quarantined, if it is.
    pub fn quarantine_of(&self, id: &str) -> Option<Quarantine> {
        match self.load(id) {
            Err(Error::Quarantined { id, reason }) => Some(Quarantine { id, reason }),
            _ => None,
        }
    }

    /// Every quarantined volume under the root, with its reason.
    pub fn quarantined(&self) -> Result<Vec<Quarantine>> {
        let mut out = Vec::new();
        for id in self.volume_ids()? {
            if let Err(Error::Quarantined { id, reason }) = self.load(&id) {
                out.push(Quarantine { id, reason });
            }
        }
        Ok(out)
    }
}
