//! Gives `<root>/volumes` a mount of its own. Binding a directory makes the kernel walk every
//! mount under the directory's mount (`has_locked_children`): with the volumes on the node's root
//! filesystem, that is every staging and publication of every pod (0.2 ms per stage at 2,000
//! kubelet mounts here). On a mount of its own the walk covers only strata's tmpfs volumes.
//!
//! Only where the root's mount is private. A shared one (a DaemonSet's Bidirectional hostPath,
//! or `/` under systemd) carries strata's tmpfs mounts to the host and to later containers; a
//! private bind would cut them off, and a container restart would then lose them. A hostPath is
//! a mount of its own already, so the walk is short there anyway.

use super::{Engine, Result};
use std::path::PathBuf;

/// What [`Engine::isolate_volumes`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// `<root>/volumes` was bound onto itself and made private.
    Done,
    /// It already is a mount (an earlier start, or a disk of its own).
    Already,
    /// Something is mounted below it (a tmpfs volume from before this start); a bind now would
    /// hide it, so the volumes stay where they are.
    Skipped(PathBuf),
    /// The mount holding it propagates to peers (the path is that mount's); the volumes stay.
    Shared(PathBuf),
    /// This process may not mount (a controller-only server without privileges).
    NotPermitted,
}

impl Engine {
    /// Binds `<root>/volumes` onto itself, private (no propagation to or from peers), unless it
    /// already is a mount, holds mounts, or lies on a shared mount. Called once at start, before
    /// reconcile.
    pub fn isolate_volumes(&self) -> Result<Isolation> {
        let volumes = self.config().root.join("volumes");
        let place = crate::sys::place_at(&volumes)?;
        if self.host.is_mount_point(&place)? {
            return Ok(Isolation::Already);
        }
        let table = self.host.mount_table()?;
        if let Some(m) = table.iter().find(|m| m.mount_point.starts_with(&volumes)) {
            return Ok(Isolation::Skipped(m.mount_point.clone()));
        }
        let holder = table.iter().rev().filter(|m| volumes.starts_with(&m.mount_point));
        if let Some(m) = holder.max_by_key(|m| m.mount_point.components().count()).filter(|m| m.shared) {
            return Ok(Isolation::Shared(m.mount_point.clone()));
        }
        match self.host.bind_mount(&volumes, &place, &crate::sys::MountOptions::default()) {
            Err(crate::sys::Error::Os {
                action: crate::sys::Action::Bind { .. },
                errno: nix::errno::Errno::EPERM,
                ..
            }) => {
                return Ok(Isolation::NotPermitted);
            }
            other => other?,
        }
        if let Err(e) = self.host.make_private(&place) {
            crate::undo::log("a failed isolation: unmount", self.host.unmount(&place, false));
            return Err(e.into());
        }
        Ok(Isolation::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fixture, req};
    use super::*;
    use crate::backend::Kind;
    use crate::sys::Call;

    #[test]
    fn binds_the_volumes_onto_themselves_once_and_private() {
        let f = fixture();
        let volumes = f.root.join("volumes");
        f.host.clear_calls();
        assert_eq!(f.engine.isolate_volumes().unwrap(), Isolation::Done);
        let bind = Call::Bind { source: volumes.clone(), target: volumes.clone(), readonly: false, options: vec![] };
        assert_eq!(f.host.calls(), vec![bind, Call::MakePrivate { target: volumes }]);
        f.host.clear_calls();
        assert_eq!(f.engine.isolate_volumes().unwrap(), Isolation::Already);
        assert!(f.host.calls().is_empty());
    }

    #[test]
    fn a_mount_below_the_volumes_keeps_them_in_place() {
        let f = fixture();
        f.engine.create_volume(&req("t", Kind::Tmpfs, 1 << 20)).unwrap();
        f.host.clear_calls();
        let data = f.root.join("volumes/t/data");
        assert_eq!(f.engine.isolate_volumes().unwrap(), Isolation::Skipped(data));
        assert!(f.host.calls().is_empty());
    }

    #[test]
    fn a_bind_not_permitted_is_reported_as_such_and_mounts_nothing() {
        let f = fixture();
        f.host.fail_with("Bind", libc::EPERM);
        assert_eq!(f.engine.isolate_volumes().unwrap(), Isolation::NotPermitted);
        assert!(f.host.mounts_beyond_root().is_empty());
        f.host.fail_with("Bind", libc::EIO);
        assert!(f.engine.isolate_volumes().is_err(), "any other failure is an error");
    }

    #[test]
    fn a_failed_make_private_undoes_the_bind() {
        let f = fixture();
        f.host.fail("MakePrivate");
        assert!(f.engine.isolate_volumes().is_err());
        assert!(f.host.mounts_beyond_root().is_empty());
    }
}
