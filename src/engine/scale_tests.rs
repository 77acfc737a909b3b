//! What grows with the node is never read on a volume's usual path: the whole mount table and
//! the list of every loop device are asked only where a cheap check of the volume's own paths,
//! devices and image cannot decide.

use super::tests::{fixture, mount_access, req};
use crate::backend::Kind;
use crate::sys::Host;

#[test]
fn a_loop_volume_s_life_lists_no_loop_device_and_reads_no_mount_table() {
    let f = fixture();
    f.host.answer_statx(true);
    let (tables, lists) = (f.host.table_reads(), f.host.loop_lists());
    f.engine.create_volume(&req("v", Kind::Loop, 64 << 20)).unwrap();
    let s = f.staging("v");
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    let t = f.target("p");
    f.engine.publish_volume("v", &s, &t, false).unwrap();
    assert!(!f.engine.volume_condition("v").unwrap().abnormal);
    f.engine.unpublish_volume("v", &t).unwrap();
    f.engine.unstage_volume("v", &s).unwrap();
    assert!(f.host.loop_list().unwrap().is_empty(), "unstage detached the device its node state names");
    f.engine.delete_volume("v").unwrap();
    assert_eq!(f.engine.get_volume("v").unwrap(), None);
    assert_eq!(f.host.table_reads(), tables, "no mount table read");
    assert_eq!(f.host.loop_lists(), lists + 1, "no loop list but this test's own");
}

#[test]
fn a_device_attached_behind_strata_s_back_is_still_found_and_detached() {
    let f = fixture();
    f.host.answer_statx(true);
    f.engine.create_volume(&req("v", Kind::Loop, 64 << 20)).unwrap();
    let image = f.root.join("volumes/v/disk.img");
    f.host.loop_attach(&image, false).unwrap();
    let lists = f.host.loop_lists();
    f.engine.delete_volume("v").unwrap();
    assert!(f.host.loop_lists() > lists, "a held image makes the delete list the devices");
    assert!(f.host.loop_list().unwrap().is_empty(), "and detach the one it found");
    assert!(!image.exists());
}

#[test]
fn unstage_detaches_every_device_of_the_image_not_only_the_recorded_one() {
    let f = fixture();
    f.host.answer_statx(true);
    f.engine.create_volume(&req("v", Kind::Loop, 64 << 20)).unwrap();
    let s = f.staging("v");
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    f.host.loop_attach(&f.root.join("volumes/v/disk.img"), true).unwrap();
    f.engine.unstage_volume("v", &s).unwrap();
    assert!(f.host.loop_list().unwrap().is_empty());
}

#[test]
fn a_dir_node_cycle_reads_no_mount_table() {
    let f = fixture();
    f.host.answer_statx(true);
    f.engine.create_volume(&req("d", Kind::Dir, 1 << 20)).unwrap();
    let tables = f.host.table_reads();
    let (s, t) = (f.staging("d"), f.target("p"));
    f.engine.stage_volume("d", &s, &mount_access()).unwrap();
    f.engine.publish_volume("d", &s, &t, false).unwrap();
    f.engine.unpublish_volume("d", &t).unwrap();
    f.engine.unstage_volume("d", &s).unwrap();
    assert_eq!(f.host.table_reads(), tables);
}
