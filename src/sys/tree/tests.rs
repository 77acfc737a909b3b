//! The tree engine on real directories (no root needed: owners stay the caller's).

use super::*;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Makes a chain of `depth` directories below `top` one level at a time relative to the last
/// (as a pod would: no path is ever longer than one name), with a file at the bottom.
fn chain(top: &Path, depth: usize, name: &str) {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut fd = rustix::fs::open(top, flags, Mode::empty()).unwrap();
    for _ in 0..depth {
        rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(0o755)).unwrap();
        fd = rustix::fs::openat(&fd, name, flags, Mode::empty()).unwrap();
    }
    let file = rustix::fs::openat(&fd, "bottom", OFlags::WRONLY | OFlags::CREATE, Mode::from_raw_mode(0o644));
    rustix::io::write(file.unwrap(), b"deep").unwrap();
}

/// Reads the chain made by [`chain`] back: its depth and the bottom file's contents.
fn read_chain(top: &Path, name: &str) -> (usize, Vec<u8>) {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut fd = rustix::fs::open(top, flags, Mode::empty()).unwrap();
    let mut depth = 0;
    while let Ok(next) = rustix::fs::openat(&fd, name, flags, Mode::empty()) {
        fd = next;
        depth += 1;
    }
    let file = rustix::fs::openat(&fd, "bottom", OFlags::RDONLY, Mode::empty()).unwrap();
    let mut buf = vec![0; 16];
    let n = rustix::io::read(&file, &mut buf).unwrap();
    buf.truncate(n);
    (depth, buf)
}

#[test]
fn a_copy_keeps_what_a_pod_wrote_as_it_is() {
    let d = tempdir();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    std::fs::create_dir_all(src.join("sub/inner")).unwrap();
    std::fs::write(src.join("sub/inner/f"), b"hello").unwrap();
    std::fs::set_permissions(src.join("sub/inner/f"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::set_permissions(src.join("sub"), std::fs::Permissions::from_mode(0o751)).unwrap();
    std::os::unix::fs::symlink("/etc", src.join("escape")).unwrap();
    std::os::unix::fs::symlink("sub/inner/f", src.join("relative")).unwrap();
    nix::unistd::mkfifo(&src.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o620)).unwrap();
    std::fs::set_permissions(src.join("fifo"), std::fs::Permissions::from_mode(0o620)).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(src.join("socket")).unwrap();
    std::fs::hard_link(src.join("sub/inner/f"), src.join("link")).unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::options().write(true).open(src.join("sub/inner/f")).unwrap().set_modified(old).unwrap();
    xattr_set(&src.join("sub/inner/f"), "user.strata", b"kept");

    let report = copy_tree(&src, &dst).unwrap();

    assert_eq!(std::fs::read(dst.join("sub/inner/f")).unwrap(), b"hello");
    let meta = |p: &str| std::fs::symlink_metadata(dst.join(p)).unwrap();
    assert_eq!(meta("sub/inner/f").mode() & 0o7777, 0o640);
    assert_eq!(meta("sub").mode() & 0o7777, 0o751);
    assert_eq!(meta("sub/inner/f").mtime(), 1_000_000_000, "times are kept");
    assert_eq!(std::fs::read_link(dst.join("escape")).unwrap(), PathBuf::from("/etc"), "a symlink stays one");
    assert!(meta("escape").file_type().is_symlink());
    assert_eq!(std::fs::read_link(dst.join("relative")).unwrap(), PathBuf::from("sub/inner/f"));
    assert!(meta("fifo").file_type().is_fifo());
    assert_eq!(meta("fifo").mode() & 0o7777, 0o620);
    assert!(meta("socket").file_type().is_socket());
    assert_eq!(meta("link").ino(), meta("sub/inner/f").ino(), "a hard link stays one");
    assert_eq!(xattr_get(&dst.join("sub/inner/f"), "user.strata"), b"kept");
    assert_eq!(meta("").mode() & 0o7777, std::fs::metadata(&src).unwrap().mode() & 0o7777, "the top's mode");
    let expected = CopyReport {
        dirs: 2,
        files: 1,
        symlinks: 2,
        specials: 2,
        hard_links: 1,
        bytes: report.bytes,
        reflinked: report.reflinked,
        devices_skipped: 0,
        mounts_skipped: 0,
    };
    assert_eq!(report, expected);
    assert!(report.bytes == 5 || report.reflinked == 1, "{report:?}");
}

fn xattr_set(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::setxattr(path, name, value, rustix::fs::XattrFlags::empty()).unwrap();
}

fn xattr_get(path: &Path, name: &str) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    let n = rustix::fs::getxattr(path, name, &mut buf[..]).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn a_sparse_file_costs_what_it_holds() {
    let d = tempdir();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    std::fs::create_dir(&src).unwrap();
    let f = std::fs::File::create(src.join("huge")).unwrap();
    let tib = 1u64 << 40;
    f.set_len(tib).unwrap();
    rustix::io::pwrite(&f, b"head", 0).unwrap();
    rustix::io::pwrite(&f, b"tail", tib - 4).unwrap();
    let report = copy_tree(&src, &dst).unwrap();
    let copy = std::fs::metadata(dst.join("huge")).unwrap();
    assert_eq!(copy.len(), tib);
    assert!(copy.blocks() * 512 <= 1 << 20, "{} bytes allocated for a copy of 8 bytes of data", copy.blocks() * 512);
    assert!(report.bytes < 1 << 20 || report.reflinked == 1, "{report:?}");
    let out = std::fs::File::open(dst.join("huge")).unwrap();
    let mut buf = [0u8; 4];
    rustix::io::pread(&out, &mut buf, tib - 4).unwrap();
    assert_eq!(&buf, b"tail");
    rustix::io::pread(&out, &mut buf, 0).unwrap();
    assert_eq!(&buf, b"head");
}

#[test]
fn a_tree_deeper_than_any_stack_is_copied_measured_and_removed() {
    let d = tempdir();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    std::fs::create_dir(&src).unwrap();
    // 20,000 levels of 60-byte names: far past PATH_MAX, the old recursion's stack, and the
    // walk's window of open directories.
    let name = "d".repeat(60);
    chain(&src, 20_000, &name);
    assert_eq!(measure(&src).unwrap().inodes, 20_002, "the top, 20,000 levels and the file");
    let report = copy_tree(&src, &dst).unwrap();
    assert_eq!((report.dirs, report.files), (20_000, 1));
    assert_eq!(read_chain(&dst, &name), (20_000, b"deep".to_vec()));
    remove_tree(&src).unwrap();
    remove_tree_last(&dst, "none-such").unwrap();
    assert!(!src.exists() && !dst.exists());
}

#[test]
fn a_wide_tree_is_read_in_batches_and_every_entry_is_copied() {
    let d = tempdir();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    std::fs::create_dir(&src).unwrap();
    for i in 0..3000 {
        std::fs::write(src.join(format!("file-with-a-long-name-to-fill-batches-{i:05}")), i.to_string()).unwrap();
        if i % 10 == 0 {
            std::fs::create_dir(src.join(format!("dir-{i}"))).unwrap();
            std::fs::write(src.join(format!("dir-{i}/inner")), b"x").unwrap();
        }
    }
    let report = copy_tree(&src, &dst).unwrap();
    assert_eq!((report.files, report.dirs), (3300, 300));
    let names = |p: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(p).unwrap().map(|e| e.unwrap().file_name()).collect();
        v.sort();
        v
    };
    assert_eq!(names(&src), names(&dst));
    assert_eq!(std::fs::read_to_string(dst.join("file-with-a-long-name-to-fill-batches-02999")).unwrap(), "2999");
    assert_eq!(measure(&dst).unwrap().inodes, 1 + 3300 + 300);
    remove_tree(&dst).unwrap();
    assert!(!dst.exists());
}

#[test]
fn a_walk_keeps_a_bounded_number_of_directories_open() {
    let d = tempdir();
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let top = rustix::fs::open(d.path(), flags, Mode::empty()).unwrap();
    let mut stack = stack::DirStack::new(top);
    let mut fd = rustix::fs::open(d.path(), flags, Mode::empty()).unwrap();
    for i in 0..200 {
        let name = format!("l{i}");
        rustix::fs::mkdirat(&fd, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
        fd = rustix::fs::openat(&fd, name.as_str(), flags, Mode::empty()).unwrap();
        let again = rustix::fs::openat(&fd, ".", flags, Mode::empty()).unwrap();
        let id = Meta::of_fd(&again).unwrap().id();
        stack.push(again, id);
        assert!(stack.open() <= stack::OPEN_DIRS + 1, "{} open at level {i}", stack.open());
    }
    for _ in 0..200 {
        stack.pop().unwrap();
    }
    assert_eq!(stack.open(), 1);
}

#[test]
fn a_directory_moved_under_a_deep_walk_is_opened_again_as_itself() {
    let d = tempdir();
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let top = rustix::fs::open(d.path(), flags, Mode::empty()).unwrap();
    let mut stack = stack::DirStack::new(top);
    let mut path = d.path().to_owned();
    let mut ids = Vec::new();
    for i in 0..(stack::OPEN_DIRS + 10) {
        path.push(format!("l{i}"));
        std::fs::create_dir(&path).unwrap();
        let fd = rustix::fs::open(&path, flags, Mode::empty()).unwrap();
        let id = Meta::of_fd(&fd).unwrap().id();
        ids.push(id);
        stack.push(fd, id);
    }
    // Level 3 (its descriptor closed by now) moves to the top of the tree: climbing back, the
    // walk finds it again by its handle (or, without handles, notices that `..` changed).
    std::fs::rename(d.path().join("l0/l1/l2/l3"), d.path().join("moved")).unwrap();
    for level in (0..stack::OPEN_DIRS + 10).rev() {
        match stack.pop() {
            Ok(_) => {
                let top = Meta::of_fd(stack.top()).unwrap().id();
                let want = if level == 0 { Meta::of_fd(stack.root()).unwrap().id() } else { ids[level - 1] };
                assert_eq!(top, want, "level {level} is the directory it was");
            }
            Err(Fail::Changed(_)) => return,
            Err(e) => panic!("{e:?}"),
        }
    }
}

#[test]
fn removal_takes_files_symlinks_and_missing_trees() {
    let d = tempdir();
    let f = d.path().join("file");
    std::fs::write(&f, b"x").unwrap();
    remove_tree(&f).unwrap();
    assert!(!f.exists());
    let target = d.path().join("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("kept"), b"x").unwrap();
    let link = d.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    remove_tree(&link).unwrap();
    assert!(!link.exists() && target.join("kept").exists(), "the symlink went, not what it named");
    remove_tree(&d.path().join("missing")).unwrap();
}

#[test]
fn a_symlink_is_never_a_top_to_walk() {
    let d = tempdir();
    let target = d.path().join("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("secret"), b"host").unwrap();
    let link = d.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert!(copy_tree(&link, &d.path().join("copy")).is_err());
    assert!(measure(&link).is_err());
}

#[test]
fn a_copy_goes_only_into_an_empty_destination() {
    let d = tempdir();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&dst).unwrap();
    std::fs::write(dst.join("old"), b"x").unwrap();
    assert!(matches!(copy_tree(&src, &dst), Err(Error::DestinationExists { .. })));
    std::fs::remove_file(dst.join("old")).unwrap();
    copy_tree(&src, &dst).unwrap();
}

#[test]
fn messages_show_the_end_of_a_deep_path_escaped() {
    let names: Vec<CString> = (0..100).map(|i| CString::new(format!("level-{i}")).unwrap()).collect();
    let last = CString::new("bad\nname").unwrap();
    let shown = walk::shown_path(Path::new("/root"), names.iter().map(|n| n.as_c_str()).chain([last.as_c_str()]));
    let text = shown.to_string_lossy();
    assert!(text.len() < 260, "{text}");
    assert!(text.starts_with("/root/…/") && text.ends_with("level-99/bad?name"), "{text}");
}

#[test]
fn copy_file_shares_or_copies_extents_and_refuses_an_existing_destination() {
    let d = tempdir();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    let f = std::fs::File::create(&a).unwrap();
    f.set_len(64 << 20).unwrap();
    rustix::io::pwrite(&f, b"tail", (64 << 20) - 4).unwrap();
    copy_file(&a, &b).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(std::fs::metadata(&b).unwrap().blocks() * 512 < 8 << 20, "the copy is sparse");
    assert_eq!(std::fs::metadata(&b).unwrap().mode() & 0o777, 0o600);
    std::fs::write(&b, b"old").unwrap();
    assert!(copy_file(&a, &b).is_err());
    assert_eq!(std::fs::read(&b).unwrap(), b"old");
}
