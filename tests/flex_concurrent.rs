//! 16 strata-flex processes at once on 4 volumes, as kubelet runs them for pods starting and
//! stopping together: every call succeeds, the mounts end right, nothing leaks.

mod flex_support;

use flex_support::{World, parse_output};
use std::process::Child;

const VOLUMES: [(&str, &[(&str, &str)]); 4] = [
    ("vol-dir-a", &[("backend", "dir"), ("size", "64Mi")]),
    ("vol-loop", &[("backend", "loop"), ("size", "64Mi")]),
    ("vol-tmpfs", &[("backend", "tmpfs"), ("size", "8Mi")]),
    ("vol-dir-b", &[("size", "1Gi")]),
];

fn pod(vol: &str, n: usize) -> String {
    format!("{vol}-pod{n}")
}

/// Waits for every child; each must answer Success.
fn all_succeed(children: Vec<(String, Child)>) {
    assert_eq!(children.len(), 16, "16 processes at once");
    for (what, child) in children {
        let out = child.wait_with_output().expect("wait");
        let reply = parse_output(&out);
        assert_eq!((reply.status(), reply.code), ("Success", 0), "{what}: {reply:#?}");
    }
}

/// Pods `live` of every volume are mounted (once each), others are gone, one staging each.
fn assert_mounted(w: &World, live: std::ops::Range<usize>) {
    for (vol, _) in VOLUMES {
        for n in 0..6 {
            let dir = w.pod_path(&pod(vol, n), vol);
            let want = usize::from(live.contains(&n));
            assert_eq!(w.mounts_at(&dir), want, "{}: {:#?}", dir.display(), w.mounts());
            assert_eq!(dir.exists(), live.contains(&n), "{}", dir.display());
        }
        let staged = usize::from(!live.is_empty());
        assert_eq!(w.mounts_at(&w.staging(vol)), staged, "staging of {vol}");
    }
}

fn piped(mut c: std::process::Command) -> std::process::Command {
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    c
}

#[test]
fn sixteen_processes_on_four_volumes() {
    let w = World::new();
    let spawn = |what: String, c: std::process::Command| (what, piped(c).spawn().expect("spawn"));

    // 16 mounts: pods 0..4 of every volume, all at once; the volumes are created on the way.
    let mut children = Vec::new();
    for (vol, user) in VOLUMES {
        for n in 0..4 {
            let dir = w.pod_dir(&pod(vol, n), vol);
            let json = w.mount_json(&pod(vol, n), vol, "rw", user);
            children.push(spawn(format!("mount {vol} {n}"), w.command(&["mount", dir.to_str().unwrap(), &json])));
        }
    }
    all_succeed(children);
    assert_mounted(&w, 0..4);
    for (vol, _) in VOLUMES {
        std::fs::write(w.pod_path(&pod(vol, 0), vol).join("mark"), vol).expect("write");
    }

    // 16 mixed: pods 0 and 1 leave while pods 4 and 5 arrive, on every volume.
    let mut children = Vec::new();
    for (vol, user) in VOLUMES {
        for n in 0..2 {
            let dir = w.pod_path(&pod(vol, n), vol);
            children.push(spawn(format!("unmount {vol} {n}"), w.command(&["unmount", dir.to_str().unwrap()])));
        }
        for n in 4..6 {
            let dir = w.pod_dir(&pod(vol, n), vol);
            let json = w.mount_json(&pod(vol, n), vol, "rw", user);
            children.push(spawn(format!("mount {vol} {n}"), w.command(&["mount", dir.to_str().unwrap(), &json])));
        }
    }
    all_succeed(children);
    assert_mounted(&w, 2..6);
    for (vol, _) in VOLUMES {
        let seen = std::fs::read_to_string(w.pod_path(&pod(vol, 5), vol).join("mark")).expect("read");
        assert_eq!(seen, vol, "pod 5 sees what pod 0 wrote");
    }

    // 16 unmounts: the last pods of every volume leave at once; every staging goes.
    let mut children = Vec::new();
    for (vol, _) in VOLUMES {
        for n in 2..6 {
            let dir = w.pod_path(&pod(vol, n), vol);
            children.push(spawn(format!("unmount {vol} {n}"), w.command(&["unmount", dir.to_str().unwrap()])));
        }
    }
    all_succeed(children);
    assert_mounted(&w, 0..0);
    assert_eq!(
        w.mounts().iter().filter(|m| !m.contains("/root/volumes/vol-tmpfs/data")).count(),
        0,
        "{:#?}",
        w.mounts()
    );
    assert_eq!(w.loops(), Vec::<String>::new());
    w.finish();
}
