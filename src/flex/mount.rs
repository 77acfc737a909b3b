//! `mount <podVolumeDir> <json>`: find or create the volume, stage it once per node, bind it
//! into the pod.

use super::driver::Driver;
use super::options::Options;
use super::{Error, Reply, Result};
use crate::engine::Access;
use std::path::Path;

/// Mounts the volume named by `opts` at `target`; undoes what this call did if a step fails.
pub fn mount(driver: &Driver, target: &Path, opts: &Options) -> Result<Reply> {
    driver.existing(opts)?; // a volumeID naming nothing fails before any lock file is made
    let _held = driver.hold(&opts.id)?;
    let (vol, created) = driver.find_or_create(opts)?;
    let staging = driver.staging(&vol.id);
    let access = Access::Mount { flags: opts.mount_flags.clone() };
    let engine = &driver.engine;
    let key = super::encryption::stage_key(&opts.secrets);
    if let Err(e) = engine.stage_volume_keyed(&vol.id, &staging, &access, &key, &|_| Ok(())) {
        if created {
            crate::undo::log("a failed stage: delete the new volume", engine.delete_volume(&vol.id));
        }
        return Err(staged_elsewhere(driver, &vol.id, &staging).unwrap_or(e.into()));
    }
    if let Err(e) = engine.publish_volume(&vol.id, &staging, target, opts.readonly) {
        roll_back(driver, &vol.id, created);
        return Err(e.into());
    }
    if let Some(gid) = opts.fs_group {
        tracing::debug!(gid, "fsGroup is applied by kubelet (init reports fsGroup: true)");
    }
    Ok(Reply::success(format!(
        "volume {} ({}, {}) mounted {} at {}",
        vol.id,
        vol.backend.as_str(),
        crate::quantity::with_bytes(vol.capacity),
        if opts.readonly { "read-only" } else { "read-write" },
        target.display()
    )))
}

/// A volume staged at another path than FlexVolume's was staged by the CSI driver (CSI pods
/// use it): the reason a FlexVolume mount cannot stage it, with the place.
fn staged_elsewhere(driver: &Driver, id: &str, flex_staging: &Path) -> Option<Error> {
    let staging = driver.engine.volume_record(id).ok()??.staging?;
    (staging.path != flex_staging).then(|| Error::StagedByCsi { id: id.to_owned(), path: staging.path })
}

/// After a failed publish: unstage if nothing else uses the staging, delete a volume this call
/// made. Errors here are logged; the publish error is the one kubelet sees.
fn roll_back(driver: &Driver, id: &str, created: bool) {
    let engine = &driver.engine;
    let unused = engine.live_publications(id).is_ok_and(|p| p.is_empty());
    if unused {
        crate::undo::log("a failed publish: unstage", engine.unstage_volume(id, &driver.staging(id)));
        if created {
            crate::undo::log("a failed publish: delete the new volume", engine.delete_volume(id));
        }
    }
}
