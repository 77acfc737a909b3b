//! Encrypted volumes against the recording fake host: the key reaches the kernel at stage and
//! leaves it at unstage, a wrong key changes nothing, copies keep the source's key.

use super::encryption::{PARAM_ENCRYPTION, StageKey};
use super::tests::{Fixture, fixture, mount_access, req};
use super::*;
use crate::sys::Call;

const KEY: &[u8] = b"correct horse battery staple, and then some more";
const WRONG: &[u8] = b"incorrect horse battery staple, and then some more";

fn encrypted(id: &str, kind: Kind) -> CreateRequest {
    let mut r = req(id, kind, 1 << 30);
    r.parameters.insert(PARAM_ENCRYPTION.into(), "fscrypt".into());
    r
}

fn stage(f: &Fixture, id: &str, key: &[u8]) -> Result<()> {
    f.engine.stage_volume_keyed(id, &f.staging(id), &mount_access(), &StageKey::from_bytes(key), &|_| Ok(()))
}

fn key_id(f: &Fixture, id: &str) -> Option<String> {
    f.engine.volume_record(id).unwrap().unwrap().encryption.unwrap().key_identifier
}

#[test]
fn a_loop_volume_is_locked_by_unstage_and_opened_only_by_its_key() {
    let f = fixture();
    let vol = f.engine.create_volume(&encrypted("v", Kind::Loop)).unwrap();
    assert_eq!(vol.encryption.as_ref().unwrap().key_derivation_id, "v");
    stage(&f, "v", KEY).unwrap();
    let calls = f.host.calls();
    assert!(calls.iter().any(|c| matches!(c, Call::Mkfs { encrypt: true, .. })), "{calls:?}");
    let data = f.staging("v").join("data");
    assert!(calls.contains(&Call::FscryptSetPolicy { dir: data.clone() }), "{calls:?}");
    let id = key_id(&f, "v").expect("the first stage records the key identifier");
    assert_eq!(f.host.fscrypt_keys().iter().map(|k| k.hex()).collect::<Vec<_>>(), std::slice::from_ref(&id));
    let record = std::fs::read_to_string(f.root.join("volumes/v/volume.json")).unwrap();
    assert!(record.contains(&id) && !record.contains("horse"), "{record}");
    // Pods get the encrypted directory, not the filesystem root.
    let t = f.target("a");
    f.engine.publish_volume("v", &f.staging("v"), &t, false).unwrap();
    assert!(f.host.calls().iter().any(|c| matches!(c, Call::Bind { source, .. } if *source == data)));
    assert_eq!(f.engine.live_publications("v").unwrap().len(), 1, "the bind of data counts");
    f.engine.unpublish_volume("v", &t).unwrap();
    f.engine.unstage_volume("v", &f.staging("v")).unwrap();
    assert!(f.host.fscrypt_keys().is_empty(), "unstage removes the key");
    // A wrong key is refused before the host is touched.
    f.host.clear_calls();
    let e = stage(&f, "v", WRONG).unwrap_err();
    assert!(matches!(&e, Error::WrongKey { .. }) && e.to_string().contains(&id), "{e}");
    assert!(f.host.calls().is_empty() && f.host.fscrypt_keys().is_empty() && f.host.mounts_beyond_root().is_empty());
    stage(&f, "v", KEY).unwrap();
    assert_eq!(key_id(&f, "v"), Some(id));
    assert!(!f.host.calls().iter().any(|c| matches!(c, Call::FscryptSetPolicy { .. })), "set once");
}

#[test]
fn a_stage_needs_a_long_enough_key_and_never_raw_block() {
    let f = fixture();
    f.engine.create_volume(&encrypted("v", Kind::Loop)).unwrap();
    f.host.clear_calls();
    let none = f.engine.stage_volume("v", &f.staging("v"), &mount_access()).unwrap_err().to_string();
    assert!(none.contains("node-stage-secret-name"), "{none}");
    let short = stage(&f, "v", b"too short").unwrap_err().to_string();
    assert!(short.contains("shorter than 32 bytes") && !short.contains("too short"), "{short}");
    let block =
        f.engine.stage_volume_keyed("v", &f.staging("v"), &Access::Block, &StageKey::from_bytes(KEY), &|_| Ok(()));
    assert!(matches!(block, Err(Error::InvalidArgument(_))), "{block:?}");
    assert!(f.host.calls().is_empty());
    // An unencrypted volume ignores whatever secrets come.
    f.engine.create_volume(&req("p", Kind::Loop, 1 << 30)).unwrap();
    stage(&f, "p", b"short").unwrap();
}

#[test]
fn encryption_is_refused_where_it_cannot_work() {
    let f = fixture();
    for kind in [Kind::Btrfs, Kind::Tmpfs] {
        let e = f.engine.create_volume(&encrypted("x", kind)).unwrap_err().to_string();
        assert!(e.contains("cannot be encrypted"), "{e}");
    }
    let mut xfs = encrypted("x", Kind::Loop);
    xfs.fs_type = Some(FsType::Xfs);
    assert!(f.engine.create_volume(&xfs).unwrap_err().to_string().contains("needs ext4"));
    let mut odd = encrypted("x", Kind::Loop);
    odd.parameters.insert(PARAM_ENCRYPTION.into(), "luks".into());
    assert!(f.engine.create_volume(&odd).unwrap_err().to_string().contains("neither fscrypt nor none"));
    f.host.no_fscrypt_on("/dev/fakeroot");
    let e = f.engine.create_volume(&encrypted("x", Kind::Dir)).unwrap_err().to_string();
    assert!(e.contains("cannot") && e.contains("tune2fs -O encrypt"), "{e}");
    assert!(!f.root.join("volumes/x").exists());
}

#[test]
fn a_dir_volume_is_encrypted_in_place_and_its_copies_are_refused() {
    let f = fixture();
    f.engine.create_volume(&encrypted("d", Kind::Dir)).unwrap();
    stage(&f, "d", KEY).unwrap();
    assert!(f.host.calls().contains(&Call::FscryptSetPolicy { dir: f.root.join("volumes/d/data") }));
    assert_eq!(f.host.fscrypt_keys().len(), 1);
    let snap = SnapshotRequest { id: "s".into(), name: "s".into(), source_volume: "d".into() };
    let e = f.engine.create_snapshot(&snap).unwrap_err().to_string();
    assert!(e.contains("not supported") && e.contains("backend: loop"), "{e}");
    let e = f.engine.create_volume_from(&encrypted("c", Kind::Dir), &Source::Volume("d".into())).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    f.engine.unstage_volume("d", &f.staging("d")).unwrap();
    assert!(f.host.fscrypt_keys().is_empty());
    assert!(f.host.calls().contains(&Call::FscryptRemoveKey { fs: f.root.join("volumes/d") }));
    f.engine.delete_volume("d").unwrap();
}

#[test]
fn copies_keep_the_key_of_the_first_volume_and_ask_for_encryption() {
    let f = fixture();
    f.engine.create_volume(&encrypted("v", Kind::Loop)).unwrap();
    stage(&f, "v", KEY).unwrap();
    let snap = SnapshotRequest { id: "s".into(), name: "s".into(), source_volume: "v".into() };
    let s = f.engine.create_snapshot(&snap).unwrap();
    assert_eq!(s.encryption, f.engine.volume_record("v").unwrap().unwrap().encryption);
    let from = Source::Snapshot("s".into());
    let plain = f.engine.create_volume_from(&req("r", Kind::Loop, 1 << 30), &from).unwrap_err().to_string();
    assert!(plain.contains("the source is encrypted"), "{plain}");
    let r = f.engine.create_volume_from(&encrypted("r", Kind::Loop), &from).unwrap();
    let c = f.engine.create_volume_from(&encrypted("c", Kind::Loop), &Source::Volume("r".into())).unwrap();
    for copy in [&r, &c] {
        let enc = copy.encryption.as_ref().unwrap();
        assert_eq!((enc.key_derivation_id.as_str(), &enc.key_identifier), ("v", &key_id(&f, "v")));
    }
    assert!(matches!(stage(&f, "c", WRONG), Err(Error::WrongKey { .. })));
    f.engine.create_volume(&req("p", Kind::Loop, 1 << 30)).unwrap();
    let e = f.engine.create_volume_from(&encrypted("q", Kind::Loop), &Source::Volume("p".into())).unwrap_err();
    assert!(e.to_string().contains("not encrypted"), "{e}");
}

#[test]
fn after_a_reboot_an_encrypted_volume_waits_for_the_stage_that_brings_its_key() {
    let f = fixture();
    f.engine.create_volume(&encrypted("v", Kind::Loop)).unwrap();
    stage(&f, "v", KEY).unwrap();
    f.host.reboot();
    let report = f.engine.reconcile().unwrap();
    assert!(report.actions.iter().any(|a| a.contains("forgot it (encrypted")), "{report:?}");
    assert!(f.host.mounts_beyond_root().is_empty(), "not mounted again without its key");
    let t = f.target("a");
    assert!(matches!(f.engine.publish_volume("v", &f.staging("v"), &t, false), Err(Error::FailedPrecondition { .. })));
    stage(&f, "v", KEY).unwrap();
    f.engine.publish_volume("v", &f.staging("v"), &t, false).unwrap();
}

#[test]
fn a_staged_volume_without_its_key_is_not_published_until_staged_again() {
    let f = fixture();
    f.engine.create_volume(&encrypted("v", Kind::Dir)).unwrap();
    stage(&f, "v", KEY).unwrap();
    // The key gone while the mount stays (an unstage that found files busy, a hand removal).
    let fs = crate::sys::place_at(&f.root.join("volumes/v")).unwrap();
    let id = crate::sys::fscrypt::KeyId::parse(&key_id(&f, "v").unwrap()).unwrap();
    f.host.fscrypt_remove_key(&fs, &id).unwrap();
    let t = f.target("a");
    let e = f.engine.publish_volume("v", &f.staging("v"), &t, false).unwrap_err().to_string();
    assert!(e.contains("key is not in the kernel"), "{e}");
    stage(&f, "v", KEY).unwrap();
    assert_eq!(f.host.fscrypt_keys().len(), 1, "the stage of a staged volume adds the key again");
    f.engine.publish_volume("v", &f.staging("v"), &t, false).unwrap();
}

#[test]
fn a_key_left_by_a_stage_cut_short_goes_at_unstage_or_start() {
    let f = fixture();
    f.engine.create_volume(&encrypted("v", Kind::Dir)).unwrap();
    stage(&f, "v", KEY).unwrap();
    // Node state lost (as if killed before it was written): unstage still removes the key.
    std::fs::remove_file(f.root.join("volumes/v/node.json")).unwrap();
    f.engine.unstage_volume("v", &f.staging("v")).unwrap();
    assert!(f.host.fscrypt_keys().is_empty());
    stage(&f, "v", KEY).unwrap();
    f.engine.unstage_volume("v", &f.staging("v")).unwrap();
    // A key in the kernel for a volume nothing stages: start-up removes it.
    let fs = crate::sys::place_at(&f.root.join("volumes/v")).unwrap();
    let master = encryption::MasterKey::derive(&encryption::Secret::new(KEY).unwrap(), "v").unwrap();
    f.host.fscrypt_add_key(&fs, master.bytes()).unwrap();
    let report = f.engine.reconcile().unwrap();
    assert!(report.actions.iter().any(|a| a.contains("removed its key")), "{report:?}");
    assert!(f.host.fscrypt_keys().is_empty());
}
