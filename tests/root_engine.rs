//! Root tier: the engine and every backend against the real kernel (mounts, loop devices, mkfs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::env::Env;
use common::{loops_under, mounts_under};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use strata::backend::Kind;
use strata::engine::{Access, CreateRequest, Error};
use strata::sys::{FsType, LinuxHost};

fn mount() -> Access {
    Access::Mount { flags: vec![] }
}

/// provision → stage → publish twice → write → unpublish both → unstage → stage again →
/// the data is still there → delete → nothing left.
fn full_cycle(kind: Kind, capacity: u64, fs_type: Option<FsType>) {
    let env = Env::new(kind);
    let e = &env.engine;
    env.create("vol", kind, capacity, fs_type);
    let staging = env.dir("staging");
    e.stage_volume("vol", &staging, &mount()).unwrap();
    let (a, b) = (env.path("pod-a"), env.path("pod-b"));
    e.publish_volume("vol", &staging, &a, false).unwrap();
    e.publish_volume("vol", &staging, &b, false).unwrap();
    e.publish_volume("vol", &staging, &b, false).unwrap();
    std::fs::write(a.join("hello.txt"), b"written through pod a").unwrap();
    assert_eq!(std::fs::read(b.join("hello.txt")).unwrap(), b"written through pod a");
    e.unpublish_volume("vol", &a).unwrap();
    e.unpublish_volume("vol", &b).unwrap();
    e.unpublish_volume("vol", &b).unwrap();
    assert!(!a.exists() && !b.exists(), "unpublish removes the targets");
    e.unstage_volume("vol", &staging).unwrap();
    assert!(mounts_under(&staging).is_empty());
    e.stage_volume("vol", &staging, &mount()).unwrap();
    let c = env.path("pod-c");
    e.publish_volume("vol", &staging, &c, false).unwrap();
    assert_eq!(std::fs::read(c.join("hello.txt")).unwrap(), b"written through pod a");
    let usage = e.volume_usage("vol", &c).unwrap();
    assert!(usage.total_bytes > 0 && usage.used_bytes > 0, "{usage:?}");
    e.unpublish_volume("vol", &c).unwrap();
    e.unstage_volume("vol", &staging).unwrap();
    e.delete_volume("vol").unwrap();
    std::fs::remove_dir(&staging).unwrap();
    env.assert_clean();
}

#[test]
fn dir_full_cycle() {
    full_cycle(Kind::Dir, 64 << 20, None);
}

#[test]
fn loop_ext4_full_cycle() {
    full_cycle(Kind::Loop, 64 << 20, Some(FsType::Ext4));
}

#[test]
fn loop_xfs_full_cycle() {
    full_cycle(Kind::Loop, 320 << 20, Some(FsType::Xfs));
}

#[test]
fn tmpfs_full_cycle() {
    full_cycle(Kind::Tmpfs, 16 << 20, None);
}

#[test]
fn btrfs_full_cycle() {
    full_cycle(Kind::Btrfs, 64 << 20, None);
}

fn readonly_publish(kind: Kind, capacity: u64) {
    let env = Env::new(kind);
    let e = &env.engine;
    env.create("ro", kind, capacity, None);
    let staging = env.dir("staging");
    e.stage_volume("ro", &staging, &mount()).unwrap();
    let (rw, ro) = (env.path("rw"), env.path("ro"));
    e.publish_volume("ro", &staging, &rw, false).unwrap();
    e.publish_volume("ro", &staging, &ro, true).unwrap();
    std::fs::write(rw.join("f"), b"data").unwrap();
    assert_eq!(std::fs::read(ro.join("f")).unwrap(), b"data");
    let err = std::fs::write(ro.join("g"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    let err = e.publish_volume("ro", &staging, &ro, false).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    e.unpublish_volume("ro", &rw).unwrap();
    e.unpublish_volume("ro", &ro).unwrap();
    e.unstage_volume("ro", &staging).unwrap();
    e.delete_volume("ro").unwrap();
    std::fs::remove_dir(&staging).unwrap();
    env.assert_clean();
}

#[test]
fn readonly_publish_dir() {
    readonly_publish(Kind::Dir, 1 << 20);
}

#[test]
fn readonly_publish_loop() {
    readonly_publish(Kind::Loop, 64 << 20);
}

#[test]
fn raw_block_publish_is_the_device() {
    let env = Env::new(Kind::Loop);
    let e = &env.engine;
    env.create("blk", Kind::Loop, 16 << 20, None);
    let staging = env.dir("staging");
    e.stage_volume("blk", &staging, &Access::Block).unwrap();
    let target = env.path("device");
    e.publish_volume("blk", &staging, &target, false).unwrap();
    e.publish_volume("blk", &staging, &target, false).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&target).unwrap().file_type().is_block_device());
    let pattern: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    let mut dev = std::fs::OpenOptions::new().read(true).write(true).open(&target).unwrap();
    dev.seek(SeekFrom::Start(8192)).unwrap();
    dev.write_all(&pattern).unwrap();
    dev.sync_all().unwrap();
    let mut back = vec![0u8; 4096];
    dev.seek(SeekFrom::Start(8192)).unwrap();
    dev.read_exact(&mut back).unwrap();
    assert_eq!(back, pattern);
    drop(dev);
    e.unpublish_volume("blk", &target).unwrap();
    assert!(!target.exists());
    e.unstage_volume("blk", &staging).unwrap();
    let image = std::fs::read(env.root.join("volumes/blk/disk.img")).unwrap();
    assert_eq!(&image[8192..8192 + 4096], &pattern[..], "the bytes reached the backing file");
    e.delete_volume("blk").unwrap();
    std::fs::remove_dir(&staging).unwrap();
    env.assert_clean();
}

#[test]
fn bad_input_creates_nothing() {
    let env = Env::new(Kind::Dir);
    let e = &env.engine;
    let long = "v".repeat(129);
    for id in ["a/b", "..", "../escape", "nul\0id", long.as_str(), ""] {
        let req = CreateRequest {
            id: id.into(),
            name: "n".into(),
            backend: Kind::Dir,
            capacity: 1 << 20,
            fs_type: None,
            parameters: BTreeMap::new(),
        };
        assert!(matches!(e.create_volume(&req), Err(Error::InvalidId { .. })), "{id:?}");
    }
    let zero = CreateRequest {
        id: "z".into(),
        name: "z".into(),
        backend: Kind::Loop,
        capacity: 0,
        fs_type: None,
        parameters: BTreeMap::new(),
    };
    assert!(matches!(e.create_volume(&zero), Err(Error::InvalidArgument(_))));
    let huge = CreateRequest { capacity: u64::MAX / 2, ..zero.clone() };
    assert!(matches!(e.create_volume(&huge), Err(Error::OutOfCapacity { .. })));
    env.create("ok", Kind::Dir, 1 << 20, None);
    let outside = env.tmp.path().join("outside");
    assert!(matches!(e.stage_volume("ok", &outside, &mount()), Err(Error::InvalidPath { .. })));
    assert!(matches!(
        e.publish_volume("ok", &env.path("s"), Path::new("/etc/strata-test"), false),
        Err(Error::InvalidPath { .. })
    ));
    assert!(!outside.exists() && !Path::new("/etc/strata-test").exists());
    assert!(matches!(e.stage_volume("missing", &env.dir("s2"), &mount()), Err(Error::VolumeNotFound(_))));
    e.delete_volume("ok").unwrap();
    std::fs::remove_dir(env.path("s2")).unwrap();
    env.assert_clean();
}

#[test]
fn racing_stage_mounts_once() {
    let env = Env::new(Kind::Loop);
    env.create("race", Kind::Loop, 32 << 20, None);
    let staging = env.dir("staging");
    for _ in 0..5 {
        let engines = [env.second_engine(), env.second_engine()];
        let results: Vec<Result<(), Error>> = std::thread::scope(|s| {
            let handles: Vec<_> =
                engines.iter().map(|e| s.spawn(|| e.stage_volume("race", &staging, &mount()))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(results.iter().any(Result::is_ok), "{results:?}");
        for r in &results {
            assert!(matches!(r, Ok(()) | Err(Error::Busy { .. })), "{r:?}");
        }
        assert_eq!(mounts_under(&staging).len(), 1, "exactly one mount at the staging path");
        assert_eq!(loops_under(&env.root).len(), 1, "exactly one loop device");
        env.engine.unstage_volume("race", &staging).unwrap();
    }
    env.engine.delete_volume("race").unwrap();
    std::fs::remove_dir(&staging).unwrap();
    env.assert_clean();
}

#[test]
fn racing_publish_and_delete_never_corrupt() {
    let env = Env::new(Kind::Dir);
    let staging = env.dir("staging");
    for round in 0..10 {
        env.create("pd", Kind::Dir, 1 << 20, None);
        env.engine.stage_volume("pd", &staging, &mount()).unwrap();
        let target = env.path(&format!("pod-{round}"));
        let (a, b) = (env.second_engine(), env.second_engine());
        let (published, deleted) = std::thread::scope(|s| {
            let p = s.spawn(|| a.publish_volume("pd", &staging, &target, false));
            let d = s.spawn(|| b.delete_volume("pd"));
            (p.join().unwrap(), d.join().unwrap())
        });
        assert!(deleted.is_err(), "a staged volume is never deleted: {deleted:?}");
        assert!(matches!(deleted, Err(Error::Busy { .. } | Error::FailedPrecondition { .. })), "{deleted:?}");
        assert!(matches!(published, Ok(()) | Err(Error::Busy { .. })), "{published:?}");
        let vol = env.engine.get_volume("pd").unwrap().expect("record intact");
        assert_eq!(vol.publications.len(), usize::from(published.is_ok()));
        env.engine.unpublish_volume("pd", &target).unwrap();
        env.engine.unstage_volume("pd", &staging).unwrap();
        env.engine.delete_volume("pd").unwrap();
    }
    std::fs::remove_dir(&staging).unwrap();
    env.assert_clean();
}

#[test]
fn reconcile_after_loop_devices_vanish() {
    let env = Env::new(Kind::Loop);
    env.create("rb", Kind::Loop, 32 << 20, None);
    let staging = env.dir("staging");
    let e = &env.engine;
    e.stage_volume("rb", &staging, &mount()).unwrap();
    std::fs::write(staging.join("keep"), b"survives").unwrap();
    // What a reboot leaves: no mount, no loop device, the record still saying "staged".
    nix::mount::umount2(&staging, nix::mount::MntFlags::empty()).unwrap();
    let device = e.get_volume("rb").unwrap().unwrap().staging.unwrap().device.unwrap();
    strata::sys::Host::loop_detach(&LinuxHost, &device).unwrap();
    let report = e.reconcile().unwrap();
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(report.actions.len(), 1, "{report:?}");
    let target = env.path("pod");
    e.publish_volume("rb", &staging, &target, false).unwrap();
    assert_eq!(std::fs::read(target.join("keep")).unwrap(), b"survives");
    e.unpublish_volume("rb", &target).unwrap();
    e.unstage_volume("rb", &staging).unwrap();
    e.delete_volume("rb").unwrap();
    std::fs::remove_dir(&staging).unwrap();
    env.assert_clean();
}

#[test]
fn mount_flags_reach_the_stage_and_publish_binds() {
    let env = Env::new(Kind::Dir);
    let e = &env.engine;
    env.create("flags", Kind::Dir, 1 << 20, None);
    let staging = env.dir("staging");
    e.stage_volume("flags", &staging, &Access::Mount { flags: vec!["nodev".into()] }).unwrap();
    let target = env.path("pod");
    let opts = strata::sys::MountOptions { readonly: false, options: vec!["noexec".into(), "nosuid".into()] };
    e.publish_volume_with("flags", &staging, &target, &opts).unwrap();
    let table = strata::sys::mountinfo::parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    let at = |p: &Path| strata::sys::mount_at(&table, p).unwrap().mount_options.clone();
    assert!(at(&staging).contains(&"nodev".to_owned()), "{:?}", at(&staging));
    let published = at(&target);
    assert!(published.contains(&"noexec".to_owned()) && published.contains(&"nosuid".to_owned()), "{published:?}");
    assert!(published.contains(&"rw".to_owned()));
    e.unpublish_volume("flags", &target).unwrap();
    e.unstage_volume("flags", &staging).unwrap();
    e.delete_volume("flags").unwrap();
    std::fs::remove_dir(&staging).unwrap();
    env.assert_clean();
}

/// Sets or clears the immutable attribute of `path` (`chattr`, e2fsprogs).
fn immutable(path: &Path, on: bool) {
    let flag = if on { "+i" } else { "-i" };
    let status = std::process::Command::new("chattr").arg(flag).arg(path).status().expect("chattr runs");
    assert!(status.success(), "chattr {flag} {} failed", path.display());
}

#[test]
fn a_delete_that_cannot_remove_everything_keeps_the_volume_whole_and_its_retry_finishes() {
    let env = Env::new(Kind::Dir);
    let e = &env.engine;
    env.create("keep", Kind::Dir, 1 << 20, None);
    let data = env.root.join("volumes/keep/data");
    for name in ["a", "b", "c", "stuck"] {
        std::fs::write(data.join(name), name).unwrap();
    }
    immutable(&data.join("stuck"), true);
    let failed = e.delete_volume("keep");
    immutable(&env.root.join("volumes/keep/data/stuck"), false);
    assert!(failed.is_err(), "an immutable file cannot be removed: {failed:?}");
    assert!(env.root.join("volumes/keep/volume.json").is_file(), "the record goes last, so it is still there");
    assert!(!env.root.join("volumes/.keep.del").exists(), "the volume was renamed back");
    assert!(e.get_volume("keep").unwrap().is_some());
    assert!(e.quarantined().unwrap().is_empty(), "a failed delete never quarantines the volume");
    e.delete_volume("keep").unwrap();
    assert!(e.get_volume("keep").unwrap().is_none());
    env.assert_clean();
}

#[test]
fn a_bind_inside_a_volume_is_never_removed_through() {
    let env = Env::new(Kind::Dir);
    let e = &env.engine;
    env.create("v", Kind::Dir, 1 << 20, None);
    let outside = env.dir("outside");
    std::fs::write(outside.join("precious"), b"not the volume's").unwrap();
    let inside = env.root.join("volumes/v/data/sub");
    std::fs::create_dir(&inside).unwrap();
    // A bind of a directory of the same filesystem: the device numbers match, only the kernel's
    // mount-root attribute tells it apart.
    nix::mount::mount(Some(&outside), &inside, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>).unwrap();
    let refused = e.delete_volume("v");
    let moved = env.root.join("volumes/.v.del/data/sub");
    let mounted = if moved.exists() { moved } else { inside.clone() };
    nix::mount::umount2(&mounted, nix::mount::MntFlags::MNT_DETACH).unwrap();
    assert!(refused.is_err(), "a mount inside the volume stops the delete: {refused:?}");
    assert_eq!(std::fs::read(outside.join("precious")).unwrap(), b"not the volume's");
    assert!(e.get_volume("v").unwrap().is_some(), "the volume is whole again");
    e.delete_volume("v").unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
    env.assert_clean();
}

#[test]
fn an_unmount_outlasts_a_moment_of_use_but_not_a_user_that_stays() {
    use strata::sys::Host;
    let env = Env::new(Kind::Dir);
    let at = env.dir("busy");
    nix::mount::mount(Some("tmpfs"), &at, Some("tmpfs"), nix::mount::MsFlags::empty(), None::<&str>).unwrap();
    let place = strata::sys::place_at(&at).unwrap();
    // A user that stays: EBUSY, and the mount is still there.
    let file = std::fs::File::create(at.join("open")).unwrap();
    let held = LinuxHost.unmount(&place, false);
    assert!(
        matches!(
            held,
            Err(strata::sys::Error::Os { action: strata::sys::Action::Unmount, errno: nix::errno::Errno::EBUSY, .. })
        ),
        "{held:?}"
    );
    assert_eq!(mounts_under(&at).len(), 1);
    // A use that ends a few milliseconds later (as a concurrent lookup through the mount does):
    // the unmount waits it out.
    let user = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(3));
        drop(file);
    });
    LinuxHost.unmount(&place, false).expect("the unmount outlasts a short use");
    user.join().unwrap();
    assert!(mounts_under(&at).is_empty());
    std::fs::remove_dir(&at).unwrap();
    env.assert_clean();
}
