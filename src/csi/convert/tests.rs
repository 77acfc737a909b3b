//! Unit tests of the CSI conversions.

use super::*;
use crate::csi::proto::volume_capability::{AccessMode, BlockVolume};

fn cap(mode: Mode, access: AccessType) -> VolumeCapability {
    VolumeCapability { access_mode: Some(AccessMode { mode: mode as i32 }), access_type: Some(access) }
}

fn mount(fs: &str) -> VolumeCapability {
    cap(Mode::SingleNodeWriter, AccessType::Mount(MountVolume { fs_type: fs.into(), ..Default::default() }))
}

fn block() -> VolumeCapability {
    cap(Mode::SingleNodeWriter, AccessType::Block(BlockVolume {}))
}

fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

const ALL: [Kind; 4] = Kind::ALL;

#[test]
fn backend_defaults_to_dir_and_fs_type_comes_from_capability_or_parameter() {
    let w = wanted(&params(&[]), &[mount("")], &ALL).unwrap();
    assert_eq!(w, Wanted { kind: Kind::Dir, fs_type: None });
    let w = wanted(&params(&[("backend", "loop")]), &[mount("xfs")], &ALL).unwrap();
    assert_eq!(w.fs_type, Some(FsType::Xfs));
    let p = params(&[("backend", "loop"), (PARAM_FSTYPE, "xfs")]);
    assert_eq!(wanted(&p, &[mount("")], &ALL).unwrap().fs_type, Some(FsType::Xfs));
    let w = wanted(&params(&[("backend", "loop")]), &[block()], &ALL).unwrap();
    assert_eq!(w, Wanted { kind: Kind::Loop, fs_type: None });
}

#[test]
fn bad_parameters_and_capabilities_are_invalid_arguments() {
    let loop_p = params(&[("backend", "loop")]);
    let cases = [
        (params(&[("backend", "zfs")]), vec![mount("")]),
        (params(&[("sizee", "1")]), vec![mount("")]),
        (params(&[]), vec![block()]),
        (params(&[]), vec![mount("ext4")]),
        (loop_p.clone(), vec![mount("ext3")]),
        (loop_p.clone(), vec![mount("ext4"), mount("xfs")]),
        (loop_p, vec![cap(Mode::MultiNodeMultiWriter, AccessType::Block(BlockVolume {}))]),
        (params(&[]), vec![VolumeCapability::default()]),
    ];
    for (p, caps) in cases {
        let err = wanted(&p, &caps, &ALL).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{p:?} {caps:?}");
    }
    let err = wanted(&params(&[("backend", "btrfs")]), &[mount("")], &[Kind::Dir]).unwrap_err();
    assert!(err.message().contains("not enabled"), "{}", err.message());
    // CreateVolume accepts every kind, tmpfs too: the message names every enabled one.
    let err = wanted(&params(&[("backend", "zfs")]), &[mount("")], &ALL).unwrap_err();
    assert!(err.message().ends_with("this driver has dir, loop, btrfs, tmpfs enabled"), "{}", err.message());
    assert_eq!(wanted(&params(&[("backend", "tmpfs")]), &[mount("")], &ALL).unwrap().kind, Kind::Tmpfs);
    for kind in Kind::ALL {
        assert!(Kind::CHOICES.contains(kind.as_str()), "{kind:?}");
    }
}

#[test]
fn an_unknown_backend_is_answered_with_the_enabled_ones_and_a_bounded_quote() {
    let enabled = [Kind::Dir, Kind::Loop, Kind::Tmpfs];
    let err = wanted(&params(&[("backend", "zfs")]), &[mount("")], &enabled).unwrap_err();
    assert_eq!(err.message(), r#"unknown backend "zfs"; this driver has dir, loop, tmpfs enabled"#);
    let huge = "z".repeat(100_000);
    let err = wanted(&params(&[("backend", &huge)]), &[mount("")], &[Kind::Btrfs]).unwrap_err();
    assert!(err.message().len() < 400, "{}", err.message());
    assert!(err.message().ends_with(r#""…; this driver has btrfs enabled"#), "{}", err.message());
    let err = wanted(&params(&[(&huge, "1")]), &[mount("")], &enabled).unwrap_err();
    assert!(err.message().len() < 400, "{}", err.message());
    // tmpfs, when enabled, is a backend CreateVolume takes.
    assert_eq!(wanted(&params(&[("backend", "tmpfs")]), &[mount("")], &enabled).unwrap().kind, Kind::Tmpfs);
}

#[test]
fn kubernetes_parameters_are_accepted() {
    let p = params(&[("csi.storage.k8s.io/pvc/name", "data"), ("backend", "dir")]);
    wanted(&p, &[mount("")], &ALL).unwrap();
}

#[test]
fn capacity_defaults_rounds_and_respects_limits() {
    let dir = Wanted { kind: Kind::Dir, fs_type: None };
    let xfs = Wanted { kind: Kind::Loop, fs_type: Some(FsType::Xfs) };
    let range = |r: i64, l: i64| CapacityRange { required_bytes: r, limit_bytes: l };
    assert_eq!(capacity(None, &dir).unwrap(), crate::engine::size::DEFAULT);
    assert_eq!(capacity(Some(&range(0, 4096)), &dir).unwrap(), 4096);
    assert_eq!(capacity(Some(&range(1000, 0)), &dir).unwrap(), 1000);
    let loop4 = Wanted { kind: Kind::Loop, fs_type: None };
    assert_eq!(capacity(Some(&range((20 << 20) + 1, 0)), &loop4).unwrap(), (20 << 20) + 4096);
    assert_eq!(capacity(Some(&range(1, 0)), &xfs).unwrap(), 300 << 20);
    let err = capacity(Some(&range(1, 100 << 20)), &xfs).unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange);
    for bad in [range(-1, 0), range(0, -1), range(10, 5)] {
        assert_eq!(capacity(Some(&bad), &dir).unwrap_err().code(), tonic::Code::InvalidArgument);
    }
    assert!(fits(4096, Some(&range(4096, 0))).unwrap());
    assert!(!fits(4096, Some(&range(8192, 0))).unwrap());
    assert!(!fits(8192, Some(&range(0, 4096))).unwrap());
}

#[test]
fn topology_requisites_must_name_this_node() {
    let here = topology("n1");
    let there = topology("n2");
    assert!(accessible(None, "n1"));
    let req = |t: Vec<Topology>| TopologyRequirement { requisite: t, preferred: vec![] };
    assert!(accessible(Some(&req(vec![])), "n1"));
    assert!(accessible(Some(&req(vec![there.clone(), here])), "n1"));
    assert!(!accessible(Some(&req(vec![there])), "n1"));
}

#[test]
fn node_access_and_read_only_mode() {
    let mut c = mount("");
    if let Some(AccessType::Mount(m)) = &mut c.access_type {
        m.mount_flags = vec!["noatime".into()];
    }
    assert_eq!(access(&c).unwrap(), Access::Mount { flags: vec!["noatime".into()] });
    assert_eq!(access(&block()).unwrap(), Access::Block);
    assert!(access(&VolumeCapability::default()).is_err());
    assert!(!reader_only(&c));
    let ro = cap(Mode::SingleNodeReaderOnly, AccessType::Block(BlockVolume {}));
    assert!(reader_only(&ro));
}

#[test]
fn single_node_modes_are_accepted_and_multi_node_ones_refused() {
    let dir = Wanted { kind: Kind::Dir, fs_type: None };
    let mount = || AccessType::Mount(MountVolume::default());
    for m in SINGLE_NODE_MODES {
        check_capability(&cap(m, mount()), &dir).unwrap();
    }
    for m in [Mode::Unknown, Mode::MultiNodeReaderOnly, Mode::MultiNodeSingleWriter, Mode::MultiNodeMultiWriter] {
        assert!(check_capability(&cap(m, mount()), &dir).is_err(), "{m:?}");
    }
    assert_eq!(mode(&VolumeCapability::default()), Mode::Unknown);
}

#[test]
fn content_sources_carry_ids_of_this_node() {
    use crate::csi::proto::volume_content_source::Type;
    let snap = content_source(&Source::Snapshot("s1".into()), "n1");
    assert!(matches!(snap.r#type, Some(Type::Snapshot(s)) if s.snapshot_id == "s1@n1"));
    let vol = content_source(&Source::Volume("v1".into()), "n1");
    assert!(matches!(vol.r#type, Some(Type::Volume(v)) if v.volume_id == "v1@n1"));
}
