//! The engine's door for node paths: a staging or target path from a request becomes a
//! [`Place`] once (checked shape, resolved beneath its prefix, never through a symlink), and
//! targets are made, recognised and removed only through that handle.

use super::{Engine, Error, Result, validate};
use crate::sys::{Place, PlaceError, PlaceKind};
use std::path::Path;

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
}

fn invalid(what: &'static str, path: &Path, reason: &str) -> Error {
    Error::InvalidPath { what, path: path.to_owned(), reason: reason.to_owned() }
}

/// Makes the directory a filesystem is staged or published on; true if this call made it.
/// Looked at first: kubelet makes its staging directories itself, so one is usually there.
pub(super) fn make_dir(place: &Place) -> Result<bool> {
    let there = place.stat().map_err(Error::io("stat", place.path()))?;
    if there.is_some_and(|st| st.kind == crate::sys::PlaceKind::Dir) {
        return Ok(false);
    }
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
