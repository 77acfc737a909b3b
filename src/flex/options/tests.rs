//! Unit tests of option parsing against kubelet-shaped JSON.

use super::*;

const POD: &str = r#"{"kubernetes.io/fsType":"","kubernetes.io/mounterArgs.FsGroup":"2000","kubernetes.io/pod.name":"web-0","kubernetes.io/pod.namespace":"default","kubernetes.io/pod.uid":"\u003cuid\u003e","kubernetes.io/pvOrVolumeName":"pv1","kubernetes.io/readwrite":"rw","kubernetes.io/secret/password":"czNjcjN0","kubernetes.io/serviceAccount.name":"default","server":"10.0.0.5","share":"/export"}"#;

fn err(json: &str) -> String {
    parse(json).unwrap_err().to_string()
}

#[test]
fn kubelet_example_parses() {
    let o = parse(POD).unwrap();
    assert_eq!((o.id.as_str(), o.name.as_str(), o.by_volume_id), ("pv1", "pv1", false));
    assert_eq!(o.fs_group, Some(2000));
    assert!(!o.readonly);
    assert_eq!(o.backend, None);
    assert_eq!(o.secrets.0["password"].expose(), b"s3cr3t");
    assert_eq!(o.ignored, vec!["server".to_owned(), "share".to_owned()]);
    // A mount refuses them: they are a user's, not kubelet's.
    let err = parse_for_mount(POD).unwrap_err().to_string();
    assert!(err.contains("unknown option(s) \"server\", \"share\""), "{err}");
    let shown = format!("{o:?}");
    assert!(!shown.contains("s3cr3t") && !shown.contains("czNjcjN0"), "{shown}");
}

#[test]
fn user_options_are_read() {
    let o = parse(
        r#"{"backend":"loop","kubernetes.io/fsGroup":"7","kubernetes.io/fsType":"xfs","kubernetes.io/pvOrVolumeName":"pv2","kubernetes.io/readwrite":"ro","mountOptions":"noatime, nodev,,","size":"300Mi","volumeID":"vol-7"}"#,
    )
    .unwrap();
    assert_eq!((o.id.as_str(), o.name.as_str(), o.by_volume_id), ("vol-7", "pv2", true));
    assert_eq!(o.backend, Some(Kind::Loop));
    assert_eq!(o.size, Some(300 << 20));
    assert_eq!(o.fs_type, "xfs");
    assert_eq!(o.mount_flags, vec!["noatime", "nodev"]);
    assert!(o.readonly);
    assert_eq!(o.fs_group, Some(7));
}

#[test]
fn bad_options_are_refused_with_the_key() {
    for (json, want) in [
        ("{", "not a JSON object"),
        ("[]", "not an object"),
        (r#"{"kubernetes.io/pvOrVolumeName":1}"#, "is not a string"),
        ("{}", "pvOrVolumeName\" is missing"),
        (r#"{"kubernetes.io/pvOrVolumeName":"../x"}"#, "cannot name"),
        (r#"{"kubernetes.io/pvOrVolumeName":"a","volumeID":"../etc"}"#, "\"volumeID\" cannot name"),
        (r#"{"kubernetes.io/pvOrVolumeName":"a","backend":"nfs"}"#, "use one of dir"),
        (r#"{"kubernetes.io/pvOrVolumeName":"a","size":"0"}"#, "\"size\" \"0\" is zero"),
        (r#"{"kubernetes.io/pvOrVolumeName":"a","size":"lots"}"#, "not a number"),
        (r#"{"kubernetes.io/pvOrVolumeName":"a","kubernetes.io/readwrite":"wo"}"#, "\"ro\" or \"rw\""),
        (r#"{"kubernetes.io/mounterArgs.FsGroup":"x","kubernetes.io/pvOrVolumeName":"a"}"#, "not a group id"),
        (r#"{"kubernetes.io/pvOrVolumeName":"a","kubernetes.io/secret/k":"qq*"}"#, "secret/k"),
    ] {
        let e = err(json);
        assert!(e.contains(want), "{json}: {e}");
    }
}

#[test]
fn current_fs_group_key_wins_over_the_old_one() {
    let o = parse(
        r#"{"kubernetes.io/fsGroup":"1","kubernetes.io/mounterArgs.FsGroup":"2","kubernetes.io/pvOrVolumeName":"a"}"#,
    )
    .unwrap();
    assert_eq!(o.fs_group, Some(2));
}

#[test]
fn a_misspelt_option_fails_a_mount_and_kubelets_new_keys_do_not() {
    let err = parse_for_mount(r#"{"kubernetes.io/pvOrVolumeName":"a","sise":"1Gi"}"#).unwrap_err().to_string();
    assert!(err.contains("unknown option(s) \"sise\"") && err.contains("size"), "{err}");
    let o = parse_for_mount(r#"{"kubernetes.io/pvOrVolumeName":"a","kubernetes.io/newKey":"x"}"#).unwrap();
    assert_eq!(o.ignored, ["kubernetes.io/newKey"]);
}
