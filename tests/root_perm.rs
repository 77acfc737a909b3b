//! Root tier: least privilege on disk. Another local user (`nobody`) can neither list the data
//! root nor read a record, node state or loop image, nor write into a dir volume through the
//! root; even where a directory above them is traversable, the files themselves are root's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::env::Env;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use strata::backend::Kind;
use strata::sys::FsType;

const NOBODY: u32 = 65534;

/// Runs `program args` as uid and gid 65534 with no supplementary groups.
fn as_nobody(program: &str, args: &[&Path]) -> Output {
    Command::new(program)
        .args(args)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} as nobody: {e}"))
}

fn assert_denied(program: &str, path: &Path) {
    let out = as_nobody(program, &[path]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nobody could {program} {}", path.display());
    assert!(stderr.contains("Permission denied"), "{program} {}: {stderr}", path.display());
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn another_user_cannot_reach_the_root_records_images_or_volume_data() {
    let env = Env::new(Kind::Loop);
    env.create("dv", Kind::Dir, 16 << 20, None);
    env.create("lv", Kind::Loop, 64 << 20, Some(FsType::Ext4));
    let target = env.open("lv");
    env.snapshot("snap", "lv");
    // The temp dir above the root is 0700 by itself: open it, so only strata's modes protect.
    chmod(env.tmp.path(), 0o755);
    let public = env.tmp.path().join("public.txt");
    std::fs::write(&public, b"readable").unwrap();
    chmod(&public, 0o644);
    let control = as_nobody("cat", &[&public]);
    assert!(control.status.success(), "the harness itself must let nobody read a 0644 file: {control:?}");

    let r = &env.root;
    let files = [
        "volumes/lv/volume.json",
        "volumes/lv/node.json",
        "volumes/lv/disk.img",
        "volumes/dv/volume.json",
        "snapshots/snap/snapshot.json",
        "snapshots/snap/disk.img",
        "locks/ids.lock",
        "locks/capacity.ledger",
    ];
    assert_denied("ls", r);
    for file in files {
        assert_denied("cat", &r.join(file));
    }
    let planted = r.join("volumes/dv/data/planted");
    assert_denied("touch", &planted);
    assert!(!planted.exists());

    // With every directory on the way traversable (not listable), the files still refuse.
    let dirs = ["", "volumes", "volumes/lv", "volumes/dv", "snapshots", "snapshots/snap", "locks"];
    for dir in dirs {
        chmod(&r.join(dir), 0o711);
    }
    for file in files {
        assert_denied("cat", &r.join(file));
    }
    for dir in dirs {
        chmod(&r.join(dir), 0o700);
    }

    env.engine.delete_snapshot("snap").unwrap();
    assert!(target.exists());
    env.close("lv");
    env.engine.delete_volume("lv").unwrap();
    env.engine.delete_volume("dv").unwrap();
    env.assert_clean();
}
