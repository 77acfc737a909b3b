//! Root tier: resources that run out and promises that are kept, through the real `strata-csi
//! serve` with its data root on a small tmpfs made here. A full disk or inode table answers
//! RESOURCE_EXHAUSTED naming what ran out, leaves no mount, loop device or directory, and the
//! same calls succeed once space is back; tmpfs limits and sparse images are accounted, refused
//! beyond the budget unless `--overcommit` allows it; `allocation: thick` preallocates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;
mod flex_support;

use csi_support::*;
use flex_support::{Reply as FlexReply, World};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use strata::csi::proto::{self as p};
use strata::sys::{Host, LinuxHost, MountOptions, place_at};
use tonic::Code;

const MIB: i64 = 1 << 20;

/// A tmpfs of its own (`size=`, `nr_inodes=`) under a temp dir, unmounted at drop.
struct SmallFs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SmallFs {
    fn new(options: &str) -> SmallFs {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small");
        std::fs::create_dir(&path).unwrap();
        let opts = MountOptions { readonly: false, options: options.split(',').map(str::to_owned).collect() };
        LinuxHost.mount(Path::new("tmpfs"), &place_at(&path).unwrap(), "tmpfs", &opts).unwrap();
        SmallFs { _dir: dir, path }
    }

    fn root(&self) -> PathBuf {
        self.path.join("root")
    }

    /// Writes a file beside the root until the filesystem has no block left.
    fn fill_blocks(&self) {
        let mut f = std::fs::File::create(self.path.join("filler")).unwrap();
        let chunk = vec![0x5a_u8; 64 << 10];
        loop {
            if let Err(e) = f.write_all(&chunk) {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                break;
            }
        }
        assert_eq!(self.available(), 0);
    }

    /// Makes empty files beside the root until the filesystem has no inode left.
    fn fill_inodes(&self) {
        let dir = self.path.join("inodes");
        std::fs::create_dir(&dir).unwrap();
        for n in 0.. {
            if let Err(e) = std::fs::File::create(dir.join(n.to_string())) {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                break;
            }
        }
        assert_eq!(nix::sys::statvfs::statvfs(&self.path).unwrap().files_free(), 0);
    }

    fn free_all(&self) {
        let _ = std::fs::remove_file(self.path.join("filler"));
        let _ = std::fs::remove_dir_all(self.path.join("inodes"));
    }

    fn available(&self) -> i64 {
        let st = nix::sys::statvfs::statvfs(&self.path).unwrap();
        (st.blocks_available() * st.fragment_size()) as i64
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        cleanup(&self.path);
        let _ = LinuxHost.unmount(&place_at(&self.path).unwrap(), true);
    }
}

/// Asserts RESOURCE_EXHAUSTED whose message contains `what`.
fn exhausted<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>, what: &str) {
    let status = r.expect_err("the call should fail");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains(what), "{:?} lacks {what:?}", status.message());
}

/// Nothing of volume `name` is left: no directory (nor one aside), mount or loop device.
fn nothing_of(s: &Server, name: &str) {
    for dir in [name.to_owned(), format!(".{name}.new")].map(|n| s.root.join("volumes").join(n)) {
        assert!(!dir.exists(), "{name} left {}", dir.display());
        assert_eq!(mounts_under(&dir), Vec::<PathBuf>::new());
        assert_eq!(loops_under(&dir), Vec::<PathBuf>::new());
    }
}

fn capacity_req(backend: &str) -> p::GetCapacityRequest {
    p::GetCapacityRequest { parameters: params(&[("backend", backend)]), ..Default::default() }
}

async fn capacity(c: &mut Clients, backend: &str) -> i64 {
    c.ctl.get_capacity(capacity_req(backend)).await.unwrap().into_inner().available_capacity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_resource_exhausted_and_leaves_nothing_until_space_is_back() {
    let fs = SmallFs::new("size=48m,mode=0700");
    let s = Server::start_as(NODE, Some(fs.root()), &[]);
    let mut c = s.clients().await;
    let dir = create(&mut c, "pvc-dir", MIB, &[]).await;
    let lp = create(&mut c, "pvc-loop", 16 * MIB, &[("backend", "loop")]).await;
    let (dir_stage, loop_stage) = (s.path("stage-dir"), s.path("stage-loop"));
    std::fs::create_dir_all(&dir_stage).unwrap();
    std::fs::create_dir_all(&loop_stage).unwrap();
    let (pub_stage, target) = (s.path("stage-pub"), s.path("pod/vol"));
    std::fs::create_dir_all(Path::new(&target).parent().unwrap()).unwrap();
    let published = create(&mut c, "pvc-pub", MIB, &[]).await;
    c.node.node_stage_volume(stage_req(&published, &pub_stage, mount_cap())).await.unwrap();
    fs.fill_blocks();
    let root = s.root.display().to_string();
    let full = format!("no space left on the data root's filesystem ({root})");

    exhausted(
        c.ctl.create_volume(create_req("pvc-new", MIB, &[])).await,
        &format!("space on the data root's filesystem ({root})"),
    );
    nothing_of(&s, "pvc-new");
    exhausted(c.node.node_stage_volume(stage_req(&dir, &dir_stage, mount_cap())).await, &full);
    exhausted(c.node.node_stage_volume(stage_req(&lp, &loop_stage, mount_cap())).await, &full);
    assert_eq!(mounts_under(&s.kubelet), vec![PathBuf::from(&pub_stage)], "only the stage made before");
    assert_eq!(loops_under(&s.root), Vec::<PathBuf>::new());
    assert!(Path::new(&dir_stage).is_dir() && Path::new(&loop_stage).is_dir(), "the CO's staging dirs stay");
    // Node state's two files were made with the volume and at its stage, so recording a
    // publication overwrites blocks it has: a publish needs no new space on the data root.
    let publish = publish_req(&published, &pub_stage, &target, mount_cap());
    c.node.node_publish_volume(publish.clone()).await.expect("publish on a full data root");
    assert!(mount_at(&target).is_some());

    fs.free_all();
    c.node.node_stage_volume(stage_req(&dir, &dir_stage, mount_cap())).await.expect("stage dir once space is back");
    c.node.node_stage_volume(stage_req(&lp, &loop_stage, mount_cap())).await.expect("stage loop once space is back");
    let new = create(&mut c, "pvc-new", MIB, &[]).await;
    c.node.node_publish_volume(publish).await.expect("publish once space is back");
    close(&mut c, &published, &pub_stage, &target).await;
    for (id, staging) in [(&dir, &dir_stage), (&lp, &loop_stage)] {
        c.node.node_unstage_volume(unstage_req(id, staging)).await.unwrap();
    }
    for id in [dir, lp, new, published] {
        c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: id, ..Default::default() }).await.unwrap();
    }
    assert_eq!(mounts_under(&s.kubelet), Vec::<PathBuf>::new());
    for name in ["pvc-dir", "pvc-loop", "pvc-new", "pvc-pub"] {
        nothing_of(&s, name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_inodes_is_named_and_retries_succeed() {
    let fs = SmallFs::new("size=48m,nr_inodes=400,mode=0700");
    let s = Server::start_as(NODE, Some(fs.root()), &[]);
    let mut c = s.clients().await;
    let dir = create(&mut c, "pvc-dir", MIB, &[]).await;
    let staging = s.path("stage");
    std::fs::create_dir_all(&staging).unwrap();
    fs.fill_inodes();
    let what = format!("out of inodes on the data root's filesystem ({})", s.root.display());

    // Creates that take a directory made ahead (at most the eight of the pool) need no inode;
    // the first that must make its own is refused.
    let mut refused = None;
    for i in 0..=8 {
        let name = format!("pvc-new-{i}");
        match c.ctl.create_volume(create_req(&name, MIB, &[])).await {
            Ok(_) => continue,
            Err(e) => {
                refused = Some((name, e));
                break;
            }
        }
    }
    let (name, status) = refused.expect("a create past the directories made ahead is refused");
    exhausted::<()>(Err(status), &what);
    nothing_of(&s, &name);
    exhausted(c.node.node_stage_volume(stage_req(&dir, &staging, mount_cap())).await, &what);
    assert_eq!(mounts_under(&s.kubelet), Vec::<PathBuf>::new());

    fs.free_all();
    create(&mut c, &name, MIB, &[]).await;
    c.node.node_stage_volume(stage_req(&dir, &staging, mount_cap())).await.expect("stage once inodes are back");
    c.node.node_unstage_volume(unstage_req(&dir, &staging)).await.unwrap();
}

/// MemAvailable in bytes, as the server reads it.
fn mem_available() -> i64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap())
        .unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tmpfs_limits_are_promised_against_memory_unless_overcommitted() {
    require_root();
    let size = mem_available() * 8 / 10 / 4096 * 4096;
    let tmpfs = [("backend", "tmpfs")];
    {
        let s = Server::start();
        let mut c = s.clients().await;
        let before = capacity(&mut c, "tmpfs").await;
        assert!((before - mem_available()).abs() < before / 10, "GetCapacity is MemAvailable: {before}");
        let first = create(&mut c, "pvc-t1", size, &tmpfs).await;
        let left = capacity(&mut c, "tmpfs").await;
        let expect = mem_available() - size;
        assert!((left - expect).abs() < before / 20, "GetCapacity {left} is about MemAvailable - promised {expect}");
        exhausted(c.ctl.create_volume(create_req("pvc-t2", size, &tmpfs)).await, "not enough memory");
        assert!(!s.root.join("volumes/pvc-t2").exists());
        assert!(capacity(&mut c, "dir").await > 0, "memory promises are not the disk's");
        c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: first, ..Default::default() }).await.unwrap();
    }
    let s = Server::start_with(&["--overcommit", "tmpfs=3"]);
    let mut c = s.clients().await;
    let mut ids = Vec::new();
    for name in ["pvc-t1", "pvc-t2", "pvc-t3"] {
        ids.push(create(&mut c, name, size, &tmpfs).await);
    }
    exhausted(c.ctl.create_volume(create_req("pvc-t4", size, &tmpfs)).await, "overcommit ratio 3");
    for id in ids {
        c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: id, ..Default::default() }).await.unwrap();
    }
}

/// The bytes of the image of volume `name` that are allocated.
fn allocated(s: &Server, name: &str) -> i64 {
    (std::fs::metadata(s.root.join("volumes").join(name).join("disk.img")).unwrap().blocks() * 512) as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparse_images_are_promised_and_thick_ones_are_allocated() {
    let fs = SmallFs::new("size=64m,mode=0700");
    let loop_ = [("backend", "loop")];
    let thick = [("backend", "loop"), ("allocation", "thick")];
    {
        let s = Server::start_as(NODE, Some(fs.root()), &[]);
        let mut c = s.clients().await;
        assert_eq!(capacity(&mut c, "loop").await, fs.available(), "nothing promised yet");
        create(&mut c, "pvc-thin", 32 * MIB, &loop_).await;
        let promised = 32 * MIB - allocated(&s, "pvc-thin");
        assert_eq!(capacity(&mut c, "loop").await, fs.available() - promised);
        assert_eq!(capacity(&mut c, "dir").await, fs.available() - promised, "the same filesystem");
        exhausted(c.ctl.create_volume(create_req("pvc-thin2", 32 * MIB, &loop_)).await, "data root's filesystem");
        nothing_of(&s, "pvc-thin2");

        create(&mut c, "pvc-thick", 16 * MIB, &thick).await;
        assert!(allocated(&s, "pvc-thick") >= 16 * MIB, "the thick image is allocated");
        assert_eq!(capacity(&mut c, "loop").await, fs.available() - promised, "a thick image promises nothing");
        exhausted(c.ctl.create_volume(create_req("pvc-thick2", 16 * MIB, &thick)).await, "data root's filesystem");
        nothing_of(&s, "pvc-thick2");
    }
    // Overcommitted, the thin image is accepted; a thick one still needs the blocks themselves.
    let s = Server::start_as(NODE, Some(fs.root()), &["--overcommit", "loop=10"]);
    let mut c = s.clients().await;
    create(&mut c, "pvc-thin2", 32 * MIB, &loop_).await;
    let free = fs.available();
    let too_big = create_req("pvc-thick2", free + 8 * MIB, &thick);
    exhausted(c.ctl.create_volume(too_big).await, "no space left on the data root's filesystem");
    nothing_of(&s, "pvc-thick2");
    assert_eq!(fs.available(), free, "the partial preallocation is gone");
    let small = create(&mut c, "pvc-thick3", 4 * MIB, &thick).await;
    assert!(allocated(&s, "pvc-thick3") >= 4 * MIB);
    c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: small, ..Default::default() }).await.unwrap();
}

/// strata-flex `mount` of `volume` for `pod` on data root `root`, with `env` added.
fn flex_mount(
    w: &World,
    root: &Path,
    pod: &str,
    volume: &str,
    user: &[(&str, &str)],
    env: &[(&str, &str)],
) -> FlexReply {
    let dir = w.pod_dir(pod, volume);
    let json = w.mount_json(pod, volume, "rw", user);
    let mut cmd = w.command(&["mount", dir.to_str().unwrap(), &json]);
    cmd.env("STRATA_FLEX_ROOT", root).envs(env.iter().copied());
    flex_support::parse_output(&cmd.output().unwrap())
}

#[test]
fn flexvolume_gets_the_same_failures_and_overcommit_from_its_environment() {
    let fs = SmallFs::new("size=48m,mode=0700");
    let w = World::new();
    let root = fs.root();
    flex_mount(&w, &root, "p1", "fv1", &[("size", "1Mi")], &[]).ok();
    fs.fill_blocks();
    let full = format!("space on the data root's filesystem ({})", root.display());
    flex_mount(&w, &root, "p2", "fv2", &[("size", "1Mi")], &[]).failed(&full);
    assert!(!root.join("volumes/fv2").exists() && !root.join("staging/fv2").exists());
    fs.free_all();
    flex_mount(&w, &root, "p2", "fv2", &[("size", "1Mi")], &[]).ok();
    for (pod, vol) in [("p1", "fv1"), ("p2", "fv2")] {
        let dir = w.pod_path(pod, vol);
        let mut cmd = w.command(&["unmount", dir.to_str().unwrap()]);
        flex_support::parse_output(&cmd.env("STRATA_FLEX_ROOT", &root).output().unwrap()).ok();
    }

    // tmpfs volumes on the world's own root: the second of 0.8x memory only with overcommit.
    let size = (mem_available() * 8 / 10 / 4096 * 4096).to_string();
    let tmpfs = [("backend", "tmpfs"), ("size", size.as_str())];
    flex_mount(&w, &w.root, "p3", "ft1", &tmpfs, &[]).ok();
    flex_mount(&w, &w.root, "p4", "ft2", &tmpfs, &[]).failed("not enough memory");
    flex_mount(&w, &w.root, "p4", "ft2", &tmpfs, &[("STRATA_FLEX_OVERCOMMIT", "tmpfs=3")]).ok();
    for (pod, vol) in [("p3", "ft1"), ("p4", "ft2")] {
        w.unmount(pod, vol).ok();
    }
    w.finish();
}
