//! Root tier: the host reads the mount table again only after a mount or unmount (a test binary
//! of its own: nothing else in it mounts).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use strata::sys::{Host, LinuxHost};

#[test]
fn the_mount_table_is_read_again_only_after_a_mount_or_an_unmount() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = common::Cleanup(dir.path().to_owned());
    let first = LinuxHost.mount_table().unwrap();
    assert!(Arc::ptr_eq(&first, &LinuxHost.mount_table().unwrap()), "nothing changed: the same table");
    let at = dir.path().join("m");
    std::fs::create_dir(&at).unwrap();
    nix::mount::mount(Some("tmpfs"), &at, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=1m")).unwrap();
    let mounted = LinuxHost.mount_table().unwrap();
    assert!(!Arc::ptr_eq(&first, &mounted));
    assert!(mounted.iter().any(|m| m.mount_point == at), "the new mount is in the table read after it");
    assert!(Arc::ptr_eq(&mounted, &LinuxHost.mount_table().unwrap()));
    nix::mount::umount(&at).unwrap();
    let unmounted = LinuxHost.mount_table().unwrap();
    assert!(!unmounted.iter().any(|m| m.mount_point == at), "and gone from the one read after the unmount");
}
