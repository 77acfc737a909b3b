//! Root tier: the tree engine (`strata::sys::tree`) on the real kernel with what only root can
//! make in a volume: device nodes, other owners, set-id bits, trusted attributes, mounts inside
//! the tree, a million entries, a 1 TiB sparse file on a filesystem of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Cleanup, require_root};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use strata::sys::tree::{self, Error as TreeError};
use strata::sys::{Host, LinuxHost};

fn scratch() -> (tempfile::TempDir, Cleanup) {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let cleanup = Cleanup(d.path().to_owned());
    (d, cleanup)
}

#[test]
fn device_nodes_are_left_out_and_owners_set_ids_and_attributes_kept() {
    let (d, _c) = scratch();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    std::fs::create_dir(&src).unwrap();
    mknod(&src.join("null"), SFlag::S_IFCHR, Mode::from_bits_truncate(0o666), makedev(1, 3)).unwrap();
    mknod(&src.join("loop"), SFlag::S_IFBLK, Mode::from_bits_truncate(0o660), makedev(7, 0)).unwrap();
    let tool = src.join("tool");
    std::fs::write(&tool, b"#!/bin/sh\n").unwrap();
    std::os::unix::fs::chown(&tool, Some(1234), Some(5678)).unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o4755)).unwrap();
    rustix::fs::setxattr(&tool, "trusted.strata", b"root-only", rustix::fs::XattrFlags::empty()).unwrap();
    std::os::unix::fs::lchown(src.join("."), Some(42), Some(43)).unwrap();
    std::os::unix::fs::symlink("/dev/sda", src.join("link")).unwrap();
    std::os::unix::fs::lchown(src.join("link"), Some(7), Some(8)).unwrap();

    let report = tree::copy_tree(&src, &dst).unwrap();

    assert_eq!(report.devices_skipped, 2, "{report:?}");
    assert!(!dst.join("null").exists() && !dst.join("loop").exists(), "no device node was made");
    let meta = std::fs::metadata(dst.join("tool")).unwrap();
    assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o7777), (1234, 5678, 0o4755), "owner then set-uid bit");
    let mut buf = [0u8; 16];
    let n = rustix::fs::getxattr(dst.join("tool"), "trusted.strata", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"root-only");
    let top = std::fs::metadata(&dst).unwrap();
    assert_eq!((top.uid(), top.gid()), (42, 43), "the top directory's owner");
    let link = std::fs::symlink_metadata(dst.join("link")).unwrap();
    assert!(link.file_type().is_symlink());
    assert_eq!((link.uid(), link.gid()), (7, 8), "a symlink's own owner");
}

/// A tmpfs mounted at `at`, holding one file.
fn mount_tmpfs(at: &Path) {
    std::fs::create_dir_all(at).unwrap();
    nix::mount::mount(Some("tmpfs"), at, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=1m")).unwrap();
    std::fs::write(at.join("not-the-volume's"), b"x").unwrap();
}

#[test]
fn what_is_mounted_inside_a_tree_is_not_copied_counted_or_removed() {
    let (d, _c) = scratch();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/mine"), b"x").unwrap();
    mount_tmpfs(&src.join("sub/m"));
    std::fs::write(src.join("file-target"), b"").unwrap();
    std::fs::write(d.path().join("host-file"), b"host").unwrap();
    let bind = nix::mount::MsFlags::MS_BIND;
    nix::mount::mount(Some(&d.path().join("host-file")), &src.join("file-target"), None::<&str>, bind, None::<&str>)
        .unwrap();

    let report = tree::copy_tree(&src, &dst).unwrap();
    assert_eq!(report.mounts_skipped, 2, "{report:?}");
    assert!(dst.join("sub/m").is_dir() && std::fs::read_dir(dst.join("sub/m")).unwrap().next().is_none());
    assert!(!dst.join("file-target").exists(), "a bound file is not the volume's");
    assert_eq!(std::fs::read(dst.join("sub/mine")).unwrap(), b"x");
    assert_eq!(tree::measure(&src).unwrap().inodes, 3, "the top, sub and sub/mine; not the mounts");

    let refused = tree::remove_tree(&src).unwrap_err();
    assert!(matches!(refused, TreeError::MountInside { .. }), "{refused}");
    assert!(src.join("sub/mine").exists(), "a refused removal removes nothing");
    assert!(tree::remove_tree(&src.join("sub/m")).is_err(), "a mount root itself is refused");
    nix::mount::umount(&src.join("sub/m")).unwrap();
    nix::mount::umount(&src.join("file-target")).unwrap();
    tree::remove_tree(&src).unwrap();
    assert!(!src.exists());
}

#[test]
fn a_million_entries_are_copied_measured_and_removed() {
    let (d, _c) = scratch();
    // On a tmpfs of its own: what is measured is the walk, not the disk's cost of an inode.
    let fs = d.path().join("fs");
    std::fs::create_dir(&fs).unwrap();
    let opts = "size=64m,nr_inodes=3m";
    nix::mount::mount(Some("tmpfs"), &fs, Some("tmpfs"), nix::mount::MsFlags::empty(), Some(opts)).unwrap();
    let (src, dst) = (fs.join("src"), fs.join("dst"));
    std::fs::create_dir(&src).unwrap();
    let dir = rustix::fs::open(&src, rustix::fs::OFlags::DIRECTORY, rustix::fs::Mode::empty()).unwrap();
    let flags = rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CREATE | rustix::fs::OFlags::CLOEXEC;
    for i in 0..1_000_000u32 {
        drop(
            rustix::fs::openat(&dir, format!("f{i}").as_str(), flags, rustix::fs::Mode::from_raw_mode(0o644)).unwrap(),
        );
    }
    drop(dir);
    let report = tree::copy_tree(&src, &dst).unwrap();
    assert_eq!(report.files, 1_000_000);
    assert_eq!(tree::measure(&dst).unwrap().inodes, 1_000_001);
    tree::remove_tree(&src).unwrap();
    tree::remove_tree(&dst).unwrap();
    assert!(!src.exists() && !dst.exists());
    nix::mount::umount(&fs).unwrap();
}

/// A 64 MiB ext4 (4 KiB blocks) on a loop device, mounted at `<dir>/fs`.
struct ScratchExt4 {
    mount: PathBuf,
    device: PathBuf,
}

impl ScratchExt4 {
    fn new(dir: &Path) -> ScratchExt4 {
        let image = dir.join("ext4.img");
        std::fs::File::create(&image).unwrap().set_len(64 << 20).unwrap();
        let device = LinuxHost.loop_attach(&image, false).unwrap();
        let mkfs = Command::new("/usr/sbin/mkfs.ext4").args(["-q", "-F", "-b", "4096"]).arg(&device).output().unwrap();
        assert!(mkfs.status.success(), "mkfs.ext4: {}", String::from_utf8_lossy(&mkfs.stderr));
        let mount = dir.join("fs");
        std::fs::create_dir(&mount).unwrap();
        nix::mount::mount(Some(&device), &mount, Some("ext4"), nix::mount::MsFlags::empty(), None::<&str>).unwrap();
        ScratchExt4 { mount, device }
    }

    fn free(&self) -> u64 {
        let st = nix::sys::statvfs::statvfs(&self.mount).unwrap();
        st.blocks_available() * st.fragment_size()
    }
}

impl Drop for ScratchExt4 {
    fn drop(&mut self) {
        common::unmount_and_detach(&self.mount, &self.device);
    }
}

#[test]
fn a_1_tib_sparse_file_is_copied_on_a_64_mib_filesystem_without_using_its_space() {
    let (d, _c) = scratch();
    let fs = ScratchExt4::new(d.path());
    let (src, dst) = (fs.mount.join("src"), fs.mount.join("dst"));
    std::fs::create_dir(&src).unwrap();
    let f = std::fs::File::create(src.join("huge")).unwrap();
    f.set_len(1 << 40).unwrap();
    rustix::io::pwrite(&f, &[7u8; 4096], 1 << 39).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let before = fs.free();
    let report = tree::copy_tree(&src, &dst).unwrap();
    rustix::fs::sync();
    let used = before.saturating_sub(fs.free());
    assert!(used <= 256 << 10, "the copy used {used} bytes of the filesystem ({report:?})");
    assert_eq!(report.bytes, 4096, "only the data extent was read");
    let copy = std::fs::File::open(dst.join("huge")).unwrap();
    assert_eq!(copy.metadata().unwrap().len(), 1 << 40);
    let mut block = [0u8; 4096];
    rustix::io::pread(&copy, &mut block, 1 << 39).unwrap();
    assert_eq!(block, [7u8; 4096]);
    assert!(std::fs::symlink_metadata(dst.join("huge")).unwrap().file_type().is_file());
}

#[test]
fn fifos_and_sockets_are_copied_as_what_they_are_without_blocking() {
    let (d, _c) = scratch();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    std::fs::create_dir(&src).unwrap();
    nix::unistd::mkfifo(&src.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
    let report = tree::copy_tree(&src, &dst).unwrap();
    assert_eq!(report.specials, 2);
    assert!(std::fs::symlink_metadata(dst.join("fifo")).unwrap().file_type().is_fifo());
    assert!(std::fs::symlink_metadata(dst.join("sock")).unwrap().file_type().is_socket());
}
