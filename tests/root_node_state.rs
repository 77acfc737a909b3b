//! Root tier: node state against the real kernel. Publication markers are judged with `statx`
//! (filesystem, loop filesystem and raw block publications), a publication unmounted behind
//! strata's back stops counting, and the volumes directory gets a private mount of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::env::Env;
use common::mounts_under;
use std::path::Path;
use strata::backend::Kind;
use strata::engine::{Access, Error, Isolation};
use strata::sys::{FsType, Host, LinuxHost, place_at};

fn mount() -> Access {
    Access::Mount { flags: vec![] }
}

/// Stage, publish at two targets; unstage is refused naming a live target; a target unmounted
/// by hand no longer counts; after the last unpublish unstage works and leaves nothing.
fn refused_while_published(kind: Kind, fs_type: Option<FsType>, access: Access) {
    let env = Env::new(kind);
    let e = &env.engine;
    env.create("v", kind, 32 << 20, fs_type);
    let staging = env.dir("staging");
    e.stage_volume("v", &staging, &access).unwrap();
    let (a, b) = (env.path("pod-a"), env.path("pod-b"));
    e.publish_volume("v", &staging, &a, false).unwrap();
    e.publish_volume("v", &staging, &b, true).unwrap();
    assert_eq!(e.live_publications("v").unwrap().len(), 2);
    LinuxHost.unmount(&place_at(&a).unwrap(), false).unwrap(); // behind strata's back
    let err = e.unstage_volume("v", &staging).unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition { .. }), "{err}");
    assert!(err.to_string().contains(b.to_str().unwrap()), "names the live target: {err}");
    let live = e.live_publications("v").unwrap();
    assert_eq!(live.iter().map(|p| p.target.as_path()).collect::<Vec<_>>(), vec![b.as_path()]);
    assert!(live[0].readonly);
    e.unpublish_volume("v", &b).unwrap();
    e.unstage_volume("v", &staging).unwrap();
    assert!(mounts_under(&staging).is_empty());
    std::fs::remove_dir(&a).or_else(|_| std::fs::remove_file(&a)).unwrap();
    e.delete_volume("v").unwrap();
    std::fs::remove_dir(&staging).unwrap();
    env.assert_clean();
}

#[test]
fn dir_unstage_waits_for_live_publications_only() {
    refused_while_published(Kind::Dir, None, mount());
}

#[test]
fn loop_filesystem_unstage_waits_for_live_publications_only() {
    refused_while_published(Kind::Loop, Some(FsType::Ext4), mount());
}

#[test]
fn loop_block_unstage_waits_for_live_publications_only() {
    refused_while_published(Kind::Loop, None, Access::Block);
}

#[test]
fn tmpfs_unstage_waits_for_live_publications_only() {
    refused_while_published(Kind::Tmpfs, None, mount());
}

/// Whether the mount at `point` carries a propagation tag (`shared:` or `master:`).
fn propagates(point: &Path) -> bool {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = text.lines().rev().find(|l| l.split(' ').nth(4) == Some(point.to_str().unwrap())).unwrap();
    let optional = line.split(" - ").next().unwrap().split(' ').skip(6);
    optional.into_iter().any(|f| f.starts_with("shared:") || f.starts_with("master:"))
}

fn set_propagation(point: &Path, flag: nix::mount::MsFlags) {
    nix::mount::mount(None::<&str>, point, None::<&str>, flag, None::<&str>).unwrap();
}

#[test]
fn volumes_get_a_private_mount_of_their_own_unless_the_root_is_shared() {
    let env = Env::new(Kind::Dir);
    let e = &env.engine;
    let volumes = env.root.join("volumes");
    // The data root on a shared mount, as a Bidirectional hostPath is: strata's mounts below it
    // must keep reaching the host, so the volumes stay on it.
    LinuxHost.bind_mount(&env.root, &place_at(&env.root).unwrap(), &Default::default()).unwrap();
    set_propagation(&env.root, nix::mount::MsFlags::MS_SHARED);
    assert!(propagates(&env.root));
    assert_eq!(e.isolate_volumes().unwrap(), Isolation::Shared(env.root.clone()));
    assert!(!LinuxHost.is_mount_point(&place_at(&volumes).unwrap()).unwrap());
    // On a private mount they get a private mount of their own.
    set_propagation(&env.root, nix::mount::MsFlags::MS_PRIVATE);
    assert_eq!(e.isolate_volumes().unwrap(), Isolation::Done);
    assert!(LinuxHost.is_mount_point(&place_at(&volumes).unwrap()).unwrap());
    assert!(!propagates(&volumes), "the volumes mount is private");
    assert_eq!(e.isolate_volumes().unwrap(), Isolation::Already);
    env.create("v", Kind::Dir, 16 << 20, None);
    let target = env.open("v");
    std::fs::write(target.join("f"), b"through the pod").unwrap();
    assert_eq!(std::fs::read(volumes.join("v/data/f")).unwrap(), b"through the pod");
    env.close("v");
    e.delete_volume("v").unwrap();
    LinuxHost.unmount(&place_at(&volumes).unwrap(), false).unwrap();
    LinuxHost.unmount(&place_at(&env.root).unwrap(), false).unwrap();
    env.assert_clean();
}

#[test]
fn volumes_stay_put_while_something_is_mounted_below_them() {
    let env = Env::new(Kind::Tmpfs);
    let e = &env.engine;
    env.create("t", Kind::Tmpfs, 1 << 20, None);
    let data = env.root.join("volumes/t/data");
    assert_eq!(e.isolate_volumes().unwrap(), Isolation::Skipped(data.clone()));
    assert!(!LinuxHost.is_mount_point(&place_at(&env.root.join("volumes")).unwrap()).unwrap());
    assert!(LinuxHost.is_mount_point(&place_at(&data).unwrap()).unwrap(), "the tmpfs volume is not hidden");
    e.delete_volume("t").unwrap();
    env.assert_clean();
}

#[test]
fn a_mount_stacked_on_a_target_does_not_hide_the_bind_below() {
    let env = Env::new(Kind::Dir);
    let e = &env.engine;
    env.create("v", Kind::Dir, 16 << 20, None);
    let staging = env.dir("staging");
    e.stage_volume("v", &staging, &mount()).unwrap();
    let a = env.path("pod-a");
    e.publish_volume("v", &staging, &a, false).unwrap();
    let top = place_at(&a).unwrap();
    LinuxHost.bind_mount(&env.dir("other"), &top, &Default::default()).unwrap(); // mounted over the pod's
    let err = e.unstage_volume("v", &staging).unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition { .. }), "{err}");
    // The mount on top is not this volume's: unpublish leaves it (and the bind below) alone.
    let err = e.unpublish_volume("v", &a).unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition { .. }) && err.to_string().contains("not this volume"), "{err}");
    assert!(LinuxHost.is_mount_point(&top).unwrap());
    LinuxHost.unmount(&top, false).unwrap();
    e.unpublish_volume("v", &a).unwrap(); // now the volume's own bind goes
    e.unstage_volume("v", &staging).unwrap();
    e.delete_volume("v").unwrap();
    std::fs::remove_dir(&staging).unwrap();
    std::fs::remove_dir(env.path("other")).unwrap();
    env.assert_clean();
}

#[test]
fn a_loop_volume_whose_staging_was_unmounted_by_hand_still_counts_its_pods() {
    let env = Env::new(Kind::Loop);
    let e = &env.engine;
    env.create("v", Kind::Loop, 32 << 20, Some(FsType::Ext4));
    let staging = env.dir("staging");
    e.stage_volume("v", &staging, &mount()).unwrap();
    let a = env.path("pod-a");
    e.publish_volume("v", &staging, &a, false).unwrap();
    LinuxHost.unmount(&place_at(&staging).unwrap(), false).unwrap(); // the pod's bind keeps the filesystem mounted
    let err = e.unstage_volume("v", &staging).unwrap_err();
    assert!(err.to_string().contains("pod-a"), "the loop device stays attached under the pod: {err}");
    e.unpublish_volume("v", &a).unwrap();
    e.unstage_volume("v", &staging).unwrap();
    e.delete_volume("v").unwrap();
    std::fs::remove_dir(&staging).unwrap();
    env.assert_clean();
}
