use super::*;

fn opts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn ok(kind: Kind, fs: Option<FsType>, at: Use, list: &[&str]) -> Vec<String> {
    check(kind, fs, at, &opts(list)).unwrap_or_else(|e| panic!("{list:?} for {kind:?} {at:?}: {e}"))
}

fn refused_msg(kind: Kind, fs: Option<FsType>, at: Use, list: &[&str]) -> String {
    match check(kind, fs, at, &opts(list)) {
        Err(Error::InvalidArgument(msg)) => msg,
        other => panic!("{list:?} for {kind:?} {at:?} should be refused, got {other:?}"),
    }
}

const ALL_USES: [(Kind, Option<FsType>, Use); 10] = [
    (Kind::Dir, None, Use::Stage),
    (Kind::Dir, None, Use::Publish),
    (Kind::Btrfs, None, Use::Stage),
    (Kind::Btrfs, None, Use::Publish),
    (Kind::Tmpfs, None, Use::Stage),
    (Kind::Tmpfs, None, Use::Publish),
    (Kind::Loop, Some(FsType::Ext4), Use::Stage),
    (Kind::Loop, Some(FsType::Ext4), Use::Publish),
    (Kind::Loop, Some(FsType::Xfs), Use::Stage),
    (Kind::Loop, Some(FsType::Xfs), Use::Publish),
];

#[test]
fn per_mount_flags_are_allowed_everywhere() {
    for (kind, fs, at) in ALL_USES {
        for flag in PER_MOUNT {
            assert!(ok(kind, fs, at, &[flag]).contains(&flag.to_owned()), "{flag} for {kind:?} {at:?}");
        }
    }
}

#[test]
fn loop_stage_takes_its_filesystems_superblock_options() {
    let ext4 =
        ["lazytime", "sync", "dirsync", "discard", "nodiscard", "noquota", "errors=remount-ro", "errors=continue"];
    assert_eq!(ok(Kind::Loop, Some(FsType::Ext4), Use::Stage, &ext4), opts(&ext4));
    assert_eq!(ok(Kind::Loop, None, Use::Stage, &["errors=continue"]), opts(&["errors=continue"]), "unset is ext4");
    let xfs = ["lazytime", "discard", "noquota", "nouuid"];
    assert_eq!(ok(Kind::Loop, Some(FsType::Xfs), Use::Stage, &xfs), opts(&xfs));
    let msg = refused_msg(Kind::Loop, Some(FsType::Xfs), Use::Stage, &["errors=remount-ro"]);
    assert!(msg.contains("xfs mount of a loop volume"), "{msg}");
    refused_msg(Kind::Loop, Some(FsType::Ext4), Use::Stage, &["nouuid"]);
}

#[test]
fn superblock_options_are_refused_on_binds() {
    for (kind, fs, at) in ALL_USES.into_iter().filter(|(k, _, at)| !(*k == Kind::Loop && *at == Use::Stage)) {
        for opt in ["lazytime", "sync", "discard", "nouuid", "errors=remount-ro", "noquota"] {
            let msg = refused_msg(kind, fs, at, &[opt]);
            assert!(msg.contains(&format!("\"{opt}\"")), "{msg}");
        }
    }
}

#[test]
fn privileged_and_state_changing_options_are_refused_with_a_reason() {
    let cases = [
        ("remount", "changes how strata mounts"),
        ("bind", "changes how strata mounts"),
        ("rbind", "changes how strata mounts"),
        ("move", "changes how strata mounts"),
        ("size=1g", "strata sets it"),
        ("mode=4777", "strata sets it"),
        ("uid=0", "strata sets it"),
        ("gid=0", "strata sets it"),
        ("suid", "setuid"),
        ("dev", "devices"),
        ("errors=panic", "panic the node"),
        ("context=system_u:object_r:container_file_t:s0", "not on the allowlist"),
        ("user_xattr", "not on the allowlist"),
    ];
    for (kind, fs, at) in ALL_USES {
        for (opt, why) in cases {
            let msg = refused_msg(kind, fs, at, &[opt]);
            assert!(msg.contains(why) && msg.contains("allowed: ro, rw"), "{opt}: {msg}");
        }
    }
}

#[test]
fn comma_joined_entries_are_split_trimmed_and_deduplicated() {
    let got = ok(Kind::Dir, None, Use::Publish, &["nosuid,nodev", " noexec , ,nosuid", "", "ro"]);
    assert_eq!(got, opts(&["nosuid", "nodev", "noexec", "ro"]));
    let msg = refused_msg(Kind::Dir, None, Use::Publish, &["nosuid,remount"]);
    assert!(msg.contains("\"remount\""), "{msg}");
    let msg = refused_msg(Kind::Loop, None, Use::Stage, &["noatime,errors=panic"]);
    assert!(msg.contains("\"errors=panic\""), "{msg}");
}

#[test]
fn kernel_defaults_are_accepted_and_dropped() {
    assert_eq!(ok(Kind::Dir, None, Use::Stage, &["defaults,exec", "async", "atime", "diratime"]), Vec::<String>::new());
    assert_eq!(ok(Kind::Loop, None, Use::Stage, &[]), Vec::<String>::new());
}

#[test]
fn tmpfs_always_carries_nosuid_and_nodev() {
    for at in [Use::Stage, Use::Publish] {
        assert_eq!(ok(Kind::Tmpfs, None, at, &[]), opts(&["nosuid", "nodev"]));
        assert_eq!(ok(Kind::Tmpfs, None, at, &["nodev,ro"]), opts(&["nodev", "ro", "nosuid"]));
        refused_msg(Kind::Tmpfs, None, at, &["suid"]);
        refused_msg(Kind::Tmpfs, None, at, &["dev"]);
    }
}

#[test]
fn a_huge_option_is_quoted_bounded() {
    let huge = "x".repeat(100_000);
    let msg = refused_msg(Kind::Dir, None, Use::Publish, &[huge.as_str()]);
    assert!(msg.len() < 1024, "{} bytes", msg.len());
    assert!(msg.contains("\"…"), "{msg}");
    let msg = refused_msg(Kind::Dir, None, Use::Publish, &["a\nb"]);
    assert!(msg.contains(r#""a\nb""#), "{msg}");
}

#[test]
fn dir_mounts_are_nodev_unless_the_class_allows_devices() {
    use crate::engine::record::FORMAT;
    let vol = |params: &str| -> crate::engine::Volume {
        let json = format!(
            r#"{{"format":{FORMAT},"id":"v","name":"v","backend":"dir","capacity":1,"created_unix":0,"parameters":{params}}}"#
        );
        serde_json::from_str(&json).unwrap()
    };
    let none: Vec<String> = Vec::new();
    assert_eq!(for_volume(&vol("{}"), Use::Publish, &none).unwrap(), ["nodev"]);
    assert_eq!(for_volume(&vol("{}"), Use::Stage, &["nodev".into()]).unwrap(), ["nodev"], "not twice");
    assert!(for_volume(&vol(r#"{"devices":"allow"}"#), Use::Publish, &none).unwrap().is_empty());
    let params = |v: &str| std::collections::BTreeMap::from([(PARAM_DEVICES.to_owned(), v.to_owned())]);
    assert!(devices(Kind::Loop, &params("allow")).is_err(), "only dir volumes can allow devices");
    assert!(devices(Kind::Tmpfs, &params("allow")).is_err());
    assert!(devices(Kind::Dir, &params("sometimes")).is_err());
    assert!(!devices(Kind::Dir, &params("deny")).unwrap());
}
