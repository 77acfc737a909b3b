//! Root tier: hostile pod dirs against `strata-flex mount` and `unmount`: a symlink as the pod
//! volume dir, a symlink on the way, and a parent swapped for a symlink while mounts run.
//! Nothing may ever be mounted outside the kubelet dir.

mod flex_support;

use flex_support::{World, mounts_under};
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn a_symlinked_pod_dir_is_refused_and_nothing_lands_outside() {
    let w = World::new();
    let outside = w.tmp.path().join("outside");
    std::fs::create_dir_all(outside.join("vol")).expect("outside");
    let dir = w.pod_path("p", "pv-link");
    std::fs::create_dir_all(dir.parent().expect("parent")).expect("parent");
    symlink(&outside, &dir).expect("link");
    let json = w.mount_json("p", "pv-link", "rw", &[]);
    w.run(&["mount", dir.to_str().expect("utf-8"), &json]).failed("symlink");
    let via = w.kubelet.join("pods/q");
    symlink(&outside, &via).expect("link on the way");
    let json = w.mount_json("q", "vol", "rw", &[]);
    w.run(&["mount", via.join("vol").to_str().expect("utf-8"), &json]).failed("symlink");
    assert_eq!(mounts_under(&outside), Vec::<String>::new());
    assert!(dir.is_symlink(), "the link is left as it was");
    w.finish();
}

#[test]
fn a_parent_swapped_during_mounts_never_lands_a_mount_outside() {
    let w = World::new();
    let outside = w.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).expect("outside");
    let pod = w.kubelet.join("pods/race");
    let (a, b) = (pod.join("volumes"), pod.join("swap"));
    std::fs::create_dir_all(a.join("strata~flex")).expect("pod dir");
    symlink(&outside, &b).expect("link");
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (a, b, stop) = (a.clone(), b.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let flags = nix::fcntl::RenameFlags::RENAME_EXCHANGE;
                nix::fcntl::renameat2(nix::fcntl::AT_FDCWD, &a, nix::fcntl::AT_FDCWD, &b, flags).expect("swap");
                swaps += 1;
            }
            swaps
        })
    };
    let target: PathBuf = a.join("strata~flex/pv-race");
    let json = w.mount_json("race", "pv-race", "rw", &[]);
    let (mut mounted, mut refused) = (0, 0);
    for _ in 0..300 {
        let r = w.run(&["mount", target.to_str().expect("utf-8"), &json]);
        if r.status() == "Success" {
            mounted += 1
        } else {
            refused += 1
        }
        assert_eq!(mounts_under(&outside), Vec::<String>::new(), "a mount landed outside");
        w.run(&["unmount", target.to_str().expect("utf-8")]);
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().expect("swapper");
    assert!(swaps > 100 && mounted > 0 && refused > 0, "swaps {swaps}, mounted {mounted}, refused {refused}");
    if a.is_symlink() {
        let flags = nix::fcntl::RenameFlags::RENAME_EXCHANGE;
        nix::fcntl::renameat2(nix::fcntl::AT_FDCWD, &a, nix::fcntl::AT_FDCWD, &b, flags).expect("swap back");
    }
    w.run(&["unmount", target.to_str().expect("utf-8")]).ok();
    assert_eq!(mounts_under(&outside), Vec::<String>::new());
    w.finish();
}
