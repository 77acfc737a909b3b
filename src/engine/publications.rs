//! Where a staged volume is published: the markers publish leaves, each checked against the
//! kernel (one `statx(2)` pair) rather than found by scanning the whole mount table.

use super::node::LazyTable;
use super::{Access, Engine, Publication, Result, Staging, Volume, state};
use crate::backend::Kind;
use crate::sys::{MountEntry, bind_identity, mount_at};
use std::path::{Path, PathBuf};

/// The markers of a volume, sorted into those whose target still shows it and stale ones.
#[derive(Debug, Default)]
pub(super) struct Checked {
    pub live: Vec<Publication>,
    /// Marker files whose target no longer shows the volume (unmounted, or something else).
    pub stale: Vec<PathBuf>,
}

impl Engine {
    /// Where the volume is published now: markers whose target is a mount root showing the
    /// staged volume. A marker strata cannot judge cheaply (a fake host, an unmounted loop
    /// staging) is judged from the mount table, read once.
    pub(super) fn check_publications(&self, vol: &Volume) -> Result<Checked> {
        let markers = state::markers(&self.dir(&vol.id))?;
        let mut out = Checked::default();
        if markers.is_empty() {
            return Ok(out);
        }
        let source = vol.staging.as_ref().and_then(|s| self.publication_source(vol, s));
        let mut table = LazyTable::new(self.host.as_ref());
        for (file, publication) in markers {
            let live = match (&vol.staging, &publication) {
                (Some(s), Some(p)) => self.shows_volume(&p.target, s, source.as_deref(), &mut table)?,
                _ => false,
            };
            match publication {
                Some(p) if live => out.live.push(p),
                _ => out.stale.push(file),
            }
        }
        Ok(out)
    }

    /// [`Engine::check_publications`]'s live publications.
    pub(super) fn publications(&self, vol: &Volume) -> Result<Vec<Publication>> {
        Ok(self.check_publications(vol)?.live)
    }

    /// Removes stale markers; the caller holds the volume's lock.
    pub(super) fn drop_stale(&self, checked: &Checked) -> Result<()> {
        checked.stale.iter().try_for_each(|f| state::remove_if_present(f))
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
