//! Root tier: a loop device belongs to a volume by its backing file's device and inode, never by
//! the path the kernel shows (which is relative to the mount namespace that attached it, as after
//! the node plugin's container restarts).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use nix::mount::{MntFlags, MsFlags};
use strata::sys::{Host, LinuxHost, loop_for};

#[test]
fn a_loop_attached_through_another_path_is_found_by_identity() {
    assert!(nix::unistd::geteuid().is_root(), "this test attaches loop devices: run it as root (CI does)");
    let dir = tempfile::tempdir().unwrap();
    let (real, alias) = (dir.path().join("real"), dir.path().join("alias"));
    std::fs::create_dir_all(&real).unwrap();
    std::fs::create_dir_all(&alias).unwrap();
    let image = real.join("disk.img");
    std::fs::File::create(&image).unwrap().set_len(1 << 20).unwrap();
    nix::mount::mount(Some(&real), &alias, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
    let host = LinuxHost;
    // Attached as another namespace would have: through a path this one does not use.
    let device = host.loop_attach(&alias.join("disk.img"), false).unwrap();
    nix::mount::umount2(&alias, MntFlags::MNT_DETACH).unwrap();
    let loops = host.loop_list().unwrap();
    let shown = loops.iter().find(|l| l.device == device).unwrap();
    let found = loop_for(&loops, &image).map(|l| l.device.clone());
    let backs = host.loop_backs(&device, &image).unwrap();
    let other = dir.path().join("other.img");
    std::fs::File::create(&other).unwrap();
    let backs_other = host.loop_backs(&device, &other).unwrap();
    host.loop_detach(&device).unwrap();
    assert_ne!(shown.backing_file, image, "the kernel shows the path it was attached through");
    assert_eq!(found, Some(device.clone()), "found by device and inode");
    assert!(backs && !backs_other);
    assert!(!host.loop_backs(&device, &image).unwrap(), "a detached device backs nothing");
}

#[test]
fn a_loop_device_is_detached_only_while_it_backs_the_file_asked_for() {
    assert!(nix::unistd::geteuid().is_root(), "this test attaches loop devices: run it as root (CI does)");
    let dir = tempfile::tempdir().unwrap();
    let (mine, theirs) = (dir.path().join("mine.img"), dir.path().join("theirs.img"));
    for f in [&mine, &theirs] {
        std::fs::File::create(f).unwrap().set_len(1 << 20).unwrap();
    }
    let host = LinuxHost;
    // The device number strata listed now backs another file (freed and taken in between).
    let device = host.loop_attach(&theirs, false).unwrap();
    let refused = host.loop_detach_backing(&device, &mine).unwrap();
    let still = host.loop_backs(&device, &theirs).unwrap();
    let detached = host.loop_detach_backing(&device, &theirs).unwrap();
    let again = host.loop_detach_backing(&device, &theirs).unwrap();
    assert!(!refused && still, "another file's device is left alone");
    assert!(detached && !again, "its own device is detached, once");
}

/// No loop device backs an image exactly while a write lease can be taken on it: what lets a
/// loop volume's stage, unstage and delete skip listing every loop device on the node.
#[test]
fn an_image_is_unopened_exactly_while_no_device_or_reader_holds_it() {
    assert!(nix::unistd::geteuid().is_root(), "this test attaches loop devices: run it as root (CI does)");
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    std::fs::File::create(&image).unwrap().set_len(1 << 20).unwrap();
    let host = LinuxHost;
    assert_eq!(host.unopened(&image), Some(true));
    for readonly in [false, true] {
        let device = host.loop_attach(&image, readonly).unwrap();
        let held = host.unopened(&image);
        host.loop_detach(&device).unwrap();
        assert_eq!(held, Some(false), "a device backs it (read-only: {readonly})");
        assert_eq!(host.unopened(&image), Some(true), "detached: nothing holds it");
    }
    let reader = std::fs::File::open(&image).unwrap();
    assert_eq!(host.unopened(&image), Some(false), "any open file holds it");
    drop(reader);
    assert_eq!(host.unopened(&dir.path().join("missing")), None, "no file: cannot tell");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&image, &link).unwrap();
    assert_eq!(host.unopened(&link), None, "a symlink is never followed");
}

/// A device cleared while only its clearer holds it open is torn down later, by the kernel's
/// rundown work: until then every open of it fails (ENXIO) while sysfs still names its backing
/// file. Asking about it or detaching it again then means "not backing", never an error (an
/// unstage that detached its recorded device and then lists the devices meets exactly this).
#[test]
fn a_device_being_torn_down_backs_nothing_and_detaching_it_again_is_fine() {
    use std::os::fd::AsRawFd;
    assert!(nix::unistd::geteuid().is_root(), "this test attaches loop devices: run it as root (CI does)");
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    std::fs::File::create(&image).unwrap().set_len(1 << 20).unwrap();
    let host = LinuxHost;
    let device = host.loop_attach(&image, false).unwrap();
    let held = std::fs::File::open(&device).unwrap();
    // SAFETY: `held` is an open loop device; LOOP_CLR_FD takes no argument.
    assert_eq!(unsafe { libc::ioctl(held.as_raw_fd(), 0x4C01, 0) }, 0, "LOOP_CLR_FD");
    let again = host.loop_detach_backing(&device, &image);
    let backs = host.loop_backs(&device, &image);
    drop(held);
    assert!(!again.unwrap(), "a device on its way out is not detached twice");
    assert!(!backs.unwrap());
}
