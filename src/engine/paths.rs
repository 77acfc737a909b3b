//! The engine's door for node paths: a staging or target path from a request becomes a
//! [`Place`] once (checked shape, resolved beneath its prefix, never through a symlink), and
//! targets are made, recognised and removed only through that handle.

use super::{Engine, Error, Result, Volume, validate};
use crate::sys::{MountEntry, Place, PlaceError, PlaceKind, bind_identity, loop_for, mount_at};
use std::path::{Path, PathBuf};

/// Mode of the staging and target directories strata makes (kubelet makes its own 0750).
const DIR_MODE: u32 = 0o750;
/// Mode of the empty file a raw block publication is bound onto.
const FILE_MODE: u32 = 0o600;

impl Engine {
    /// Resolves a request's `path` into a handle; a missing parent, a symlink on the way or as
    /// the final name, and any malformed path are [`Error::InvalidPath`].
    pub(super) fn node_place(&self, what: &'static str, path: &Path) -> Result<Place> {
        self.node_place_if_any(what, path)?.ok_or_else(|| invalid(what, path, "its parent directory does not exist"))
    }

    /// [`Engine::node_place`], with `None` when the parent directory does not exist (so nothing
    /// is there to unmount or remove).
    pub(super) fn node_place_if_any(&self, what: &'static str, path: &Path) -> Result<Option<Place>> {
        let (prefixes, real) = &self.node_prefixes;
        let prefix = validate::prefix_of(what, path, prefixes, real)?;
        let place = match Place::beneath(prefix, path) {
            Ok(place) => place,
            Err(PlaceError::ParentMissing) => return Ok(None),
            Err(PlaceError::Io { what: action, errno }) => return Err(Error::io(action, path)(errno.into())),
            Err(e) => return Err(invalid(what, path, &e.to_string())),
        };
        match place.stat() {
            Ok(Some(st)) if st.kind == PlaceKind::Symlink => {
                Err(invalid(what, path, "is a symlink; strata never mounts onto or through one"))
            }
            Ok(_) => Ok(Some(place)),
            Err(e) => Err(Error::io("stat", path)(e)),
        }
    }

    /// Whether the topmost mount at `place` is one of this volume's: a bind of its data
    /// directory (dir, btrfs, tmpfs), its loop device's filesystem, or its device node (block).
    /// Decided by `statx` where it can be, else by the mount table; a volume that strata does
    /// not know owns nothing.
    pub(super) fn owns_mount(&self, id: &str, vol: Option<&Volume>, place: &Place) -> Result<bool> {
        let data = self.dir(id).data();
        let device = self.device_of(id, vol)?;
        let mut proofs = vec![self.host.same_mount_root(place, &data)];
        if let Some(dev) = &device {
            proofs.push(self.host.mounted_from(place, dev));
            proofs.push(self.host.same_mount_root(place, dev));
        }
        if proofs.contains(&Some(true)) {
            return Ok(true);
        }
        if proofs.iter().all(Option::is_some) {
            return Ok(false);
        }
        let table = self.host.mount_table()?;
        let Some(m) = mount_at(&table, place.path()) else { return Ok(false) };
        let from_device = device.as_ref().is_some_and(|d| Path::new(&m.source) == d.as_path());
        Ok(from_device || shows(&table, &data, m) || device.as_ref().is_some_and(|d| shows(&table, d, m)))
    }

    /// The loop device of a volume: the one its node state names, else the one the kernel shows
    /// attached to its image.
    pub(super) fn device_of(&self, id: &str, vol: Option<&Volume>) -> Result<Option<PathBuf>> {
        let image = self.dir(id).image();
        let recorded = vol.and_then(|v| v.staging.as_ref()).and_then(|s| s.device.clone());
        if !image.exists() {
            // The image was unlinked under a live device: only the kernel's name for it is left.
            // No image and no recorded device (every dir, btrfs and tmpfs volume): no device.
            if recorded.is_none() {
                return Ok(None);
            }
            let loops = self.host.loop_list()?;
            return Ok(recorded.filter(|d| loops.iter().any(|l| l.device == *d && l.backing_file == image)));
        }
        if let Some(dev) = recorded {
            if self.host.loop_backs(&dev, &image)? {
                return Ok(Some(dev));
            }
        }
        Ok(loop_for(&self.host.loop_list()?, &image).map(|l| l.device.clone()))
    }

    /// What holds the topmost mount at `place`, for a message.
    pub(super) fn mount_source(&self, place: &Place) -> String {
        let table = self.host.mount_table().unwrap_or_default();
        mount_at(&table, place.path()).map_or("unknown".to_owned(), |m| format!("{} ({})", m.source, m.fs_type))
    }
}

/// Whether mount `m` is a bind of `source` (same device and subtree).
pub(super) fn shows(table: &[MountEntry], source: &Path, m: &MountEntry) -> bool {
    let want = match mount_at(table, source) {
        Some(s) => Some(s.identity()),
        None => bind_identity(table, source),
    };
    want == Some(m.identity())
}

fn invalid(what: &'static str, path: &Path, reason: &str) -> Error {
    Error::InvalidPath { what, path: path.to_owned(), reason: reason.to_owned() }
}

/// Makes the directory a filesystem is staged or published on; true if this call made it.
pub(super) fn make_dir(place: &Place) -> Result<bool> {
    place.mkdir(DIR_MODE).map_err(Error::io("create directory", place.path()))
}

/// Makes the target: a directory, or an empty file for block access; true if this call made it.
pub(super) fn make_target(place: &Place, block: bool) -> Result<bool> {
    let made = if block { place.create_file(FILE_MODE) } else { place.mkdir(DIR_MODE) };
    made.map_err(Error::io("create target", place.path()))
}

/// Removes an unmounted target: an empty directory or an empty file. Anything holding data is
/// left in place with an error, never deleted; a symlink there is left alone.
pub(super) fn remove_target(place: &Place) -> Result<()> {
    let st = place.stat().map_err(Error::io("stat target", place.path()))?;
    let Some(st) = st else { return Ok(()) };
    let refuse = |reason: &str| Err(invalid("target", place.path(), reason));
    match st.kind {
        PlaceKind::Dir => remove_empty(place),
        PlaceKind::File => {
            let empty = place.open_path().and_then(|fd| Ok(rustix::fs::fstat(&fd)?.st_size == 0));
            match empty {
                Ok(true) => place.remove_file().map_err(Error::io("remove target", place.path())),
                Ok(false) => refuse("is an unmounted file with data in it; not removing it"),
                Err(e) => Err(Error::io("stat target", place.path())(e)),
            }
        }
        PlaceKind::Symlink | PlaceKind::Other => refuse("is neither a directory nor a file; leaving it untouched"),
    }
}

/// Removes an empty directory; a missing one is fine, one holding files is an error.
pub(super) fn remove_empty(place: &Place) -> Result<()> {
    match place.remove_dir() {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {
            Err(invalid("target", place.path(), "is not mounted but holds files; leaving it untouched"))
        }
        Err(e) => Err(Error::io("remove", place.path())(e)),
    }
}
