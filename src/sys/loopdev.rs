//! Loop devices driven by ioctls on `/dev/loop-control` and `/dev/loopN`, listed from sysfs.

use super::{Action, Error, LoopDevice, Result};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_GET_STATUS64: libc::c_ulong = 0x4C05;
const LOOP_SET_CAPACITY: libc::c_ulong = 0x4C07;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LO_FLAGS_READ_ONLY: u32 = 1;
/// `F_SETSIG` from `<asm-generic/fcntl.h>` (the same on every Linux architecture; not in `libc`).
const F_SETSIG: libc::c_int = 10;
const LO_NAME_SIZE: usize = 64;

/// `struct loop_info64` from `<linux/loop.h>`.
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; LO_NAME_SIZE],
    crypt_name: [u8; LO_NAME_SIZE],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// `struct loop_config` from `<linux/loop.h>` (kernel 5.8+).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::at(Action::Loop(what), path, source)
}

/// Runs an ioctl whose argument is a plain integer or pointer; maps -1 to the OS error.
fn ioctl(file: &File, request: libc::c_ulong, arg: libc::c_ulong) -> std::io::Result<libc::c_int> {
    // SAFETY: `file` is an open descriptor for the whole call; every request used in this module
    // takes either an integer or a pointer to a live, correctly sized `#[repr(C)]` struct.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request, arg) };
    if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(rc) }
}

/// Attaches `file` to a free loop device; retries when another process takes the same device.
pub fn attach(file: &Path, readonly: bool) -> Result<PathBuf> {
    let backing =
        OpenOptions::new().read(true).write(!readonly).open(file).map_err(io_err("open backing file", file))?;
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .map_err(io_err("open /dev/loop-control", file))?;
    let mut last = None;
    for _ in 0..16 {
        let n = ioctl(&control, LOOP_CTL_GET_FREE, 0).map_err(io_err("find free", file))?;
        let device = PathBuf::from(format!("/dev/loop{n}"));
        match configure(&device, &backing, file, readonly) {
            Ok(()) => return Ok(device),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last = Some(e),
            Err(e) => return Err(io_err("configure", file)(e)),
        }
    }
    Err(io_err("configure", file)(last.unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::EBUSY))))
}

fn configure(device: &Path, backing: &File, file: &Path, readonly: bool) -> std::io::Result<()> {
    let dev = OpenOptions::new().read(true).write(!readonly).open(device)?;
    let mut info = LoopInfo64 {
        device: 0,
        inode: 0,
        rdevice: 0,
        offset: 0,
        sizelimit: 0,
        number: 0,
        encrypt_type: 0,
        encrypt_key_size: 0,
        flags: if readonly { LO_FLAGS_READ_ONLY } else { 0 },
        file_name: [0; LO_NAME_SIZE],
        crypt_name: [0; LO_NAME_SIZE],
        encrypt_key: [0; 32],
        init: [0; 2],
    };
    let name = file.as_os_str().as_bytes();
    let len = name.len().min(LO_NAME_SIZE - 1);
    info.file_name[..len].copy_from_slice(&name[..len]);
    let fd = u32::try_from(backing.as_raw_fd()).map_err(|_| std::io::Error::from_raw_os_error(libc::EBADF))?;
    let config = LoopConfig { fd, block_size: 0, info, reserved: [0; 8] };
    ioctl(&dev, LOOP_CONFIGURE, &config as *const LoopConfig as libc::c_ulong).map(drop)
}

/// Detaches a loop device; one that is already free counts as detached.
pub fn detach(device: &Path) -> Result<()> {
    let dev = File::open(device).map_err(io_err("open", device))?;
    match ioctl(&dev, LOOP_CLR_FD, 0) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(()),
        Err(e) => Err(io_err("detach", device)(e)),
    }
}

/// Detaches `device` only if its backing file is `file` (device and inode), checked and detached
/// through one open of the device: a number freed and taken by another process in between is
/// never detached. `Ok(false)` when it backs something else (or nothing).
pub fn detach_if_backing(device: &Path, file: &Path) -> Result<bool> {
    let want = super::file_identity(file);
    let Some(dev) = open_device(device).map_err(io_err("open", device))? else { return Ok(false) };
    let mut info = std::mem::MaybeUninit::<LoopInfo64>::zeroed();
    match ioctl(&dev, LOOP_GET_STATUS64, info.as_mut_ptr() as libc::c_ulong) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok(false),
        Err(e) => return Err(io_err("status", device)(e)),
    }
    // SAFETY: the ioctl succeeded, so the kernel filled the struct (which was zeroed before).
    let info = unsafe { info.assume_init() };
    if want.is_some_and(|w| w != (info.device, info.inode)) {
        return Ok(false);
    }
    match ioctl(&dev, LOOP_CLR_FD, 0) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(false),
        Err(e) => Err(io_err("detach", device)(e)),
    }
}

/// Whether no open file anywhere holds `file`, so that no loop device backs it: a write lease
/// can be taken on it only then (`F_SETLEASE`, released at once). One open and two `fcntl`s,
/// where listing the devices reads every loop device on the node. `Ok(false)` says only that
/// something has it open (a loop device, a copy reading it); the caller then lists the devices.
pub fn unopened(file: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(file)?;
    if !take_lease(&f)? {
        return Ok(false);
    }
    give_back_lease(&f);
    Ok(true)
}

/// Takes a write lease on the file `f` has open; false when another open file holds it. Whoever
/// opens the file while the lease is held breaks it, and the kernel tells the holder with a
/// signal: SIGURG here, which a process ignores by default (the default, SIGIO, ends it).
fn take_lease(f: &File) -> std::io::Result<bool> {
    // SAFETY: `f` is an open descriptor; F_SETSIG takes a signal number.
    if unsafe { libc::fcntl(f.as_raw_fd(), F_SETSIG, libc::SIGURG) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above; F_SETLEASE takes the lease type as an integer.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EAGAIN) { Ok(false) } else { Err(e) }
}

/// Gives back the lease `f` holds (an opener waiting on its break goes on at once).
fn give_back_lease(f: &File) {
    // SAFETY: `f` is an open descriptor; F_SETLEASE takes the lease type as an integer.
    unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
}

/// Makes the loop driver re-read the size of the backing file.
pub fn set_capacity(device: &Path) -> Result<()> {
    let dev = File::open(device).map_err(io_err("open", device))?;
    ioctl(&dev, LOOP_SET_CAPACITY, 0).map(drop).map_err(io_err("set capacity", device))
}

/// Lists attached loop devices from `/sys/block/loop*/loop/backing_file`.
pub fn list() -> Result<Vec<LoopDevice>> {
    let sys = Path::new("/sys/block");
    let entries = std::fs::read_dir(sys).map_err(io_err("list", sys))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| n.starts_with("loop")) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.path().join("loop/backing_file")) else {
            continue;
        };
        let device = PathBuf::from(format!("/dev/{name}"));
        let backing = backing(&device).ok().flatten();
        out.push(LoopDevice {
            device,
            backing_file: PathBuf::from(strip_deleted(text.trim_end_matches('\n'))),
            backing,
        });
    }
    out.sort_by(|a, b| a.device.cmp(&b.device));
    Ok(out)
}

/// The device and inode of the file behind loop device `device` (`LOOP_GET_STATUS64`), `None`
/// when it has none: the same answer in every mount namespace, unlike the backing file's path.
pub fn backing(device: &Path) -> std::io::Result<Option<(u64, u64)>> {
    let Some(dev) = open_device(device)? else { return Ok(None) };
    let mut info = std::mem::MaybeUninit::<LoopInfo64>::zeroed();
    match ioctl(&dev, LOOP_GET_STATUS64, info.as_mut_ptr() as libc::c_ulong) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok(None),
        Err(e) => return Err(e),
    }
    // SAFETY: the ioctl succeeded, so the kernel filled the struct (which was zeroed before).
    let info = unsafe { info.assume_init() };
    Ok(Some((info.device, info.inode)))
}

/// Opens a loop device; `None` while it is being detached: a device cleared with no other
/// opener refuses every open (ENXIO) until the kernel's deferred rundown has let its backing
/// file go, and sysfs still names that file meanwhile.
fn open_device(device: &Path) -> std::io::Result<Option<File>> {
    match File::open(device) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Drops the ` (deleted)` suffix the kernel appends once the backing file is unlinked.
pub fn strip_deleted(name: &str) -> &str {
    name.strip_suffix(" (deleted)").unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_match_the_kernel_abi() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }

    /// The window between taking the lease and giving it back: an open there breaks the lease,
    /// and the signal that says so must not end the process (SIGIO, the default, would).
    #[test]
    fn a_file_opened_while_its_lease_is_held_leaves_the_process_running() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("disk.img");
        std::fs::write(&file, b"x").unwrap();
        let held = File::open(&file).unwrap();
        assert!(take_lease(&held).unwrap());
        let opener = {
            let file = file.clone();
            std::thread::spawn(move || File::open(&file).map(drop))
        };
        std::thread::sleep(std::time::Duration::from_millis(100)); // the open waits on the break
        assert!(!opener.is_finished(), "an open waits while the lease is held");
        give_back_lease(&held);
        opener.join().unwrap().unwrap();
        drop(held);
        assert!(unopened(&file).unwrap());
    }

    #[test]
    fn deleted_suffix_is_tolerated() {
        assert_eq!(strip_deleted("/a/disk.img (deleted)"), "/a/disk.img");
        assert_eq!(strip_deleted("/a/disk.img"), "/a/disk.img");
    }
}
