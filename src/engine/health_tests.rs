//! Volume conditions without the whole mount table: a healthy staging is proven on its own path,
//! and only what that cannot prove is looked up in the table.

use super::tests::{fixture, mount_access, req};
use crate::backend::Kind;
use crate::sys::Place;

/// A fixture whose host answers statx and statfs, with `kind` volume "v" staged and published.
fn staged(kind: Kind) -> (super::tests::Fixture, std::path::PathBuf) {
    let f = fixture();
    f.host.answer_statx(true);
    f.engine.create_volume(&req("v", kind, 1 << 20)).unwrap();
    let s = f.staging("v");
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    f.engine.publish_volume("v", &s, &f.target("p"), false).unwrap();
    (f, s)
}

#[test]
fn a_healthy_staging_is_proven_without_reading_the_mount_table() {
    for kind in [Kind::Dir, Kind::Tmpfs] {
        let (f, _) = staged(kind);
        f.engine.create_volume(&req("idle", Kind::Dir, 1 << 20)).unwrap();
        let reads = f.host.table_reads();
        let c = f.engine.volume_condition("v").unwrap();
        assert!(!c.abnormal && c.message == "healthy", "{kind:?}: {c:?}");
        let listed = f.engine.volume_conditions(&f.engine.list_volumes().unwrap()).unwrap();
        assert!(listed.iter().all(|c| !c.abnormal) && listed.len() == 2, "{kind:?}: {listed:?}");
        assert_eq!(f.engine.volume_condition("idle").unwrap().message, "healthy");
        assert_eq!(f.host.table_reads(), reads, "{kind:?}: healthy volumes, staged or not");
    }
}

#[test]
fn a_staging_unmounted_behind_strata_is_still_told_from_the_table() {
    let (f, s) = staged(Kind::Dir);
    let place = Place::at(&s).unwrap();
    crate::sys::Host::unmount(&*f.host, &place, false).unwrap();
    let reads = f.host.table_reads();
    let c = f.engine.volume_condition("v").unwrap();
    assert!(c.abnormal && c.message.contains("staging mount") && c.message.contains("gone"), "{c:?}");
    assert_eq!(f.host.table_reads(), reads + 1, "what statx cannot prove is asked of the table");
    // A page asks the table once, however many of its volumes need it.
    f.engine.create_volume(&req("w", Kind::Dir, 1 << 20)).unwrap();
    let w = f.staging("w");
    f.engine.stage_volume("w", &w, &mount_access()).unwrap();
    crate::sys::Host::unmount(&*f.host, &Place::at(&w).unwrap(), false).unwrap();
    let all = f.engine.list_volumes().unwrap();
    let reads = f.host.table_reads();
    let listed = f.engine.volume_conditions(&all).unwrap();
    assert!(listed.iter().all(|c| c.abnormal), "{listed:?}");
    assert_eq!(f.host.table_reads(), reads + 1);
}

#[test]
fn a_filesystem_gone_read_only_under_a_read_write_staging_is_abnormal() {
    let (f, s) = staged(Kind::Tmpfs);
    f.host.fail_fs_readonly(&s);
    let c = f.engine.volume_condition("v").unwrap();
    assert!(c.abnormal && c.message.contains("went read-only"), "{c:?}");
    // A staging asked read-only is not a filesystem error.
    let g = fixture();
    g.host.answer_statx(true);
    g.engine.create_volume(&req("r", Kind::Dir, 1 << 20)).unwrap();
    let rs = g.staging("r");
    g.engine.stage_volume("r", &rs, &crate::engine::Access::Mount { flags: vec!["ro".into()] }).unwrap();
    let reads = g.host.table_reads();
    assert_eq!(g.engine.volume_condition("r").unwrap().message, "healthy");
    assert_eq!(g.host.table_reads(), reads);
}

#[test]
fn a_host_that_cannot_tell_reads_the_table_once_per_call() {
    let (f, _) = staged(Kind::Dir);
    f.host.answer_statx(false);
    let reads = f.host.table_reads();
    assert_eq!(f.engine.volume_condition("v").unwrap().message, "healthy");
    assert_eq!(f.host.table_reads(), reads + 1);
}
