//! The fault tester (root tier): a seeded CO-like workload against the real `strata-csi serve`
//! and a seeded kubelet against the real `strata-flex`, with SIGKILLs mid-call, simulated reboots
//! and restarts in new mount namespaces. Every acknowledged write must read back, no call may
//! answer INTERNAL or UNKNOWN or get stuck, and the node must be clean after the final cleanup.
//!
//! `STRATA_FAULT_SEED` (decimal or 0x-hex) and `STRATA_FAULT_OPS` choose the run; the seed and a
//! one-line summary are printed so that a failure can be replayed; `STRATA_FAULT_NO_NS=1` keeps
//! every restart in the host's mount namespace (to tell namespace bugs from the others).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod csi_support;
mod fault_support;
mod flex_support;

use fault_support::{co::Co, kubelet::Kubelet, settings};

/// The classes of operation a default-length CSI run must have exercised.
const CSI_CLASSES: [&str; 12] = [
    "create",
    "restore",
    "clone",
    "stage",
    "publish",
    "verify",
    "snapshot",
    "controller expand",
    "unpublish",
    "unstage",
    "delete",
    "delete snapshot",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csi_survives_kills_reboots_and_namespace_restarts() {
    common::require_root();
    let (seed, ops) = settings(300);
    println!("csi fault run: STRATA_FAULT_SEED={seed:#x} STRATA_FAULT_OPS={ops}");
    let mut co = Co::start(seed).await;
    co.run(ops).await;
    println!("csi operations done: {:?}", co.done);
    println!("{}", co.tally.summary("csi"));
    co.tally.assert_clean("csi");
    if ops >= 300 {
        let t = &co.tally;
        let missing: Vec<&str> = CSI_CLASSES.iter().copied().filter(|c| !co.done.contains_key(c)).collect();
        assert!(missing.is_empty(), "the run did not cover {missing:?}: {:?}", co.done);
        let no_ns = std::env::var_os("STRATA_FAULT_NO_NS").is_some();
        let covered = t.mid_call_kills > 0 && t.reboots > 0 && (t.ns_restarts > 0 || no_ns) && t.writes > 0;
        assert!(covered, "{}", t.summary("csi"));
    }
}

#[test]
fn flex_survives_kills_mid_mount_and_unmount() {
    common::require_root();
    let (seed, ops) = settings(200);
    println!("flex fault run: STRATA_FAULT_SEED={seed:#x} STRATA_FAULT_OPS={ops}");
    let mut kubelet = Kubelet::new(seed);
    kubelet.run(ops);
    println!("{}", kubelet.tally.summary("flex"));
    kubelet.tally.assert_clean("flex");
    if ops >= 200 {
        let t = &kubelet.tally;
        assert!(t.mid_call_kills > 0 && t.reboots > 0 && t.writes > 0, "{}", t.summary("flex"));
    }
}
