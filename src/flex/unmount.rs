//! `unmount <podVolumeDir>`: find which volume is bound there, unbind it, and unstage the
//! volume when no pod uses it any more. A dir that is missing or not mounted is fine.

use super::driver::Driver;
use super::{Reply, Result};
use crate::engine::{self, Volume, validate};
use crate::sys::{MountEntry, mount_at};
use std::path::Path;

/// Stacked mounts removed from a pod dir that no volume claims.
const MAX_STACKED: usize = 8;

pub fn unmount(driver: &Driver, target: &Path) -> Result<Reply> {
    let table = driver.engine.host().mount_table().map_err(engine::Error::from)?;
    let Some(id) = locate(driver, target, &table) else {
        return unmount_unknown(driver, target, &table);
    };
    let _held = driver.hold(&id)?;
    driver.engine.unpublish_volume(&id, target)?;
    let unstaged = release_staging(driver, &id)?;
    Ok(Reply::success(format!(
        "volume {id} unmounted from {}{}",
        target.display(),
        if unstaged { "; no pod uses it now, so it is unstaged" } else { "" }
    )))
}

/// Unstages the volume from the flex staging path if no publication of it is still mounted.
fn release_staging(driver: &Driver, id: &str) -> Result<bool> {
    let engine = &driver.engine;
    if !engine.live_publications(id)?.is_empty() {
        return Ok(false);
    }
    let staging = driver.staging(id);
    let staged_here = engine.get_volume(id)?.and_then(|v| v.staging).is_some_and(|s| s.path == staging);
    if staged_here {
        engine.unstage_volume(id, &staging)?;
    }
    Ok(staged_here)
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
    (staged.major, staged.minor, &staged.root) == (m.major, m.minor, &m.root)
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

/// A pod dir no volume claims: unmount whatever is there (kubelet would do the same had we
/// answered Not supported) and remove the dir if empty. Files are never deleted.
fn unmount_unknown(driver: &Driver, target: &Path, table: &[MountEntry]) -> Result<Reply> {
    let host = driver.engine.host();
    let mut was_mounted = false;
    if mount_at(table, target).is_some() {
        tracing::warn!(target = %target.display(), "no strata volume claims this mount; unmounting it");
        for _ in 0..MAX_STACKED {
            let table = host.mount_table().map_err(engine::Error::from)?;
            if mount_at(&table, target).is_none() {
                break;
            }
            host.unmount(target, false).map_err(engine::Error::from)?;
            was_mounted = true;
        }
    }
    remove_empty_dir(target)?;
    Ok(Reply::success(format!(
        "{} {}; nothing of strata is mounted there now",
        target.display(),
        if was_mounted { "was unmounted" } else { "was not mounted" }
    )))
}

/// Removes an empty dir; a missing one is fine, one holding files is an error (never deleted).
fn remove_empty_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Err(engine::Error::InvalidPath {
            what: "pod volume",
            path: dir.to_owned(),
            reason: "is not mounted but holds files; strata leaves it untouched, remove them by hand".into(),
        }
        .into()),
        Err(e) => Err(engine::Error::Io { what: "remove", path: dir.to_owned(), source: e }.into()),
    }
}
