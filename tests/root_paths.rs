//! Root tier: hostile paths against `strata-csi serve`. Symlinks as the last component or on the
//! way, a parent swapped for a symlink while calls run, a foreign mount at a target, and the
//! mount-option policy (the child mount namespace case is in `root_paths_ns.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;

use csi_support::*;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use strata::csi::proto as p;
use strata::sys::{Host, LinuxHost};
use tonic::Code;

/// Every mount point in this namespace at or below `dir`.
fn mounts_at_or_under(dir: &Path) -> Vec<PathBuf> {
    let table = LinuxHost.mount_table().unwrap();
    table.iter().map(|m| m.mount_point.clone()).filter(|m| m.starts_with(dir)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinked_targets_and_stagings_are_refused_and_nothing_lands_outside() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let outside = s.dir.path().join("outside");
    std::fs::create_dir_all(outside.join("x")).unwrap();
    let id = create(&mut c, "pvc-sym", 1 << 20, &[]).await;
    std::fs::create_dir_all(s.path("pods/p")).unwrap();
    let last = s.path("pods/p/link");
    symlink(&outside, &last).unwrap();
    symlink(&outside, s.path("pods/via")).unwrap();
    let on_the_way = s.path("pods/via/x");

    for staging in [&last, &on_the_way] {
        let r = c.node.node_stage_volume(stage_req(&id, staging, mount_cap())).await;
        assert_eq!(code(r), Code::InvalidArgument, "stage at {staging}");
    }
    let st = s.path("staging");
    c.node.node_stage_volume(stage_req(&id, &st, mount_cap())).await.unwrap();
    for target in [&last, &on_the_way] {
        let r = c.node.node_publish_volume(publish_req(&id, &st, target, mount_cap())).await;
        let err = r.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "publish at {target}: {err:?}");
        assert!(err.message().contains("symlink"), "{}", err.message());
        let r = c.node.node_unpublish_volume(unpublish_req(&id, target)).await;
        assert_eq!(code(r), Code::InvalidArgument, "unpublish at {target}");
    }
    assert_eq!(mounts_at_or_under(&outside), Vec::<PathBuf>::new());
    assert!(Path::new(&last).is_symlink(), "the link is left as it was");
    c.node.node_unstage_volume(unstage_req(&id, &st)).await.unwrap();
    c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: id, ..Default::default() }).await.unwrap();
}

/// Swaps the names `a` and `b` in one step (`renameat2(RENAME_EXCHANGE)`).
fn exchange(a: &Path, b: &Path) {
    let flags = nix::fcntl::RenameFlags::RENAME_EXCHANGE;
    nix::fcntl::renameat2(nix::fcntl::AT_FDCWD, a, nix::fcntl::AT_FDCWD, b, flags).unwrap();
}

/// Swaps `a` (a directory) and `b` (a symlink to outside) with `renameat2(RENAME_EXCHANGE)`
/// until `stop` is set.
fn swapper(a: PathBuf, b: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut swaps = 0;
        while !stop.load(Ordering::Relaxed) {
            exchange(&a, &b);
            swaps += 1;
        }
        swaps
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_swapped_during_publishes_and_stages_never_lands_a_mount_outside() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let outside = s.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let id = create(&mut c, "pvc-race", 1 << 20, &[]).await;
    let st = s.path("staging");
    c.node.node_stage_volume(stage_req(&id, &st, mount_cap())).await.unwrap();
    let (a, b) = (PathBuf::from(s.path("pods/race/a")), PathBuf::from(s.path("pods/race/b")));
    std::fs::create_dir_all(&a).unwrap();
    symlink(&outside, &b).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = swapper(a.clone(), b.clone(), stop.clone());
    let target = a.join("vol").to_string_lossy().into_owned();
    let (mut published, mut refused) = (0, 0);
    for _ in 0..1500 {
        match c.node.node_publish_volume(publish_req(&id, &st, &target, mount_cap())).await {
            Ok(_) => published += 1,
            Err(e) => {
                // A symlink on the way, or a rename seen between the resolution and the check.
                assert!(matches!(e.code(), Code::InvalidArgument | Code::AlreadyExists), "{e:?}");
                refused += 1;
            }
        }
        assert_eq!(mounts_at_or_under(&outside), Vec::<PathBuf>::new(), "a publish landed outside");
        // Unpublish whichever way the path points now; a refusal leaves the bind for later.
        let _ = c.node.node_unpublish_volume(unpublish_req(&id, &target)).await;
    }
    // Stages of a second volume whose staging's parent is swapped the same way.
    let id2 = create(&mut c, "pvc-race2", 1 << 20, &[]).await;
    let staging = a.join("globalmount").to_string_lossy().into_owned();
    for _ in 0..500 {
        if c.node.node_stage_volume(stage_req(&id2, &staging, mount_cap())).await.is_ok() {
            published += 1;
        }
        assert_eq!(mounts_at_or_under(&outside), Vec::<PathBuf>::new(), "a stage landed outside");
        let _ = c.node.node_unstage_volume(unstage_req(&id2, &staging)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swaps.join().unwrap();
    assert!(swaps > 100 && published > 0 && refused > 0, "swaps {swaps}, published {published}, refused {refused}");
    // Put `a` back as the directory and clean up what the race left behind, inside the prefix.
    if a.is_symlink() {
        exchange(&a, &b);
    }
    c.node.node_unpublish_volume(unpublish_req(&id, &target)).await.unwrap();
    c.node.node_unstage_volume(unstage_req(&id2, &staging)).await.unwrap();
    c.node.node_unstage_volume(unstage_req(&id, &st)).await.unwrap();
    assert_eq!(mounts_at_or_under(&outside), Vec::<PathBuf>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_mount_at_a_target_survives_unpublish() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let theirs = s.dir.path().join("theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::write(theirs.join("file"), "theirs").unwrap();
    let target = s.path("pods/f/vol");
    std::fs::create_dir_all(&target).unwrap();
    nix::mount::mount(Some(&theirs), target.as_str(), None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>)
        .unwrap();
    let id = create(&mut c, "pvc-mine", 1 << 20, &[]).await;
    let nothing = format!("nothing@{NODE}");
    for volume in [id.as_str(), nothing.as_str(), "kubelet-ephemeral-nothing"] {
        let err = c.node.node_unpublish_volume(unpublish_req(volume, &target)).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{volume}: {err:?}");
        assert!(err.message().contains("not this volume's"), "{}", err.message());
        assert_eq!(std::fs::read_to_string(Path::new(&target).join("file")).unwrap(), "theirs", "{volume}");
    }
    nix::mount::umount2(target.as_str(), nix::mount::MntFlags::empty()).unwrap();
    c.node.node_unpublish_volume(unpublish_req(&id, &target)).await.unwrap();
    assert!(!Path::new(&target).exists(), "an empty, unmounted target is removed");
}

fn cap_with_flags(flags: &[&str]) -> p::VolumeCapability {
    use p::volume_capability::{AccessType, MountVolume};
    let mount = MountVolume { mount_flags: flags.iter().map(|f| f.to_string()).collect(), ..Default::default() };
    p::VolumeCapability { access_type: Some(AccessType::Mount(mount)), ..mount_cap() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_options_pass_a_per_backend_policy() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let dir = create(&mut c, "pvc-opt-dir", 1 << 20, &[]).await;
    let ext4 = create(&mut c, "pvc-opt-loop", 16 << 20, &[("backend", "loop")]).await;
    let tmpfs = create(&mut c, "pvc-opt-tmpfs", 1 << 20, &[("backend", "tmpfs")]).await;
    let refused: [(&str, &[&str]); 9] = [
        (&dir, &["remount"]),
        (&dir, &["bind"]),
        (&dir, &["size=1m"]),
        (&dir, &["mode=0777"]),
        (&dir, &["uid=0"]),
        (&ext4, &["errors=panic"]),
        (&ext4, &["noatime,errors=panic"]),
        (&tmpfs, &["suid"]),
        (&tmpfs, &["dev"]),
    ];
    let st = s.path("staging");
    for (id, flags) in refused {
        let err = c.node.node_stage_volume(stage_req(id, &st, cap_with_flags(flags))).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{flags:?}: {err:?}");
        let named = flags.iter().flat_map(|f| f.split(',')).any(|o| err.message().contains(o));
        assert!(named, "the refusal names the option: {}", err.message());
        assert!(mount_at(&st).is_none(), "{flags:?}: nothing mounted");
    }
    // A comma-joined entry is split and each flag applied.
    c.node.node_stage_volume(stage_req(&ext4, &st, cap_with_flags(&["nosuid,nodev", "noatime"]))).await.unwrap();
    let m = mount_at(&st).expect("staged");
    for flag in ["nosuid", "nodev", "noatime"] {
        assert!(m.mount_options.iter().any(|o| o == flag), "{flag} missing from {:?}", m.mount_options);
    }
    c.node.node_unstage_volume(unstage_req(&ext4, &st)).await.unwrap();
    // tmpfs gets nosuid and nodev on its staging bind though none were asked.
    c.node.node_stage_volume(stage_req(&tmpfs, &st, mount_cap())).await.unwrap();
    let m = mount_at(&st).expect("staged");
    for flag in ["nosuid", "nodev"] {
        assert!(m.mount_options.iter().any(|o| o == flag), "tmpfs {flag} missing from {:?}", m.mount_options);
    }
    c.node.node_unstage_volume(unstage_req(&tmpfs, &st)).await.unwrap();
    for id in [dir, ext4, tmpfs] {
        c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: id, ..Default::default() }).await.unwrap();
    }
}
