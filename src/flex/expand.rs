//! `expandvolume` and `expandfs`: grow the volume (and, where it is staged, its filesystem).

use super::driver::Driver;
use super::options::Options;
use super::{Error, Reply, Result};

/// Grows the volume the options name to `new_bytes`. Both commands do the same: the engine
/// grows the storage, and the filesystem too where the volume is staged; a repeat is a no-op.
pub fn expand(driver: &Driver, opts: &Options, new_bytes: u64) -> Result<Reply> {
    if driver.engine.get_volume(&opts.id)?.is_none() {
        return Err(Error::NoSuchVolume { id: opts.id.clone() });
    }
    let _held = driver.hold(&opts.id)?;
    let now = driver.engine.expand_volume(&opts.id, new_bytes)?;
    Ok(Reply::success(format!("volume {} has {now} bytes", opts.id)))
}
