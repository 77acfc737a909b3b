//! Root tier: `statx` answers about real mounts the way the mount table does (the engine's
//! cheap checks on the publish and unpublish paths rely on it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use nix::mount::{MntFlags, MsFlags};
use strata::sys::{Host, LinuxHost, mount_at, place_at};

#[test]
fn a_bind_mount_shows_its_source_directory() {
    assert!(nix::unistd::geteuid().is_root(), "this test bind-mounts: run it as root (CI does)");
    let dir = tempfile::tempdir().unwrap();
    let (data, other, staging) = (dir.path().join("data"), dir.path().join("other"), dir.path().join("staging"));
    for d in [&data, &other, &staging] {
        std::fs::create_dir(d).unwrap();
    }
    let host = LinuxHost;
    let staging_dir = staging.clone();
    let staging = place_at(&staging_dir).unwrap();
    assert!(!host.is_mount_point(&staging).unwrap());
    assert_eq!(host.same_mount_root(&staging, &data), Some(false));
    nix::mount::mount(Some(&data), &staging_dir, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
    let seen = (
        host.is_mount_point(&staging).ok(),
        host.same_mount_root(&staging, &data),
        host.same_mount_root(&staging, &other),
    );
    let in_table = mount_at(&host.mount_table().unwrap(), &staging_dir).is_some();
    nix::mount::umount2(&staging_dir, MntFlags::empty()).unwrap();
    assert!(in_table);
    assert_eq!(seen, (Some(true), Some(true), Some(false)));
    assert!(!host.is_mount_point(&staging).unwrap());
}
