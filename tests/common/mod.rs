//! Helpers shared by the root-tier tests: root check, leak checks, a scratch btrfs filesystem.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub mod env;
use strata::sys::{Host, LinuxHost};

/// Root-tier tests need root; without it they fail loudly instead of passing by skipping.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this root-tier test mounts filesystems and attaches loop devices: run it as root (CI does)"
    );
}

/// Whether this process may resize ext4 online (CAP_SYS_RESOURCE, capability bit 24).
pub fn has_cap_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap().trim();
    u64::from_str_radix(eff, 16).unwrap() & (1 << 24) != 0
}

/// Mount points at or below `dir`, from the kernel's mount table.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    strata::sys::mountinfo::parse(&text).into_iter().map(|m| m.mount_point).filter(|p| p.starts_with(dir)).collect()
}

/// Loop devices whose backing file lies at or below `dir`: by the file's device and inode, or
/// by the path the kernel shows (see `strata::sys::loops_under`).
pub fn loops_under(dir: &Path) -> Vec<String> {
    use strata::sys::Host;
    let loops = strata::sys::LinuxHost.loop_list().unwrap();
    strata::sys::loops_under(&loops, dir)
        .into_iter()
        .map(|l| format!("{} -> {}", l.device.display(), l.backing_file.display()))
        .collect()
}

/// Every entry but a directory at or below `dir` (a stack, not recursion; never through a
/// symlink).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            if is_dir { stack.push(e.path()) } else { out.push(e.path()) }
        }
    }
    out
}

/// On drop, unmounts whatever is still mounted below `dir` and detaches loop devices backed by
/// files below it, so a failing test leaves nothing behind for the next one. Runs after the
/// test's own assertions, so it hides no leak from them.
pub struct Cleanup(pub PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut mounts = mounts_under(&self.0);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for m in mounts.iter().filter(|m| !m.ends_with("btrfs")) {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
        for dev in loops_under(&self.0).iter().filter(|l| !l.ends_with("btrfs.img")) {
            let name = dev.split(' ').next().unwrap_or_default();
            let _ = LinuxHost.loop_detach(&Path::new("/dev").join(name));
        }
    }
}

/// A btrfs filesystem on a loop device, mounted at `mount`; torn down on drop.
pub struct ScratchBtrfs {
    pub mount: PathBuf,
    device: String,
}

impl ScratchBtrfs {
    pub fn new(dir: &Path, bytes: u64) -> ScratchBtrfs {
        let image = dir.join("btrfs.img");
        std::fs::File::create(&image).unwrap().set_len(bytes).unwrap();
        let device = LinuxHost.loop_attach(&image, false).expect("attach a loop device").to_string_lossy().into_owned();
        let mkfs = Command::new("/usr/sbin/mkfs.btrfs")
            .args(["-q", "-f", &device])
            .output()
            .expect("mkfs.btrfs (btrfs-progs) is installed");
        assert!(mkfs.status.success(), "mkfs.btrfs: {}", String::from_utf8_lossy(&mkfs.stderr));
        let mount = dir.join("btrfs");
        std::fs::create_dir(&mount).unwrap();
        nix::mount::mount(Some(device.as_str()), &mount, Some("btrfs"), nix::mount::MsFlags::empty(), None::<&str>)
            .expect("mount btrfs");
        ScratchBtrfs { mount, device }
    }
}

impl Drop for ScratchBtrfs {
    fn drop(&mut self) {
        unmount_and_detach(&self.mount, Path::new(&self.device));
    }
}

/// Unmounts a scratch filesystem for real, then detaches its loop device. After a lazy unmount
/// the filesystem may still hold the device, and a detach then fails and leaks it, so both steps
/// are retried while busy (up to 5 s each), and a device left attached fails the test.
#[allow(dead_code)]
pub fn unmount_and_detach(mount: &Path, device: &Path) {
    let unmounted = retry_while_busy(|| nix::mount::umount2(mount, nix::mount::MntFlags::empty()).is_ok());
    if !unmounted {
        let _ = nix::mount::umount2(mount, nix::mount::MntFlags::MNT_DETACH);
    }
    let detached = retry_while_busy(|| LinuxHost.loop_detach(device).is_ok());
    assert!(detached || std::thread::panicking(), "{} stays attached", device.display());
}

/// Tries `step` for up to 5 s; whether it succeeded.
fn retry_while_busy(mut step: impl FnMut() -> bool) -> bool {
    for _ in 0..50 {
        if step() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}
