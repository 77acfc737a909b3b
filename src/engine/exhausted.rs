//! Resource exhaustion (ENOSPC, EDQUOT, EMFILE, ENFILE, ENOMEM) found anywhere in an error, and
//! named after what ran out: the one place that decides an error is a resource error.

use super::{Engine, Error, Result};
use crate::backend::Error as BackendError;
use crate::sys::{Action, Error as HostError};
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
    fn of_errno(errno: Errno) -> Option<Resource> {
        match errno {
            Errno::ENOSPC => Some(Resource::Space),
            Errno::EDQUOT => Some(Resource::Quota),
            Errno::EMFILE => Some(Resource::ProcessFiles),
            Errno::ENFILE => Some(Resource::NodeFiles),
            Errno::ENOMEM => Some(Resource::Memory),
            _ => None,
        }
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
            Error::Exhausted { source, .. } => source.resource(),
            Error::Backend(BackendError::Host(h)) => host_resource(h),
            _ => None,
        }
    }

    /// An I/O error (EIO) of a device or a tool working on one.
    fn is_io_failure(&self) -> bool {
        match self {
            Error::Backend(BackendError::Host(h)) => match h {
                HostError::Tool { detail, .. } => detail.contains("Input/output error"),
                HostError::Os { action: Action::Mount { .. } | Action::Loop(_) | Action::Other(_), errno, .. } => {
                    *errno == Errno::EIO
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// The path the error names, where it names one.
    fn path(&self) -> Option<&Path> {
        match self {
            Error::Backend(BackendError::Host(h)) => h.path(),
            _ => None,
        }
    }
}

fn host_resource(e: &HostError) -> Option<Resource> {
    match e {
        HostError::Tool { detail, .. } => Resource::of_text(detail),
        _ => e.errno().and_then(Resource::of_errno),
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
        if matches!(e, Error::Exhausted { .. }) {
            return e;
        }
        let resource = match e.resource() {
            Some(r) => r,
            // A loop device reports its backing file's ENOSPC as EIO (mkfs: "Input/output error").
            None if e.is_io_failure() && self.root_full() => Resource::Space,
            None => return e,
        };
        let what = match resource {
            Resource::Space | Resource::Quota => self.which_space(resource, e.path().map(Path::to_owned)),
            Resource::ProcessFiles => "too many open files in the strata process (EMFILE)".to_owned(),
            Resource::NodeFiles => "too many open files on the node (ENFILE)".to_owned(),
            Resource::Memory => "out of memory (ENOMEM)".to_owned(),
        };
        Error::Exhausted { what, source: Box::new(e) }
    }

    /// Whether the data root's filesystem has no block or no inode left.
    fn root_full(&self) -> bool {
        self.host
            .statvfs(&self.cfg.root)
            .is_ok_and(|s| s.available_bytes == 0 || (s.total_inodes > 0 && s.free_inodes == 0))
    }

    /// Which filesystem is full: the data root's for its own files (records, node state,
    /// images, locks) and whenever its statvfs shows no room; else the one holding the path
    /// the error names (a tmpfs volume's own mount, a staging or target directory).
    fn which_space(&self, resource: Resource, path: Option<PathBuf>) -> String {
        let root = &self.cfg.root;
        let fs = self.host.statvfs(root).ok();
        let no_inodes = fs.is_some_and(|s| s.total_inodes > 0 && s.free_inodes == 0);
        let root_full = no_inodes || fs.is_some_and(|s| s.available_bytes == 0);
        let in_volume_mount = |p: &Path| {
            let rest = p.strip_prefix(root).ok().map(|r| r.components().collect::<Vec<_>>());
            rest.is_some_and(|r| r.len() > 2 && r[2].as_os_str() == "data")
        };
        let elsewhere = path.filter(|p| !root_full && (!p.starts_with(root) || in_volume_mount(p)));
        let what = match resource {
            Resource::Quota => "disk quota exceeded on",
            _ if no_inodes && elsewhere.is_none() => "out of inodes on",
            _ => "no space left on",
        };
        match elsewhere {
            Some(p) => format!("{what} the filesystem holding {}", p.display()),
            None => format!("{what} the data root's filesystem ({})", root.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(errno: i32) -> Error {
        Error::io("write record", "/r/x")(std::io::Error::from_raw_os_error(errno))
    }

    #[test]
    fn every_exhaustion_errno_is_a_resource_and_others_are_not() {
        assert_eq!(io(libc::ENOSPC).resource(), Some(Resource::Space));
        assert_eq!(io(libc::EDQUOT).resource(), Some(Resource::Quota));
        assert_eq!(io(libc::EMFILE).resource(), Some(Resource::ProcessFiles));
        assert_eq!(io(libc::ENFILE).resource(), Some(Resource::NodeFiles));
        assert_eq!(io(libc::ENOMEM).resource(), Some(Resource::Memory));
        assert_eq!(io(libc::EIO).resource(), None);
        let mount =
            HostError::at(Action::Mount { source: "tmpfs".into(), fstype: "tmpfs".into() }, "/t", Errno::ENOMEM);
        assert_eq!(Error::from(mount).resource(), Some(Resource::Memory));
        let tool = HostError::Tool {
            tool: "mkfs.ext4".into(),
            path: "/dev/loop9".into(),
            detail: "x: No space left on device".into(),
        };
        assert_eq!(Error::from(tool).resource(), Some(Resource::Space));
        assert_eq!(Error::VolumeNotFound("v".into()).resource(), None);
    }

    #[test]
    fn what_ran_out_is_named() {
        use crate::sys::FsStats;
        let f = crate::engine::tests::fixture();
        let root = f.root.display().to_string();
        let at = |p: &Path| Error::io("write", p)(std::io::Error::from_raw_os_error(libc::ENOSPC));
        let msg = |e: Error| f.engine.explain(e).to_string();
        let record = f.root.join("volumes/v/volume.json");
        let in_tmpfs = f.root.join("volumes/v/data/file");
        assert!(msg(at(&record)).starts_with(&format!("no space left on the data root's filesystem ({root}): write")));
        let expect = format!("no space left on the filesystem holding {}", in_tmpfs.display());
        assert!(msg(at(&in_tmpfs)).starts_with(&expect), "{}", msg(at(&in_tmpfs)));
        assert!(msg(at(Path::new("/k/stage"))).starts_with("no space left on the filesystem holding /k/stage"));
        f.host.set_stats(FsStats { total_inodes: 100, free_inodes: 0, available_bytes: 1 << 20, ..FsStats::default() });
        assert!(msg(at(&in_tmpfs)).starts_with(&format!("out of inodes on the data root's filesystem ({root})")));
        let emfile = Error::io("open", record)(std::io::Error::from_raw_os_error(libc::EMFILE));
        assert!(msg(emfile).starts_with("too many open files in the strata process"));
        assert_eq!(msg(Error::VolumeNotFound("v".into())), "volume v does not exist");
    }
}
