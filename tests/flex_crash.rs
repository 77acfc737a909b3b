//! Root tier: `strata-flex unmount` killed between the pod's unbind and the unstage (a crash
//! point, not a timing); kubelet's retry finishes the unstage, nothing leaks.

mod flex_support;

use flex_support::World;

#[test]
fn an_unmount_killed_before_its_unstage_is_finished_by_the_retry() {
    let w = World::new();
    let vol = "pv-crash";
    w.mount("p", vol, "rw", &[("backend", "loop"), ("size", "32Mi")]).ok();
    let dir = w.pod_path("p", vol);
    let out = w
        .command(&["unmount", dir.to_str().expect("utf-8")])
        .env("STRATA_CRASH_AT", "flex-unmount:unbound")
        .output()
        .expect("run strata-flex");
    assert!(!out.status.success(), "the crash point aborts the unmount");
    assert_eq!(w.mounts_at(&w.staging(vol)), 1, "killed before the unstage: the staging is still mounted");
    w.unmount("p", vol).ok(); // kubelet's retry
    assert_eq!(w.mounts_at(&w.staging(vol)), 0, "the retry finished the unstage");
    assert!(w.loops().is_empty(), "no loop device left: {:?}", w.loops());
    // The next pod gets the volume's own filesystem, not the staging directory's disk.
    w.mount("q", vol, "rw", &[("backend", "loop"), ("size", "32Mi")]).ok();
    assert_eq!(w.mounts_at(&w.staging(vol)), 1);
    w.unmount("q", vol).ok();
    w.finish();
}
