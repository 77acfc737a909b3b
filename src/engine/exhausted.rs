//! Resource exhaustion (ENOSPC, EDQUOT, EMFILE, ENFILE, ENOMEM) found anywhere in an error, and
//! named after what ran out: the one place that decides an error is a resource error.

use super::{Engine, Error, Result};
use crate::backend::Error as BackendError;
use crate::sys::{Error as HostError, PlaceError};
use nix::errno::Errno;
use std::path::{Path, PathBuf};

/// What ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// ENOSPC: blocks or inodes of a filesystem.
    Space,
    /// EDQUOT: a disk quota.
    Quota,
    /// EMFILE: this process's open files.
    ProcessFiles,
    /// ENFILE: the node's open files.
    NodeFiles,
    /// ENOMEM: memory.
    Memory,
}

impl Resource {
    fn of_errno(errno: i32) -> Option<Resource> {
        match Errno::from_raw(errno) {
            Errno::ENOSPC => Some(Resource::Space),
            Errno::EDQUOT => Some(Resource::Quota),
            Errno::EMFILE => Some(Resource::ProcessFiles),
            Errno::ENFILE => Some(Resource::NodeFiles),
            Errno::ENOMEM => Some(Resource::Memory),
            _ => None,
        }
    }

    fn of_io(e: &std::io::Error) -> Option<Resource> {
        e.raw_os_error().and_then(Resource::of_errno)
    }

    /// A tool's output that says what ran out (mkfs, resize2fs: their own wording is strerror's).
    fn of_text(text: &str) -> Option<Resource> {
        [
            ("No space left on device", Resource::Space),
            ("Disk quota exceeded", Resource::Quota),
            ("Cannot allocate memory", Resource::Memory),
        ]
        .into_iter()
        .find_map(|(words, r)| text.contains(words).then_some(r))
    }
}

impl Error {
    /// The resource whose exhaustion caused this error, if one did.
    pub fn resource(&self) -> Option<Resource> {
        match self {
            Error::Io { source, .. } => Resource::of_io(source),
            Error::Exhausted { source, .. } => source.resource(),
            Error::Backend(BackendError::Io { source, .. }) => Resource::of_io(source),
            Error::Backend(BackendError::Host(h)) => host_resource(h),
            _ => None,
        }
    }

    /// The path the error names, where it names one.
    fn path(&self) -> Option<&Path> {
        match self {
            Error::Io { path, .. } | Error::Backend(BackendError::Io { path, .. }) => Some(path),
            Error::Backend(BackendError::Host(h)) => host_path(h),
            _ => None,
        }
    }
}

fn host_resource(e: &HostError) -> Option<Resource> {
    match e {
        HostError::Bind { errno, .. }
        | HostError::Mount { errno, .. }
        | HostError::Remount { errno, .. }
        | HostError::Unmount { errno, .. }
        | HostError::Statvfs { errno, .. } => Resource::of_errno(*errno as i32),
        HostError::MountTable(source)
        | HostError::Loop { source, .. }
        | HostError::ToolSpawn { source, .. }
        | HostError::Copy { source, .. }
        | HostError::Io { source, .. }
        | HostError::Place { source: PlaceError::Io { source, .. }, .. } => Resource::of_io(source),
        HostError::Tool { detail, .. } => Resource::of_text(detail),
        HostError::Place { .. } => None,
    }
}

fn host_path(e: &HostError) -> Option<&Path> {
    match e {
        HostError::Bind { target, .. } | HostError::Mount { target, .. } | HostError::Remount { target, .. } => {
            Some(target)
        }
        HostError::Loop { path, .. }
        | HostError::Tool { path, .. }
        | HostError::Statvfs { path, .. }
        | HostError::Io { path, .. }
        | HostError::Place { path, .. } => Some(path),
        HostError::Copy { to, .. } => Some(to),
        _ => None,
    }
}

impl Engine {
    /// `result` with a resource error named after what ran out (see [`Engine::explain`]).
    pub(super) fn named<T>(&self, result: Result<T>) -> Result<T> {
        result.map_err(|e| self.explain(e))
    }

    /// A resource error becomes [`Error::Exhausted`] saying what ran out: the data root's
    /// blocks or inodes (judged from its statvfs), another filesystem's space, open files or
    /// memory. Other errors are returned as they are.
    pub fn explain(&self, e: Error) -> Error {
        let Some(resource) = e.resource().filter(|_| !matches!(e, Error::Exhausted { .. })) else { return e };
        let what = match resource {
            Resource::Space | Resource::Quota => self.which_space(resource, e.path().map(Path::to_owned)),
            Resource::ProcessFiles => "too many open files in the strata process (EMFILE)".to_owned(),
            Resource::NodeFiles => "too many open files on the node (ENFILE)".to_owned(),
            Resource::Memory => "out of memory (ENOMEM)".to_owned(),
        };
        Error::Exhausted { what, source: Box::new(e) }
    }

    /// Which filesystem is full: the data root's when its statvfs shows no room (blocks or
    /// inodes), else the one holding the path the error names.
    fn which_space(&self, resource: Resource, path: Option<PathBuf>) -> String {
        let root = &self.cfg.root;
        let quota = resource == Resource::Quota;
        let fs = self.host.statvfs(root).ok();
        let no_inodes = fs.is_some_and(|s| s.total_inodes > 0 && s.free_inodes == 0);
        let no_blocks = fs.is_some_and(|s| s.available_bytes == 0);
        let elsewhere = path.filter(|p| !p.starts_with(root) || !(no_inodes || no_blocks || quota));
        match (elsewhere, quota, no_inodes) {
            (Some(p), true, _) => format!("disk quota exceeded on the filesystem holding {}", p.display()),
            (Some(p), false, _) => format!("no space left on the filesystem holding {}", p.display()),
            (None, true, _) => format!("disk quota exceeded on the data root's filesystem ({})", root.display()),
            (None, false, true) => format!("out of inodes on the data root's filesystem ({})", root.display()),
            (None, false, false) => format!("no space left on the data root's filesystem ({})", root.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(errno: i32) -> Error {
        Error::Io { what: "write record", path: "/r/x".into(), source: std::io::Error::from_raw_os_error(errno) }
    }

    #[test]
    fn every_exhaustion_errno_is_a_resource_and_others_are_not() {
        assert_eq!(io(libc::ENOSPC).resource(), Some(Resource::Space));
        assert_eq!(io(libc::EDQUOT).resource(), Some(Resource::Quota));
        assert_eq!(io(libc::EMFILE).resource(), Some(Resource::ProcessFiles));
        assert_eq!(io(libc::ENFILE).resource(), Some(Resource::NodeFiles));
        assert_eq!(io(libc::ENOMEM).resource(), Some(Resource::Memory));
        assert_eq!(io(libc::EIO).resource(), None);
        let mount = HostError::Mount {
            source_path: "tmpfs".into(),
            target: "/t".into(),
            fstype: "tmpfs".into(),
            errno: Errno::ENOMEM,
        };
        assert_eq!(Error::from(mount).resource(), Some(Resource::Memory));
        let tool = HostError::Tool {
            tool: "mkfs.ext4".into(),
            path: "/dev/loop9".into(),
            detail: "x: No space left on device".into(),
        };
        assert_eq!(Error::from(tool).resource(), Some(Resource::Space));
        assert_eq!(Error::VolumeNotFound("v".into()).resource(), None);
    }
}
