//! Where a staged volume is published: the publications node state records (publish writes each
//! before its bind), each checked against the kernel (one `statx(2)` pair) rather than found by
//! scanning the whole mount table.

use super::node::LazyTable;
use super::{Access, Engine, Publication, Result, Staging, Volume};
use crate::backend::Kind;
use crate::sys::{MountEntry, bind_identity, mount_at};
use std::path::{Path, PathBuf};

impl Engine {
    /// Where the volume is published now: recorded publications whose target is a mount root
    /// showing the staged volume. One that strata cannot judge cheaply (a fake host, an unmounted
    /// loop staging) is judged from the mount table, read once.
    pub(super) fn publications(&self, vol: &Volume) -> Result<Vec<Publication>> {
        let Some(s) = &vol.staging else { return Ok(Vec::new()) };
        if vol.marked.is_empty() {
            return Ok(Vec::new());
        }
        let source = self.publication_source(vol, s);
        let mut table = LazyTable::new(self.host.as_ref());
        let mut live = Vec::new();
        for p in &vol.marked {
            if self.shows_volume(&p.target, s, source.as_deref(), &mut table)? {
                live.push(p.clone());
            }
        }
        Ok(live)
    }

    /// The path whose device and inode a publication shows: the loop device node (block), the
    /// data directory (bind backends), or the staging mount (loop filesystem, while mounted).
    fn publication_source(&self, vol: &Volume, s: &Staging) -> Option<PathBuf> {
        match (&s.access, vol.backend) {
            (Access::Block, _) => s.device.clone(),
            (_, Kind::Dir | Kind::Tmpfs | Kind::Btrfs) => Some(self.dir(&vol.id).data()),
            _ => self.host.is_mount_point(&s.path).ok()?.then(|| s.path.clone()),
        }
    }

    fn shows_volume(&self, target: &Path, s: &Staging, source: Option<&Path>, table: &mut LazyTable) -> Result<bool> {
        if let Some(proven) = source.and_then(|src| self.host.same_mount_root(target, src)) {
            return Ok(proven);
        }
        let table = table.get()?;
        Ok(mount_at(table, target).is_some_and(|m| Some(identity(m)) == staged_identity(table, s)))
    }
}

/// What a bind of the staged volume shows in the mount table: the staging mount's device and
/// root (filesystem), or the device node's (block).
fn staged_identity(table: &[MountEntry], s: &Staging) -> Option<(u32, u32, PathBuf)> {
    match (&s.access, &s.device) {
        (Access::Block, Some(device)) => bind_identity(table, device),
        _ => mount_at(table, &s.path).map(identity),
    }
}

fn identity(m: &MountEntry) -> (u32, u32, PathBuf) {
    (m.major, m.minor, m.root.clone())
}
