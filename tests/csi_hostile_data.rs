//! Root tier: what a pod writes into its own volume cannot hurt the node, through the real
//! `strata-csi serve`. A directory swapped for a symlink to a host directory while snapshots and
//! clones copy the volume never brings a host file into a copy; a tree 100,000 directories deep
//! goes through stats, snapshot, restore, clone, delete, and a restart on its leftovers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;

use csi_support::*;
use nix::sys::signal::Signal;
use rustix::fs::{Mode, OFlags, RenameFlags};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use strata::csi::proto::volume_content_source::{SnapshotSource, Type, VolumeSource};
use strata::csi::proto::{self as p};
use tonic::Code;

const SECRET: &[u8] = b"HOST SECRET: never in a volume";

fn snap_req(name: &str, source: &str) -> p::CreateSnapshotRequest {
    p::CreateSnapshotRequest { name: name.into(), source_volume_id: source.into(), ..Default::default() }
}

fn source(t: Type) -> Option<p::VolumeContentSource> {
    Some(p::VolumeContentSource { r#type: Some(t) })
}

fn from_volume(id: &str) -> Option<p::VolumeContentSource> {
    source(Type::Volume(VolumeSource { volume_id: id.into() }))
}

fn from_snapshot(id: &str) -> Option<p::VolumeContentSource> {
    source(Type::Snapshot(SnapshotSource { snapshot_id: id.into() }))
}

/// The engine's id of a CSI id (`<id>@<node>`).
fn local(csi_id: &str) -> &str {
    csi_id.split('@').next().unwrap()
}

/// Every regular file below `dir` whose contents are the host's secret (walked with a stack,
/// never following a symlink).
fn host_files_in(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let t = entry.file_type().unwrap();
            if t.is_dir() {
                stack.push(entry.path());
            } else if t.is_file() && std::fs::read(entry.path()).unwrap() == SECRET {
                found.push(entry.path());
            }
        }
    }
    found
}

/// Stops the swapper when dropped, so a failing test does not leave it running.
struct Stop(Arc<AtomicBool>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Swaps `a` and `b` (a directory and a symlink) with `renameat2(RENAME_EXCHANGE)` until told
/// to stop, as a pod can in its own volume.
fn swapper(dir: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let fd = rustix::fs::open(&dir, OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let mut swaps = 0;
        while !stop.load(Ordering::Relaxed) {
            rustix::fs::renameat_with(&fd, "a", &fd, "b", RenameFlags::EXCHANGE).unwrap();
            swaps += 1;
        }
        swaps
    })
}

async fn race(backend: &str) {
    require_root();
    let s = Server::start();
    let host = s.dir.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("secret.txt"), SECRET).unwrap();
    let mut c = s.clients().await;
    let vol = create(&mut c, "victim", 64 << 20, &[("backend", backend)]).await;
    let (staging, target) = (s.path("staging-victim"), s.path("pods/p/victim"));
    open(&mut c, &vol, &staging, &target, mount_cap()).await;
    let pod = Path::new(&target);
    std::fs::create_dir_all(pod.join("a/deeper")).unwrap();
    for i in 0..50 {
        std::fs::write(pod.join(format!("a/file-{i}")), b"mine").unwrap();
        std::fs::write(pod.join(format!("a/deeper/file-{i}")), b"mine").unwrap();
    }
    std::os::unix::fs::symlink(&host, pod.join("b")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapping = swapper(pod.to_owned(), stop.clone());
    let _stop = Stop(stop.clone());
    let mut copies = Vec::new();
    let mut refused = 0;
    for i in 0..10 {
        let snap = c.ctl.create_snapshot(snap_req(&format!("snap-{i}"), &vol)).await;
        let mut clone = create_req(&format!("clone-{i}"), 64 << 20, &[("backend", backend)]);
        clone.volume_content_source = from_volume(&vol);
        let cloned = c.ctl.create_volume(clone).await;
        for (what, result) in [
            ("snapshot", snap.map(|r| r.into_inner().snapshot.unwrap().snapshot_id)),
            ("clone", cloned.map(|r| r.into_inner().volume.unwrap().volume_id)),
        ] {
            match result {
                Ok(id) if what == "snapshot" => copies.push(s.root.join("snapshots").join(local(&id)).join("data")),
                Ok(id) => copies.push(s.root.join("volumes").join(local(&id)).join("data")),
                Err(status) => {
                    assert_eq!(status.code(), Code::Aborted, "a {what} that lost the race says retry: {status:?}");
                    refused += 1;
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapping.join().unwrap();
    assert!(swaps > 1000, "the pod swapped while the copies ran ({swaps} swaps)");
    assert!(copies.len() + refused == 20 && !copies.is_empty(), "{} copies, {refused} refused", copies.len());
    for copy in &copies {
        assert_eq!(host_files_in(copy), Vec::<PathBuf>::new(), "host files in {}", copy.display());
        for name in ["a", "b"] {
            // Each is the directory or the symlink, as the copy found it (both can be either,
            // the pod swapped them between the two looks); a symlink still names the host
            // path, which means nothing in a pod.
            let meta = std::fs::symlink_metadata(copy.join(name)).unwrap();
            assert!(meta.is_dir() || meta.is_symlink(), "{}", copy.join(name).display());
        }
    }
    close(&mut c, &vol, &staging, &target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_swapped_for_a_symlink_never_brings_host_files_into_a_dir_copy() {
    race("dir").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_swapped_for_a_symlink_never_brings_host_files_into_a_tmpfs_copy() {
    race("tmpfs").await;
}

const DEPTH: usize = 100_000;

/// Makes a chain of [`DEPTH`] directories below `top`, one level at a time relative to the last
/// (as a pod would), with a file at the bottom.
fn deep_chain(top: &Path) {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut fd = rustix::fs::open(top, flags, Mode::empty()).unwrap();
    for _ in 0..DEPTH {
        rustix::fs::mkdirat(&fd, "d", Mode::from_raw_mode(0o755)).unwrap();
        fd = rustix::fs::openat(&fd, "d", flags, Mode::empty()).unwrap();
    }
    rustix::fs::mkdirat(&fd, "bottom", Mode::from_raw_mode(0o755)).unwrap();
}

/// How deep the chain below `top` goes, and whether its bottom is there.
fn chain_depth(top: &Path) -> (usize, bool) {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut fd = rustix::fs::open(top, flags, Mode::empty()).unwrap();
    let mut depth = 0;
    while let Ok(next) = rustix::fs::openat(&fd, "d", flags, Mode::empty()) {
        fd = next;
        depth += 1;
    }
    (depth, rustix::fs::openat(&fd, "bottom", flags, Mode::empty()).is_ok())
}

/// Kills the server and starts it again with the crash point `at` armed (or none).
async fn restart(s: &mut Server, at: Option<&str>) -> Clients {
    s.stop(Signal::SIGKILL);
    s.env = at.map(|a| vec![("STRATA_CRASH_AT".to_owned(), a.to_owned())]).unwrap_or_default();
    s.spawn();
    s.clients().await
}

/// A tmpfs for the data root: a deep tree costs an inode per level, and the root's disk here
/// pays for each inode as much as for an fsync.
struct MemoryRoot(PathBuf);

impl MemoryRoot {
    fn new() -> MemoryRoot {
        let at = tempfile::tempdir().unwrap().keep();
        let opts = "size=2g,nr_inodes=2m";
        nix::mount::mount(Some("tmpfs"), &at, Some("tmpfs"), nix::mount::MsFlags::empty(), Some(opts)).unwrap();
        MemoryRoot(at)
    }
}

impl Drop for MemoryRoot {
    fn drop(&mut self) {
        cleanup(&self.0);
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_100_000_deep_goes_through_stats_snapshot_clone_delete_and_restart() {
    require_root();
    let memory = MemoryRoot::new();
    let mut s = Server::start_as(NODE, Some(memory.0.join("root")), &[]);
    let mut c = s.clients().await;
    let vol = create(&mut c, "deep", 64 << 20, &[]).await;
    let (staging, target) = (s.path("staging-deep"), s.path("pods/p/deep"));
    open(&mut c, &vol, &staging, &target, mount_cap()).await;
    deep_chain(Path::new(&target));

    let stats = c.node.node_get_volume_stats(stats_req(&vol, &target)).await.expect("stats").into_inner();
    let inodes = stats.usage.iter().find(|u| u.unit == p::volume_usage::Unit::Inodes as i32).unwrap();
    assert!(inodes.used > DEPTH as i64, "{inodes:?}");

    // The copies of a tree this deep outlast the calls: answered at once, whole later.
    let snap_id = until_ready(&mut c, snap_req("deep-snap", &vol)).await.snapshot_id;
    let mut restore = create_req("restored", 64 << 20, &[]);
    restore.volume_content_source = from_snapshot(&snap_id);
    let restored = until_created(&mut c, restore).await;
    let mut clone = create_req("cloned", 64 << 20, &[]);
    clone.volume_content_source = from_volume(&vol);
    let cloned = until_created(&mut c, clone).await;
    for id in [&restored, &cloned] {
        let data = s.root.join("volumes").join(local(id)).join("data");
        assert_eq!(chain_depth(&data), (DEPTH, true), "{id} holds the whole tree");
    }
    close(&mut c, &vol, &staging, &target).await;

    // A delete and a snapshot killed half-way leave deep trees aside; each restart finishes them.
    let del = |id: &str| p::DeleteVolumeRequest { volume_id: id.into(), ..Default::default() };
    let aside = s.root.join("volumes").join(format!(".{}.del", local(&cloned)));
    let mut c = restart(&mut s, Some("delete:unrecorded")).await;
    assert!(c.ctl.delete_volume(del(&cloned)).await.is_err(), "the delete died with the server");
    assert!(aside.exists(), "the delete was killed after it moved the volume aside");
    let mut c = restart(&mut s, Some("snapshot:copied")).await;
    assert!(!aside.exists(), "the start finished the delete: {}", s.log_text());
    assert!(c.ctl.create_snapshot(snap_req("half", &restored)).await.is_err(), "the snapshot died with the server");
    assert!(s.root.join("snapshots/.half.new").exists());
    let mut c = restart(&mut s, None).await;
    c.id.probe(p::ProbeRequest {}).await.expect("the server started on the deep leftovers");
    assert!(!s.root.join("snapshots/.half.new").exists(), "{}", s.log_text());

    c.ctl.delete_volume(del(&restored)).await.expect("delete of a deep volume");
    c.ctl.delete_volume(del(&vol)).await.expect("delete of a deep volume");
    let del_snap = p::DeleteSnapshotRequest { snapshot_id: snap_id, ..Default::default() };
    c.ctl.delete_snapshot(del_snap).await.expect("delete of a deep snapshot");
    // The deletes answered once the volumes were aside; the server removes the deep trees after.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let left = || volume_entries(&s.root);
    while !left().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(left().is_empty(), "{:?}", left());
    drop(c);
    drop(s);
}
