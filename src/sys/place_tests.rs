//! Tests of [`Place`] resolution, each run through openat2 and through the `O_NOFOLLOW` walk.

use super::*;
use std::os::unix::fs::symlink;

type Resolve = fn(&Path, &Path) -> Result<Place, PlaceError>;
const RESOLVERS: [(&str, Resolve); 2] = [("openat2", Place::beneath), ("walk", Place::beneath_by_walk)];

fn tree() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("kubelet");
    std::fs::create_dir_all(prefix.join("pods/a/volumes")).unwrap();
    std::fs::create_dir(dir.path().join("outside")).unwrap();
    (dir, prefix)
}

#[test]
fn a_plain_path_resolves_and_its_name_is_made_in_place() {
    for (how, resolve) in RESOLVERS {
        let (_dir, prefix) = tree();
        let target = prefix.join("pods/a/volumes/mount");
        let place = resolve(&prefix, &target).unwrap();
        assert_eq!(place.path(), target);
        assert_eq!(place.stat().unwrap(), None, "{how}");
        assert!(place.mkdir(0o750).unwrap(), "{how}");
        assert!(!place.mkdir(0o750).unwrap(), "{how}: a second mkdir finds the directory");
        let st = place.stat().unwrap().unwrap();
        assert_eq!((st.kind, st.mount_root), (Kind::Dir, Some(false)), "{how}");
        assert!(target.is_dir());
        place.remove_dir().unwrap();
        assert!(!target.exists());
    }
}

#[test]
fn a_symlink_at_any_depth_of_the_parent_is_refused() {
    for (how, resolve) in RESOLVERS {
        for depth in ["pods", "pods/a", "pods/a/volumes"] {
            let (dir, prefix) = tree();
            let at = prefix.join(depth);
            std::fs::remove_dir_all(&at).unwrap();
            symlink(dir.path().join("outside"), &at).unwrap();
            std::fs::create_dir_all(dir.path().join("outside/a/volumes")).unwrap();
            let err = resolve(&prefix, &prefix.join("pods/a/volumes/mount")).unwrap_err();
            assert!(matches!(err, PlaceError::Symlink), "{how} {depth}: {err}");
        }
    }
}

#[test]
fn a_final_symlink_is_seen_and_never_followed() {
    for (how, resolve) in RESOLVERS {
        let (dir, prefix) = tree();
        let link = prefix.join("pods/a/volumes/link");
        symlink(dir.path().join("outside"), &link).unwrap();
        let place = resolve(&prefix, &link).unwrap();
        assert_eq!(place.stat().unwrap().unwrap().kind, Kind::Symlink, "{how}");
        assert_eq!(place.open_path().unwrap_err().raw_os_error(), Some(libc::ELOOP), "{how}");
        assert!(place.mkdir(0o750).is_err(), "{how}: mkdir over a symlink");
        assert!(place.create_file(0o600).is_err(), "{how}: create over a symlink");
        assert!(place.open_dir().is_err(), "{how}: open_dir through a symlink");
        assert!(place.remove_dir().is_err(), "{how}: rmdir of a symlink");
        assert!(dir.path().join("outside").is_dir(), "{how}: the link's target is untouched");
    }
}

#[test]
fn magic_links_are_refused() {
    for (how, resolve) in RESOLVERS {
        let prefix = Path::new("/proc/self");
        let err = resolve(prefix, Path::new("/proc/self/root/etc/x")).unwrap_err();
        assert!(matches!(err, PlaceError::Symlink), "{how}: {err}");
        let (_dir, kubelet) = tree();
        let fd = std::fs::File::open(&kubelet).unwrap();
        let magic = kubelet.join("pods/a/volumes/magic");
        symlink(format!("/proc/self/fd/{}", fd.as_raw_fd()), &magic).unwrap();
        let err = resolve(&kubelet, &magic.join("x")).unwrap_err();
        assert!(matches!(err, PlaceError::Symlink), "{how}: {err}");
    }
}

#[test]
fn a_prefix_that_is_a_symlink_is_opened_as_it_is() {
    for (how, resolve) in RESOLVERS {
        let (dir, prefix) = tree();
        let alias = dir.path().join("alias");
        symlink(&prefix, &alias).unwrap();
        let place = resolve(&alias, &alias.join("pods/a/volumes/t")).unwrap();
        assert!(place.mkdir(0o750).unwrap(), "{how}");
        assert!(prefix.join("pods/a/volumes/t").is_dir(), "{how}");
    }
}

#[test]
fn dot_dot_other_prefixes_and_missing_parents_are_told_apart() {
    for (how, resolve) in RESOLVERS {
        let (dir, prefix) = tree();
        let err = resolve(&prefix, &prefix.join("pods/../../outside/x")).unwrap_err();
        assert!(matches!(err, PlaceError::Escapes), "{how}: {err}");
        let err = resolve(&prefix, &dir.path().join("outside/x")).unwrap_err();
        assert!(matches!(err, PlaceError::Escapes), "{how}: {err}");
        let err = resolve(&prefix, &prefix).unwrap_err();
        assert!(matches!(err, PlaceError::Escapes), "{how}: the prefix itself: {err}");
        let err = resolve(&prefix, &prefix.join("pods/missing/x")).unwrap_err();
        assert!(matches!(err, PlaceError::ParentMissing), "{how}: {err}");
        std::fs::write(prefix.join("pods/file"), "x").unwrap();
        let err = resolve(&prefix, &prefix.join("pods/file/x")).unwrap_err();
        assert!(matches!(err, PlaceError::NotDirectory), "{how}: {err}");
        let err = resolve(&dir.path().join("nope"), &dir.path().join("nope/x")).unwrap_err();
        assert!(matches!(err, PlaceError::ParentMissing), "{how}: a missing prefix: {err}");
    }
}

#[test]
fn the_parent_is_held_when_the_path_is_swapped_afterwards() {
    for (how, resolve) in RESOLVERS {
        let (dir, prefix) = tree();
        let place = resolve(&prefix, &prefix.join("pods/a/volumes/t")).unwrap();
        // Swap the parent for a symlink to outside after resolution: the place stays where it was.
        let volumes = prefix.join("pods/a/volumes");
        std::fs::rename(&volumes, prefix.join("pods/a/moved")).unwrap();
        symlink(dir.path().join("outside"), &volumes).unwrap();
        assert!(place.mkdir(0o750).unwrap(), "{how}");
        assert!(prefix.join("pods/a/moved/t").is_dir(), "{how}: made in the held parent");
        assert!(!dir.path().join("outside/t").exists(), "{how}: nothing made outside");
        let proc_path = place.nofollow_path();
        assert!(proc_path.starts_with("/proc/self/fd"), "{how}: {}", proc_path.display());
        assert!(std::fs::symlink_metadata(&proc_path).unwrap().is_dir(), "{how}");
    }
}

#[test]
fn files_are_made_and_removed_without_following() {
    for (how, resolve) in RESOLVERS {
        let (_dir, prefix) = tree();
        let place = resolve(&prefix, &prefix.join("pods/a/volumes/dev")).unwrap();
        assert!(place.create_file(0o600).unwrap(), "{how}");
        assert!(!place.create_file(0o600).unwrap(), "{how}");
        assert_eq!(place.stat().unwrap().unwrap().kind, Kind::File, "{how}");
        place.open_path().unwrap();
        place.remove_file().unwrap();
        assert_eq!(place.stat().unwrap(), None, "{how}");
    }
}
