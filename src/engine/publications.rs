//! Where a staged volume is published: the publications node state records (publish writes each
//! before its bind), each checked against the kernel (one `statx(2)` pair) rather than found by
//! scanning the whole mount table.

use super::kernel::LazyTable;
use super::{Access, Engine, Publication, Result, Staging, Volume};
use crate::sys::mountinfo::Identity;
use crate::sys::{MountEntry, bind_identity, mount_at};
use std::path::Path;

impl Engine {
    /// Where the volume is published now: recorded publications whose target is a mount root
    /// showing the staged volume, and, for a volume staged by a strata that recorded none (its
    /// staging still in the record), the binds of its staging in the mount table. What `stat`
    /// cannot settle (a fake host, a target with mounts stacked on it) the mount table decides,
    /// read at most once.
    pub(super) fn publications(&self, vol: &Volume) -> Result<Vec<Publication>> {
        let Some(s) = &vol.staging else { return Ok(Vec::new()) };
        let mut table = LazyTable::new(self.host.as_ref());
        let mut live = Vec::new();
        let mut lost = false;
        for p in &vol.marked {
            if self.shows_volume(vol, s, &p.target, &mut table)? {
                live.push(p.clone());
            } else {
                lost = true;
            }
        }
        // A recorded publication that its path no longer shows may have been moved (a parent
        // renamed): the kernel decides, by looking for the volume's binds wherever they are now.
        if vol.staging_in_record || lost {
            let found = self.binds_of_volume(vol, s, table.get()?);
            for p in found {
                if !live.iter().any(|m| m.target == p.target) {
                    live.push(p);
                }
            }
        }
        Ok(live)
    }

    /// Whether `target` shows the staged volume: proven with `stat` where it can be, else from
    /// the mount table (any mount at `target`, also one that another mount covers).
    fn shows_volume(&self, vol: &Volume, s: &Staging, target: &Path, table: &mut LazyTable) -> Result<bool> {
        // A recorded target is resolved as a request's would be; one that no longer resolves
        // (a symlink swapped in on the way) is judged by the mount table alone.
        let place = self.node_place_if_any("target", target).ok().flatten();
        let proven = place.as_ref().and_then(|place| self.backend(vol.backend).shows(&self.dir(&vol.id), s, place));
        match (proven, &place) {
            (Some(true), _) => return Ok(true),
            (Some(false), Some(place)) if !self.host.is_mount_point(place)? => return Ok(false),
            _ => {}
        }
        let table = table.get()?;
        let want = staged_identity(table, s, &self.publish_source(vol, s.bind_source()));
        Ok(want.is_some() && table.iter().filter(|m| m.mount_point == target).any(|m| Some(m.identity()) == want))
    }

    /// The mounts that show the staged volume outside its staging path and the data root,
    /// wherever they are now: binds of the staging mount, of the loop device node (block), or
    /// of the data directory itself.
    fn binds_of_volume(&self, vol: &Volume, s: &Staging, table: &[MountEntry]) -> Vec<Publication> {
        let block = matches!(s.access, Access::Block);
        let source = self.publish_source(vol, s.bind_source());
        let mut want: Vec<Identity> = staged_identity(table, s, &source).into_iter().collect();
        if !block && self.backend(vol.backend).binds_data() {
            want.extend(bind_identity(table, &self.dir(&vol.id).data()));
        }
        let root = &self.cfg.root;
        table
            .iter()
            .filter(|m| want.contains(&m.identity()))
            .filter(|m| m.mount_point != s.path && !m.mount_point.starts_with(root))
            .map(|m| Publication { target: m.mount_point.clone(), readonly: m.is_readonly(), block })
            .collect()
    }
}
/// What a bind of the staged volume shows in the mount table: the staging mount's device and
/// root (filesystem), a directory in it (`source`, an encrypted loop volume's), or the device
/// node's (block).
fn staged_identity(table: &[MountEntry], s: &Staging, source: &Path) -> Option<Identity> {
    match &s.access {
        Access::Mount { .. } if source == s.path => mount_at(table, &s.path).map(MountEntry::identity),
        _ => bind_identity(table, source),
    }
}
