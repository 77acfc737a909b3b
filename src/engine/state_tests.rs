//! Engine tests of node state against the fake host: the node state file, recorded publications,
//! records written before node state had its own file, and front-end checks under the lock.

use super::tests::{Fixture, fixture, mount_access, req};
use super::*;
use crate::sys::Host;
use crate::sys::place_at;

#[test]
fn stage_writes_node_state_and_leaves_the_record_alone() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
    let dir = f.engine.volume_dir("v");
    let record = std::fs::read(dir.record()).unwrap();
    let s = f.staging("v");
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    assert_eq!(std::fs::read(dir.record()).unwrap(), record, "stage does not rewrite the record");
    assert!(std::fs::read_to_string(dir.node_state()).unwrap().contains(s.to_str().unwrap()));
    assert_eq!(f.engine.get_volume("v").unwrap().unwrap().staging.map(|st| st.path), Some(s.clone()));
    f.engine.unstage_volume("v", &s).unwrap();
    assert!(!std::fs::read_to_string(dir.node_state()).unwrap().contains("staging"));
    assert_eq!(std::fs::read(dir.record()).unwrap(), record, "unstage does not rewrite the record");
}

#[test]
fn a_publication_whose_target_was_unmounted_is_stale() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
    let (s, a, b) = (f.staging("v"), f.target("a"), f.target("b"));
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    f.engine.publish_volume("v", &s, &a, false).unwrap();
    f.engine.publish_volume("v", &s, &b, true).unwrap();
    let live = f.engine.live_publications("v").unwrap();
    assert_eq!(live.len(), 2, "{live:?}");
    assert!(live.iter().any(|p| p.target == b && p.readonly));
    f.host.unmount(&place_at(&a).unwrap(), false).unwrap(); // behind strata's back
    let e = f.engine.unstage_volume("v", &s).unwrap_err();
    assert!(e.to_string().contains(b.to_str().unwrap()), "{e}");
    f.host.unmount(&place_at(&b).unwrap(), false).unwrap();
    f.engine.unstage_volume("v", &s).unwrap();
    let dir = f.engine.volume_dir("v");
    assert!(!std::fs::read_to_string(dir.node_state()).unwrap().contains("pods"), "unstage forgot stale ones");
    f.engine.delete_volume("v").unwrap();
    assert!(!dir.0.exists());
}

#[test]
fn a_recorded_publication_showing_another_volume_does_not_count() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
    f.engine.create_volume(&req("w", Kind::Dir, 1 << 20)).unwrap();
    let (s, t) = (f.staging("v"), f.target("a"));
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    f.engine.publish_volume("v", &s, &t, false).unwrap();
    f.engine.unpublish_volume("v", &t).unwrap();
    // A stale publication of v at t (as a crash before unpublish's write leaves), and now w is
    // published there.
    let dir = f.engine.volume_dir("v");
    let mut node: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.node_state()).unwrap()).unwrap();
    node["publications"] = serde_json::json!([{ "target": t, "readonly": false, "block": false }]);
    node.as_object_mut().unwrap().remove("checksum"); // as an older strata wrote it
    std::fs::write(dir.node_state(), node.to_string()).unwrap();
    assert_eq!(f.engine.load("v").unwrap().unwrap().marked.len(), 1);
    let sw = f.staging("w");
    f.engine.stage_volume("w", &sw, &mount_access()).unwrap();
    f.engine.publish_volume("w", &sw, &t, false).unwrap();
    assert!(f.engine.live_publications("v").unwrap().is_empty());
    f.engine.unstage_volume("v", &s).unwrap();
    assert_eq!(f.engine.live_publications("w").unwrap().len(), 1);
}

/// A volume of `kind` staged as an older strata left it: the staging in the record, no node
/// state file. Returns the volume's directory and staging path.
fn staged_by_an_older_strata(f: &Fixture, kind: Kind) -> (VolumeDir, PathBuf) {
    f.engine.create_volume(&req("v", kind, 1 << 20)).unwrap();
    let s = f.staging("v");
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    let dir = f.engine.volume_dir("v");
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.record()).unwrap()).unwrap();
    let staging: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.node_state()).unwrap()).unwrap();
    json["staging"] = staging["staging"].clone();
    json.as_object_mut().unwrap().remove("checksum"); // an older strata's record had none
    std::fs::write(dir.record(), json.to_string()).unwrap();
    std::fs::remove_file(dir.node_state()).unwrap();
    (dir, s)
}

#[test]
fn an_older_record_with_staging_moves_it_to_node_state() {
    let f = fixture();
    let (dir, s) = staged_by_an_older_strata(&f, Kind::Dir);
    let vol = f.engine.get_volume("v").unwrap().unwrap();
    assert_eq!(vol.staging.map(|st| st.path), Some(s.clone()), "the older record's staging is read");
    f.engine.unstage_volume("v", &s).unwrap();
    assert!(!std::fs::read_to_string(dir.record()).unwrap().contains("staging"));
    assert_eq!(f.engine.get_volume("v").unwrap().unwrap().staging, None);
}

#[test]
fn an_older_staging_survives_a_record_rewrite() {
    let f = fixture();
    let (dir, s) = staged_by_an_older_strata(&f, Kind::Loop);
    f.engine.expand_volume("v", 32 << 20).unwrap(); // grows past the 16 MiB minimum: rewrites the record
    assert!(!std::fs::read_to_string(dir.record()).unwrap().contains("staging"));
    assert_eq!(f.engine.get_volume("v").unwrap().unwrap().staging.map(|st| st.path), Some(s));
}

#[test]
fn a_refused_check_changes_nothing() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
    let s = f.staging("v");
    f.host.clear_calls();
    let no = |_: &Volume| Err(Error::InvalidArgument("not for this volume".into()));
    let e = f.engine.stage_volume_checked("v", &s, &mount_access(), &no).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert!(f.host.calls().is_empty());
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    f.host.clear_calls();
    let (t, opts) = (f.target("a"), crate::sys::MountOptions::default());
    let bind = Bind { staging: &s, target: &t, opts: &opts, alone: false, block: None };
    assert!(matches!(f.engine.publish_volume_checked("v", &bind, &no), Err(Error::InvalidArgument(_))));
    assert!(f.host.calls().is_empty() && !t.exists());
    assert!(f.engine.live_publications("v").unwrap().is_empty());
}

#[test]
fn binds_an_older_strata_made_count_until_reconcile_records_them() {
    let f = fixture();
    let (dir, s) = staged_by_an_older_strata(&f, Kind::Dir);
    let t = f.target("old-pod");
    std::fs::create_dir(&t).unwrap();
    f.host.bind_mount(&s, &place_at(&t).unwrap(), &Default::default()).unwrap(); // published by the older strata: no record of it
    let live = f.engine.live_publications("v").unwrap();
    assert_eq!(live.iter().map(|p| p.target.clone()).collect::<Vec<_>>(), vec![t.clone()]);
    assert!(matches!(f.engine.unstage_volume("v", &s), Err(Error::FailedPrecondition { .. })));
    assert!(matches!(f.engine.delete_volume("v"), Err(Error::FailedPrecondition { .. })));

    let report = f.engine.reconcile().unwrap();
    assert!(report.actions.iter().any(|a| a.contains("1 publication")), "{report:?}");
    assert!(!std::fs::read_to_string(dir.record()).unwrap().contains("staging"));
    assert!(std::fs::read_to_string(dir.node_state()).unwrap().contains("old-pod"));
    assert!(matches!(f.engine.unstage_volume("v", &s), Err(Error::FailedPrecondition { .. })));
    f.engine.unpublish_volume("v", &t).unwrap();
    f.engine.unstage_volume("v", &s).unwrap();
    f.engine.delete_volume("v").unwrap();
}

#[test]
fn a_mount_stacked_on_a_target_does_not_hide_the_publication_below() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
    let (s, t) = (f.staging("v"), f.target("a"));
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    f.engine.publish_volume("v", &s, &t, false).unwrap();
    let other = f.kubelet.join("other");
    std::fs::create_dir(&other).unwrap();
    f.host.bind_mount(&other, &place_at(&t).unwrap(), &Default::default()).unwrap();
    assert_eq!(f.engine.live_publications("v").unwrap().len(), 1);
    assert!(matches!(f.engine.unstage_volume("v", &s), Err(Error::FailedPrecondition { .. })));
}
