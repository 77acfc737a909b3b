//! Root tier: snapshots, restores, clones, online expansion and broken volumes on the real kernel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::env::Env;
use std::path::Path;
use std::process::Command;
use strata::backend::Kind;
use strata::engine::{Error, Source};
use strata::sys::FsType;

/// 1 MiB of bytes derived from `seed`.
fn pattern(seed: u8) -> Vec<u8> {
    (0..1u32 << 20).map(|i| i.to_le_bytes()[0].wrapping_mul(31).wrapping_add(seed)).collect()
}

/// snapshot → overwrite → restore and clone: each copy holds what was there at its point.
fn integrity(kind: Kind, capacity: u64, fs: Option<FsType>) {
    let env = Env::new(kind);
    env.create_from("orig", kind, capacity, fs, None);
    let pod = env.open("orig");
    std::fs::write(pod.join("data.bin"), pattern(1)).unwrap();
    env.snapshot("snap", "orig");
    if kind == Kind::Tmpfs {
        snapshot_is_on_disk(&env);
    }
    std::fs::write(pod.join("data.bin"), pattern(2)).unwrap();
    env.create_from("restored", kind, capacity * 2, None, Some(Source::Snapshot("snap".into())));
    env.create_from("clone", kind, capacity, None, Some(Source::Volume("orig".into())));
    env.close("orig");
    env.engine.delete_volume("orig").unwrap();
    let restored = env.open("restored");
    assert_eq!(std::fs::read(restored.join("data.bin")).unwrap(), pattern(1), "restore holds the snapshot's data");
    if kind == Kind::Loop {
        let size = nix::sys::statvfs::statvfs(&restored).unwrap();
        let bytes = size.blocks() * size.fragment_size();
        assert!(bytes > capacity * 3 / 2, "the filesystem grew to the larger volume: {bytes} bytes");
    }
    let clone = env.open("clone");
    assert_eq!(std::fs::read(clone.join("data.bin")).unwrap(), pattern(2), "the clone holds the source's data");
    if kind == Kind::Tmpfs {
        let bytes = |p: &Path| nix::sys::statvfs::statvfs(p).map(|s| s.blocks() * s.fragment_size()).unwrap();
        assert_eq!((bytes(&restored), bytes(&clone)), (capacity * 2, capacity), "each tmpfs has its own size");
    }
    for id in ["restored", "clone"] {
        env.close(id);
        env.engine.delete_volume(id).unwrap();
    }
    env.engine.delete_snapshot("snap").unwrap();
    assert!(env.engine.list_snapshots().unwrap().is_empty());
    env.assert_clean();
}

#[test]
fn dir_snapshot_restore_clone() {
    integrity(Kind::Dir, 16 << 20, None);
}

#[test]
fn tmpfs_snapshot_restore_clone() {
    integrity(Kind::Tmpfs, 16 << 20, None);
}

/// A tmpfs snapshot is a tree on disk under the root, not another tmpfs.
fn snapshot_is_on_disk(env: &Env) {
    let data = env.root.join("snapshots/snap/data");
    assert_eq!(std::fs::read(data.join("data.bin")).unwrap(), pattern(1), "the snapshot holds the data");
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let snapshots = env.root.join("snapshots");
    let inside = table.lines().filter(|l| l.split(' ').nth(4).is_some_and(|p| Path::new(p).starts_with(&snapshots)));
    assert_eq!(inside.count(), 0, "no mount under {}", snapshots.display());
}

#[test]
fn loop_ext4_snapshot_restore_clone() {
    integrity(Kind::Loop, 64 << 20, Some(FsType::Ext4));
}

#[test]
fn loop_xfs_snapshot_restore_clone() {
    integrity(Kind::Loop, 320 << 20, Some(FsType::Xfs));
}

#[test]
fn btrfs_snapshot_restore_clone() {
    integrity(Kind::Btrfs, 64 << 20, None);
}

/// A snapshot taken under a running writer is a clean filesystem (checked by fsck).
fn snapshot_under_writer(fs: FsType, capacity: u64) {
    let env = Env::new(Kind::Loop);
    env.create_from("busy", Kind::Loop, capacity, Some(fs), None);
    let pod = env.open("busy");
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Half the volume at most: 64 files of 1 MiB filled a 64 MiB ext4 (53 fit) when
                // the writer got that far before the freeze.
                std::fs::write(pod.join(format!("f{}", n % 32)), pattern(n.to_le_bytes()[0])).unwrap();
                n += 1;
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        env.snapshot("hot", "busy");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    // The copy mounts cleanly beside its source, which has the same filesystem UUID (xfs needs
    // nouuid for that); the mount replays the log a frozen xfs keeps.
    env.create_from("twin", Kind::Loop, capacity, None, Some(Source::Snapshot("hot".into())));
    let twin = env.open("twin");
    assert!(twin.join("f0").exists());
    env.close("twin");
    let image = env.root.join("volumes/twin/disk.img");
    let check = match fs {
        FsType::Ext4 => Command::new("/usr/sbin/e2fsck").args(["-f", "-n"]).arg(&image).output().unwrap(),
        FsType::Xfs => Command::new("/usr/sbin/xfs_repair").arg("-n").arg("-f").arg(&image).output().unwrap(),
    };
    let (out, err) = (String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    assert!(check.status.success(), "fsck of the restored snapshot: {out}\n{err}");
    env.open("twin");
    for id in ["twin", "busy"] {
        env.close(id);
        env.engine.delete_volume(id).unwrap();
    }
    env.engine.delete_snapshot("hot").unwrap();
    env.assert_clean();
}

#[test]
fn ext4_snapshot_under_writer_is_clean() {
    snapshot_under_writer(FsType::Ext4, 64 << 20);
}

#[test]
fn xfs_snapshot_under_writer_is_clean_and_mounts_beside_its_twin() {
    snapshot_under_writer(FsType::Xfs, 320 << 20);
}

fn fs_bytes(p: &Path) -> u64 {
    let s = nix::sys::statvfs::statvfs(p).unwrap();
    s.blocks() * s.fragment_size()
}

/// Grows a published volume. xfs (and ext4 where this process has CAP_SYS_RESOURCE) grows in
/// place; ext4 without it says why and grows at the next stage. Data written before is intact.
fn expand_published(fs: FsType, capacity: u64) {
    let env = Env::new(Kind::Loop);
    env.create_from("grow", Kind::Loop, capacity, Some(fs), None);
    let pod = env.open("grow");
    std::fs::write(pod.join("before"), pattern(7)).unwrap();
    let old = fs_bytes(&pod);
    let online = fs == FsType::Xfs || common::has_cap_sys_resource();
    match env.engine.expand_volume("grow", capacity * 2) {
        Ok(bytes) => assert!(online && bytes == capacity * 2, "grew online without the capability?"),
        Err(e) => {
            assert!(!online, "online growth failed: {e}");
            assert!(matches!(e, Error::FailedPrecondition { .. }) && e.to_string().contains("next staged"), "{e}");
            assert_eq!(env.engine.get_volume("grow").unwrap().unwrap().capacity, capacity * 2);
            env.close("grow");
            env.open("grow");
        }
    }
    let new = fs_bytes(&pod);
    assert!(new > old + capacity / 2, "the pod sees the new size: {old} -> {new}");
    assert_eq!(std::fs::read(pod.join("before")).unwrap(), pattern(7));
    env.close("grow");
    env.engine.delete_volume("grow").unwrap();
    env.assert_clean();
}

#[test]
fn ext4_published_volume_grows() {
    expand_published(FsType::Ext4, 64 << 20);
}

#[test]
fn xfs_published_volume_grows_online() {
    expand_published(FsType::Xfs, 320 << 20);
}

#[test]
fn ext4_staged_volume_grows_at_once() {
    let env = Env::new(Kind::Loop);
    env.create_from("g", Kind::Loop, 64 << 20, Some(FsType::Ext4), None);
    let pod = env.open("g");
    std::fs::write(pod.join("before"), pattern(3)).unwrap();
    env.engine.unpublish_volume("g", &pod).unwrap();
    let staging = env.kubelet.join("staging-g");
    let old = fs_bytes(&staging);
    assert_eq!(env.engine.expand_volume("g", 128 << 20).unwrap(), 128 << 20);
    assert!(fs_bytes(&staging) > old + (32 << 20), "the staged filesystem grew");
    assert!(!env.engine.get_volume("g").unwrap().unwrap().grow_fs);
    env.engine.publish_volume("g", &staging, &pod, false).unwrap();
    assert_eq!(std::fs::read(pod.join("before")).unwrap(), pattern(3));
    env.close("g");
    env.engine.delete_volume("g").unwrap();
    env.assert_clean();
}

#[test]
fn btrfs_quota_is_enforced_and_grows() {
    let env = Env::new(Kind::Btrfs);
    env.create_from("q", Kind::Btrfs, 8 << 20, None, None);
    let pod = env.open("q");
    let write_mib = |name: &str, mib: usize| -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(pod.join(name))?;
        for i in 0..mib {
            f.write_all(&pattern(i.to_le_bytes()[0]))?;
        }
        f.sync_all()
    };
    let err = write_mib("big", 16).expect_err("a write past the qgroup limit fails");
    assert_eq!(err.raw_os_error(), Some(libc::EDQUOT), "{err}");
    std::fs::remove_file(pod.join("big")).unwrap();
    nix::unistd::sync();
    env.engine.expand_volume("q", 64 << 20).unwrap();
    write_mib("big", 16).expect("the grown quota takes 16 MiB");
    assert_eq!(std::fs::read(pod.join("big")).unwrap().len(), 16 << 20);
    env.close("q");
    env.engine.delete_volume("q").unwrap();
    env.assert_clean();
}

#[test]
fn removed_backing_file_is_reported_and_nothing_else_is_touched() {
    let env = Env::new(Kind::Loop);
    env.create_from("hurt", Kind::Loop, 32 << 20, None, None);
    env.create_from("fine", Kind::Loop, 32 << 20, None, None);
    let pod = env.open("hurt");
    let fine = env.open("fine");
    std::fs::write(fine.join("x"), b"fine").unwrap();
    std::fs::remove_file(env.root.join("volumes/hurt/disk.img")).unwrap();
    let cond = env.engine.volume_condition("hurt").unwrap();
    assert!(cond.abnormal && cond.message.contains("backing file"), "{cond:?}");
    let stats = env.engine.volume_usage("hurt", &pod).unwrap_err();
    assert!(matches!(stats, Error::FailedPrecondition { .. }), "{stats}");
    let staging = env.kubelet.join("staging-hurt");
    let publish = env.engine.publish_volume("hurt", &staging, &env.kubelet.join("pod-new"), false).unwrap_err();
    assert!(publish.to_string().contains("backing file"), "{publish}");
    assert!(!env.engine.volume_condition("fine").unwrap().abnormal);
    assert_eq!(std::fs::read(fine.join("x")).unwrap(), b"fine");
    env.close("hurt");
    env.close("fine");
    for id in ["hurt", "fine"] {
        env.engine.delete_volume(id).unwrap();
    }
    env.assert_clean();
}
