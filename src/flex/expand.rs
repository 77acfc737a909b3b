//! Expansion, in two halves, as kube-controller-manager and kubelet call it.
//!
//! `expandvolume` runs on kube-controller-manager's host, which rarely holds a node-local
//! volume; a Failure there would stop the resize before kubelet's `expandfs` ever runs on the
//! volume's node. So it never looks at local state (as CSI's ControllerExpandVolume): it checks
//! its arguments and answers Success. `expandfs` runs on the volume's node and does the work:
//! the engine grows the storage (loop file and device, qgroup, tmpfs size), and the filesystem
//! too where the volume is staged (else at its next stage); a repeat is a no-op.

use super::driver::Driver;
use super::options::Options;
use super::{Error, Reply, Result};
use crate::engine::size;

/// `expandvolume`: nothing to do on this host, whether or not it holds the volume.
pub fn expand_volume(opts: &Options, new_bytes: u64) -> Reply {
    Reply::success(format!(
        "volume {}: nothing to do on this host for {}; the volume lives on one node, where kubelet's \
         expandfs grows its storage and filesystem",
        opts.id,
        crate::quantity::with_bytes(new_bytes)
    ))
}

/// `expandfs`: grows the volume the options name to `new_bytes` (aligned by the engine's size
/// policy), storage and filesystem.
pub fn expand_fs(driver: &Driver, opts: &Options, new_bytes: u64) -> Result<Reply> {
    let Some(vol) = driver.engine.get_volume(&opts.id)? else {
        return Err(Error::NotOnThisNode { id: opts.id.clone() });
    };
    let _held = driver.hold(&opts.id)?;
    let now = driver.engine.expand_volume(&opts.id, size::for_growth(vol.backend, new_bytes, 0))?;
    let fs =
        if vol.staging.is_some() { "its filesystem grew to fit" } else { "its filesystem grows at the next mount" };
    Ok(Reply::success(format!("volume {} has {}; {fs}", opts.id, crate::quantity::with_bytes(now))))
}
