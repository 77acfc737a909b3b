//! Background copies against the recording fake host: the cut, the record while the copy runs,
//! what the same request and other calls answer meanwhile, the end, a failure, a cancel, and a
//! resume by another engine (as after a restart).

use crate::backend::Kind;
use crate::engine::record::{Cause, FORMAT, FORMAT_COPYING};
use crate::engine::tests::{fixture, mount_access, req};
use crate::engine::{CopyKey, Engine, Error, SnapshotRequest, Source};
use crate::sys::Call;
use std::time::Duration;

fn snap(id: &str, vol: &str) -> SnapshotRequest {
    SnapshotRequest { id: id.into(), name: format!("name-{id}"), source_volume: vol.into() }
}

/// A loop volume with 1 MiB of data in its image, staged.
fn loop_volume(f: &crate::engine::tests::Fixture, id: &str) -> std::path::PathBuf {
    f.engine.create_volume(&req(id, Kind::Loop, 64 << 20)).unwrap();
    std::fs::write(f.root.join(format!("volumes/{id}/disk.img")), vec![7u8; 1 << 20]).unwrap();
    let s = f.staging(id);
    f.engine.stage_volume(id, &s, &mount_access()).unwrap();
    s
}

/// A second engine on the fixture's root, as a restarted server has.
fn restarted(f: &crate::engine::tests::Fixture) -> Engine {
    let cfg =
        crate::engine::Config { allowed_prefixes: vec![f.kubelet.clone()], ..crate::engine::Config::new(&f.root) };
    Engine::new(cfg, f.host.clone()).unwrap()
}

#[test]
fn a_snapshot_is_cut_at_once_and_ready_when_its_copy_ends() {
    let f = fixture();
    let s = loop_volume(&f, "v");
    f.host.clear_calls();
    let (cut, job) = f.engine.start_snapshot(&snap("s1", "v")).unwrap();
    let job = job.expect("no reflink on this root: the copy runs later");
    assert!(!cut.ready() && cut.format == FORMAT_COPYING, "{cut:?}");
    assert_eq!(
        f.host.calls().last(),
        Some(&Call::Reflink {
            source: f.root.join("volumes/v/disk.img"),
            dest: f.root.join("snapshots/.s1.new/disk.img")
        })
    );
    assert!(!f.host.calls().iter().any(|c| matches!(c, Call::Thaw { .. })), "frozen until the copy ends");
    let listed = f.engine.list_snapshots().unwrap();
    assert_eq!(listed.len(), 1, "a cut snapshot is listed");
    assert!(!listed[0].ready());
    let (again, none) = f.engine.start_snapshot(&snap("s1", "v")).unwrap();
    assert!(none.is_none() && !again.ready(), "the same request finds the copy running");
    let busy = f.engine.stage_volume("v", &s, &mount_access()).unwrap_err();
    assert!(matches!(busy, Error::CopyBusy { .. }) && busy.to_string().contains("snapshot s1 copies it"), "{busy}");
    f.engine.run_copy(job);
    assert_eq!(f.host.calls().last(), Some(&Call::Thaw { mountpoint: s }));
    let done = f.engine.get_snapshot("s1").unwrap().unwrap();
    assert!(done.ready() && done.format == FORMAT, "{done:?}");
    assert_eq!(std::fs::read(f.root.join("snapshots/s1/disk.img")).unwrap()[..4], [7u8; 4]);
    assert!(!f.root.join("snapshots/s1").join(crate::engine::PROGRESS_FILE).exists());
    assert!(f.engine.copy_job(&CopyKey::Snapshot("s1".into())).is_none());
}

#[test]
fn a_reflink_is_the_whole_copy_and_the_freeze_lasts_only_for_it() {
    let f = fixture();
    f.host.set_reflink(true);
    let s = loop_volume(&f, "v");
    f.host.clear_calls();
    let (cut, job) = f.engine.start_snapshot(&snap("s1", "v")).unwrap();
    assert!(cut.ready() && job.is_none(), "{cut:?}");
    let image = f.root.join("volumes/v/disk.img");
    let reflink = Call::Reflink { source: image, dest: f.root.join("snapshots/.s1.new/disk.img") };
    let frozen = Call::Freeze { mountpoint: s.clone() };
    assert_eq!(f.host.calls(), vec![frozen, reflink, Call::Thaw { mountpoint: s }]);
    let (clone, job) =
        f.engine.start_volume_from(&req("c", Kind::Loop, 64 << 20), &Source::Volume("v".into())).unwrap();
    assert!(clone.copy.is_none() && job.is_none());
}

#[test]
fn a_clone_in_progress_is_refused_to_stage_expand_and_copy_and_finishes() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
    std::fs::write(f.root.join("volumes/v/data/file"), b"one").unwrap();
    let source = Source::Volume("v".into());
    let (vol, job) = f.engine.start_volume_from(&req("c", Kind::Dir, 1 << 20), &source).unwrap();
    let job = job.expect("a tree is copied later");
    assert!(vol.copy.is_some());
    let staged = f.engine.stage_volume("c", &f.staging("c"), &mount_access()).unwrap_err();
    assert!(
        matches!(staged, Error::FailedPrecondition { .. }) && staged.to_string().contains("being copied"),
        "{staged}"
    );
    assert!(matches!(f.engine.expand_volume("c", 2 << 20), Err(Error::FailedPrecondition { .. })));
    let from_it = f.engine.start_volume_from(&req("d", Kind::Dir, 1 << 20), &Source::Volume("c".into()));
    assert!(matches!(from_it, Err(Error::Copying { .. })));
    let differ = f.engine.start_volume_from(&req("c", Kind::Dir, 1 << 20), &Source::Volume("other".into()));
    assert!(matches!(differ, Err(Error::AlreadyExists { .. })), "the same name, another source");
    let source_busy = f.engine.delete_volume("v").unwrap_err();
    assert!(matches!(source_busy, Error::FailedPrecondition { .. }), "{source_busy}");
    f.engine.run_copy(job);
    let (done, none) = f.engine.start_volume_from(&req("c", Kind::Dir, 1 << 20), &source).unwrap();
    assert!(done.copy.is_none() && none.is_none() && done.format == FORMAT, "{done:?}");
    assert_eq!(std::fs::read(f.root.join("volumes/c/data/file")).unwrap(), b"one");
    f.engine.stage_volume("c", &f.staging("c"), &mount_access()).unwrap();
    f.engine.delete_volume("v").unwrap();
}

#[test]
fn a_failed_copy_is_reported_once_with_its_cause_and_leaves_nothing() {
    let f = fixture();
    loop_volume(&f, "v");
    f.host.fail_with("CopyFile", libc::ENOSPC);
    let (_, job) = f.engine.start_snapshot(&snap("s1", "v")).unwrap();
    f.engine.run_copy(job.unwrap());
    let failed = f.engine.get_snapshot("s1").unwrap().unwrap();
    let why = failed.copy.as_ref().and_then(|c| c.failed.clone()).expect("the failure is recorded");
    assert_eq!(why.cause, Cause::Exhausted, "{why:?}");
    assert!(!f.root.join("snapshots/s1/disk.img").exists(), "the partial copy is removed");
    let reported = f.engine.start_snapshot(&snap("s1", "v")).unwrap_err();
    assert!(matches!(reported, Error::CopyFailed { cause: Cause::Exhausted, .. }), "{reported}");
    assert!(reported.to_string().contains("No space left"), "{reported}");
    assert!(f.engine.get_snapshot("s1").unwrap().is_none(), "reported once, then gone");
    f.host.fail_with("CopyFile", 0);
}

#[test]
fn a_delete_stops_the_copy_and_removes_what_it_made() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Loop, 64 << 20)).unwrap();
    std::fs::write(f.root.join("volumes/v/disk.img"), vec![7u8; 1 << 20]).unwrap();
    let slow = restarted(&f).with_copy_rate(1);
    let (_, job) = slow.start_volume_from(&req("c", Kind::Loop, 64 << 20), &Source::Volume("v".into())).unwrap();
    let state = job.as_ref().unwrap().state().clone();
    std::thread::scope(|s| {
        s.spawn(|| slow.run_copy(job.unwrap()));
        while state.progress.copied() == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        slow.delete_volume("c").unwrap();
        assert!(state.wait(Duration::ZERO), "the copy stopped before the delete answered");
    });
    assert!(!f.root.join("volumes/c").exists() && slow.volume_record("c").unwrap().is_none());
    slow.delete_volume("v").unwrap();
}

#[test]
fn a_restarted_engine_resumes_a_copy_and_fails_one_whose_source_changed() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Loop, 64 << 20)).unwrap();
    std::fs::write(f.root.join("volumes/v/disk.img"), vec![7u8; 1 << 20]).unwrap();
    let (_, job) = f.engine.start_snapshot(&snap("s1", "v")).unwrap();
    drop(job); // killed before the copy ran: the record says it is under way
    let again = restarted(&f);
    let mut report = crate::engine::reconcile::Report::default();
    let mut jobs = again.resume_copies(&mut report);
    assert_eq!((jobs.len(), report.errors.len()), (1, 0), "{report:?}");
    again.run_copy(jobs.remove(0));
    let resumed = again.get_snapshot("s1").unwrap().unwrap();
    assert!(resumed.ready());
    assert_eq!(std::fs::read(f.root.join("snapshots/s1/disk.img")).unwrap()[..4], [7u8; 4]);
    let (_, job) = f.engine.start_snapshot(&snap("s2", "v")).unwrap();
    drop(job);
    std::fs::write(f.root.join("volumes/v/disk.img"), vec![8u8; 1 << 20]).unwrap();
    let third = restarted(&f);
    let lost = third.create_snapshot(&snap("s2", "v")).unwrap_err();
    assert!(matches!(lost, Error::CopyFailed { cause: Cause::Interrupted, .. }), "{lost}");
    assert!(lost.to_string().contains("written to since the copy began"), "{lost}");
    assert!(third.get_snapshot("s2").unwrap().is_none(), "reported, then removed");
    assert!(third.create_snapshot(&snap("s2", "v")).unwrap().ready(), "the next try starts again");
}
