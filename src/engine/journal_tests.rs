//! The journal's ring on a real file: entries come back until a checkpoint covers them, torn
//! blocks are told from whole ones, and the ring never overwrites an uncovered entry.

use super::*;
use std::sync::Arc;

fn ring(dir: &Path) -> (Ring, Vec<Found>) {
    Ring::open(&dir.join("journal")).unwrap()
}

fn payloads(found: &[Found]) -> Vec<(u64, String)> {
    found.iter().map(|f| (f.seq, String::from_utf8(f.payload.clone()).unwrap())).collect()
}

#[test]
fn entries_come_back_in_order_until_a_checkpoint_covers_them() {
    let d = tempfile::tempdir().unwrap();
    let (r, found) = ring(d.path());
    assert!(found.is_empty());
    assert_eq!(std::fs::metadata(d.path().join("journal")).unwrap().len(), file_size());
    for p in ["a", "b", "c"] {
        r.append(p.as_bytes(), Vec::new()).unwrap();
    }
    drop(r);
    let (r, found) = ring(d.path());
    assert_eq!(payloads(&found), [(1, "a".into()), (2, "b".into()), (3, "c".into())]);
    r.mark(2).unwrap();
    assert_eq!(r.append(b"d", Vec::new()).unwrap(), 4, "numbering goes on after the entries found");
    drop(r);
    let (_, found) = ring(d.path());
    assert_eq!(payloads(&found), [(3, "c".into()), (4, "d".into())]);
}

#[test]
fn a_torn_entry_is_skipped_and_a_torn_header_falls_back_to_the_other() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("journal");
    let (r, _) = ring(d.path());
    for p in ["a", "b", "c", "d"] {
        r.append(p.as_bytes(), Vec::new()).unwrap();
    }
    r.mark(1).unwrap();
    r.mark(2).unwrap();
    drop(r);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    // Entry 3's payload loses a byte: its check fails.
    f.write_all_at(b"X", slot_offset(3) + ENTRY_HEAD as u64).unwrap();
    // The newer header (checkpoint 2, the second block) is torn: the older one (1) holds.
    f.write_all_at(b"\xff", SLOT as u64 + 9).unwrap();
    drop(f);
    let (_, found) = ring(d.path());
    assert_eq!(payloads(&found), [(2, "b".into()), (4, "d".into())]);
}

#[test]
fn the_ring_wraps_and_never_overwrites_an_uncovered_entry() {
    let d = tempfile::tempdir().unwrap();
    let (r, _) = ring(d.path());
    let r = Arc::new(r);
    for i in 0..SLOTS {
        r.append(format!("e{i}").as_bytes(), Vec::new()).unwrap();
    }
    assert_eq!(r.uncovered(), SLOTS);
    let writer = {
        let r = r.clone();
        std::thread::spawn(move || r.append(b"past the end", Vec::new()))
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(!writer.is_finished(), "a full ring makes the append wait for a checkpoint");
    r.mark(10).unwrap();
    assert_eq!(writer.join().unwrap().unwrap(), SLOTS + 1);
    drop(r);
    let (_, found) = ring(d.path());
    assert_eq!(found.len(), usize::try_from(SLOTS + 1 - 10).unwrap());
    assert_eq!(found.first().map(|f| f.seq), Some(11));
    assert_eq!(payloads(&found).last().unwrap(), &(SLOTS + 1, "past the end".to_owned()));
}

#[test]
fn take_hands_over_what_to_sync_after_the_delay_or_when_stopping() {
    let d = tempfile::tempdir().unwrap();
    let (r, _) = ring(d.path());
    let never = || false;
    r.append(b"a", vec![PathBuf::from("/x")]).unwrap();
    r.append(b"b", vec![PathBuf::from("/y"), PathBuf::from("/z")]).unwrap();
    let started = Instant::now();
    let (upto, paths) = r.take(Duration::from_millis(100), &never).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(50), "the oldest entry waits out the delay");
    assert_eq!((upto, paths), (2, vec!["/x".into(), "/y".into(), "/z".into()]));
    r.give_back(vec![PathBuf::from("/x")]);
    let stop = || true;
    assert_eq!(r.take(Duration::from_secs(60), &stop), Some((2, vec!["/x".into()])), "stopping takes at once");
    assert_eq!(r.take(Duration::from_secs(60), &stop), None);
}

#[test]
fn an_oversized_entry_and_a_file_of_another_size_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let (r, _) = ring(d.path());
    let e = r.append(&vec![b'x'; MAX_PAYLOAD + 1], Vec::new()).unwrap_err();
    assert!(e.to_string().contains("does not fit a slot"), "{e}");
    r.append(&vec![b'x'; MAX_PAYLOAD], Vec::new()).unwrap();
    drop(r);
    std::fs::write(d.path().join("journal"), b"not a journal").unwrap();
    let e = Ring::open(&d.path().join("journal")).unwrap_err();
    assert!(e.to_string().contains("not the"), "{e}");
}
