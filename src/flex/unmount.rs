//! `unmount <podVolumeDir>`: find which volume is bound there, unbind it, and unstage the
//! volume when no pod uses it any more. A dir that is missing or not mounted is fine.

use super::driver::Driver;
use super::{Reply, Result};
use crate::engine::{self, Volume, validate};
use crate::sys::{MountEntry, mount_at};
use std::path::Path;

pub fn unmount(driver: &Driver, target: &Path) -> Result<Reply> {
    let found = match recorded_at(driver, target) {
        Some(id) => Some(id),
        None => locate(driver, target, &driver.engine.host().mount_table().map_err(engine::Error::from)?),
    };
    let Some(id) = found else {
        let reply = unmount_unknown(driver, target)?;
        // The retry of an unmount killed between its unbind and its unstage: the pod dir names
        // the volume; finish the unstage if nothing uses the staging any more.
        if let Some(id) = target.file_name().and_then(|n| n.to_str()).filter(|id| load(driver, id).is_some()) {
            let _held = driver.hold(id)?;
            if release_staging(driver, id)? {
                tracing::info!(id, "finished the unstage of an unmount cut short");
            }
        }
        return Ok(reply);
    };
    let _held = driver.hold(&id)?;
    driver.engine.unpublish_volume(&id, target)?;
    crate::engine::crashpoint::hit("flex-unmount:unbound");
    let unstaged = release_staging(driver, &id)?;
    Ok(Reply::success(format!(
        "volume {id} unmounted from {}{}",
        target.display(),
        if unstaged { "; no pod uses it now, so it is unstaged" } else { "" }
    )))
}

/// Unstages the volume from the flex staging path if no pod uses it any more: neither a
/// publication in its record nor (should the record have lost one) another bind of the staging
/// under the kubelet dir, seen in the mount table.
fn release_staging(driver: &Driver, id: &str) -> Result<bool> {
    let engine = &driver.engine;
    if !engine.live_publications(id)?.is_empty() {
        return Ok(false);
    }
    let staging = driver.staging(id);
    let staged_here = engine.get_volume(id)?.and_then(|v| v.staging).is_some_and(|s| s.path == staging);
    if !staged_here {
        return Ok(false);
    }
    let table = engine.host().mount_table().map_err(engine::Error::from)?;
    if let Some(user) = unrecorded_user(&table, &staging, &driver.cfg.kubelet_dir) {
        tracing::warn!(id, user = %user.display(), "the record lacks this publication; keeping the staging");
        return Ok(false);
    }
    engine.unstage_volume(id, &staging)?;
    Ok(true)
}

/// A mount under `kubelet_dir` showing the same filesystem and subtree as the staging mount.
fn unrecorded_user<'a>(table: &'a [MountEntry], staging: &Path, kubelet_dir: &Path) -> Option<&'a Path> {
    let s = mount_at(table, staging)?;
    table
        .iter()
        .filter(|m| m.mount_point.starts_with(kubelet_dir) && m.mount_point != staging)
        .find(|m| m.identity() == s.identity())
        .map(|m| m.mount_point.as_path())
}

/// The volume the pod dir is named after (kubelet uses the PV or volume name), if its record
/// lists `target` as a live publication: the usual unmount, decided without the mount table (the
/// publications are proven by `statx` where they can be).
fn recorded_at(driver: &Driver, target: &Path) -> Option<String> {
    let vol = target.file_name().and_then(|n| n.to_str()).and_then(|id| load(driver, id))?;
    vol.publications.iter().any(|p| p.target == target).then_some(vol.id)
}

/// The volume whose record lists `target` as a publication, or whose staging is the mount
/// bound at `target`. The dir's name (kubelet uses the PV or volume name) is tried first.
fn locate(driver: &Driver, target: &Path, table: &[MountEntry]) -> Option<String> {
    let bound = mount_at(table, target);
    let claims = |v: &Volume| {
        v.publications.iter().any(|p| p.target == target) || bound.is_some_and(|m| same_mount(table, v, m))
    };
    let guess = target.file_name().and_then(|n| n.to_str());
    if let Some(vol) = guess.and_then(|id| load(driver, id)) {
        if claims(&vol) {
            return Some(vol.id);
        }
    }
    let ids = volume_ids(driver);
    ids.into_iter()
        .filter(|id| Some(id.as_str()) != guess)
        .filter_map(|id| load(driver, &id))
        .find(|v| claims(v))
        .map(|v| v.id)
}

/// Whether mount `m` shows the same filesystem and subtree as the volume's staging mount.
fn same_mount(table: &[MountEntry], vol: &Volume, m: &MountEntry) -> bool {
    let Some(staged) = vol.staging.as_ref().and_then(|s| mount_at(table, &s.path)) else {
        return false;
    };
    staged.identity() == m.identity()
}

/// A record, or `None` when it is missing or unreadable (logged: one bad record must not
/// stop every unmount on the node).
fn load(driver: &Driver, id: &str) -> Option<Volume> {
    validate::id("volume", id).ok()?;
    match driver.engine.get_volume(id) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(id, error = %e, "skipping an unreadable volume record");
            None
        }
    }
}

fn volume_ids(driver: &Driver) -> Vec<String> {
    let dir = driver.engine.config().root.join("volumes");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect()
}

/// A pod dir no volume claims: nothing of strata's is there. An empty dir is removed; a mount
/// there (another driver's, or one strata cannot prove its own) is left alone with a Failure
/// that names it, and files are never deleted.
fn unmount_unknown(driver: &Driver, target: &Path) -> Result<Reply> {
    driver.engine.clear_target(target)?;
    Ok(Reply::success(format!("{} holds no strata volume; nothing is mounted there now", target.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::mountinfo;

    /// A dir volume staged under the root and bound into two pods, plus an unrelated bind.
    const TABLE: &str = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
42 27 254:0 /srv/strata/volumes/pv1/data /srv/strata/staging/pv1 rw,relatime - ext4 /dev/vda rw
43 27 254:0 /srv/strata/volumes/pv1/data /var/lib/kubelet/pods/a/volumes/strata~flex/pv1 rw - ext4 /dev/vda rw
44 27 254:0 /srv/strata/volumes/pv2/data /var/lib/kubelet/pods/b/volumes/strata~flex/pv1 rw - ext4 /dev/vda rw
45 27 7:3 / /srv/strata/staging/pv3 rw - xfs /dev/loop3 rw,nouuid
46 27 7:3 / /var/lib/kubelet/pods/c/volumes/strata~flex/x rw - xfs /dev/loop3 rw,nouuid";

    fn volume(id: &str, staged: bool) -> Volume {
        let staging = staged
            .then(|| serde_json::json!({"path": format!("/srv/strata/staging/{id}"), "access": {"type": "mount"}}));
        serde_json::from_value(serde_json::json!({
            "format": 1, "id": id, "name": id, "backend": "dir", "capacity": 1, "created_unix": 0,
            "staging": staging,
        }))
        .expect("volume fixture")
    }

    fn bound<'a>(table: &'a [MountEntry], target: &str) -> &'a MountEntry {
        mount_at(table, Path::new(target)).expect("fixture mount")
    }

    #[test]
    fn a_pod_bind_matches_the_staging_of_its_volume_only() {
        let table = mountinfo::parse(TABLE);
        let pod_a = bound(&table, "/var/lib/kubelet/pods/a/volumes/strata~flex/pv1");
        assert!(same_mount(&table, &volume("pv1", true), pod_a));
        // Same device, other subtree: not this volume, whatever the dir is called.
        let pod_b = bound(&table, "/var/lib/kubelet/pods/b/volumes/strata~flex/pv1");
        assert!(!same_mount(&table, &volume("pv1", true), pod_b));
        // A loop volume: same device numbers and root as its staging mount.
        let pod_c = bound(&table, "/var/lib/kubelet/pods/c/volumes/strata~flex/x");
        assert!(same_mount(&table, &volume("pv3", true), pod_c));
        assert!(!same_mount(&table, &volume("pv1", true), pod_c));
    }

    #[test]
    fn a_bind_of_the_staging_under_the_kubelet_dir_is_a_user() {
        let table = mountinfo::parse(TABLE);
        let kubelet = Path::new("/var/lib/kubelet");
        let user = unrecorded_user(&table, Path::new("/srv/strata/staging/pv1"), kubelet);
        assert_eq!(user, Some(Path::new("/var/lib/kubelet/pods/a/volumes/strata~flex/pv1")));
        assert_eq!(unrecorded_user(&table, Path::new("/srv/strata/staging/pv1"), Path::new("/elsewhere")), None);
        assert_eq!(unrecorded_user(&table, Path::new("/srv/strata/staging/none"), kubelet), None);
    }

    #[test]
    fn an_unstaged_volume_claims_no_mount() {
        let table = mountinfo::parse(TABLE);
        let pod_a = bound(&table, "/var/lib/kubelet/pods/a/volumes/strata~flex/pv1");
        assert!(!same_mount(&table, &volume("pv1", false), pod_a));
    }
}
