//! `strata-csi` as an operator types it: options after the subcommand, `--version`, and an
//! unreachable endpoint explained (no such socket, connection refused, permission denied) with
//! the path tried. Root tier: it starts a server and drops to another user with setpriv.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;

use csi_support::*;
use std::process::Command;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn global_options_work_after_the_subcommand() {
    require_root();
    let s = Server::start();
    let ep = s.endpoint();
    let out = Command::new(BIN).args(["client", "list-volumes", "--json", "--endpoint", &ep]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["volumes"], serde_json::json!([]));
    let out =
        Command::new(BIN).args(["client", "info", "-o", "yaml", "--timeout", "5", "--endpoint", &ep]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("ready: true"), "{out:?}");
}

#[test]
fn every_binary_prints_its_version_and_commit() {
    for bin in [BIN, env!("CARGO_BIN_EXE_strata-flex"), env!("CARGO_BIN_EXE_kubectl-strata")] {
        let out = Command::new(bin).arg("--version").output().unwrap();
        assert!(out.status.success());
        let name = std::path::Path::new(bin).file_name().unwrap().to_str().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text, format!("{name} {}\n", strata::BUILD));
        // The commit this tree was built from (this checkout is a git work tree).
        let head = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().unwrap();
        let head = String::from_utf8(head.stdout).unwrap();
        assert!(
            !head.trim().is_empty() && text.contains(&format!("(commit {}", &head.trim()[..7])),
            "{text} vs {head}"
        );
    }
}

#[test]
fn completions_and_man_pages_are_generated_from_the_command_line() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(BIN).args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", stderr_of(&out));
        let script = String::from_utf8(out.stdout).unwrap();
        for word in ["strata-csi", "create-volume", "list-volumes", "--rename-node"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man1");
    let out = Command::new(BIN).arg("man").arg(&man).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let listed = String::from_utf8(out.stdout).unwrap();
    for page in ["strata-csi.1", "strata-csi-serve.1", "strata-csi-client-create-volume.1", "strata-flex.1"] {
        let text = std::fs::read_to_string(man.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page} is not a man page");
        assert!(listed.contains(page), "{listed}");
    }
    let serve = std::fs::read_to_string(man.join("strata-csi-serve.1")).unwrap();
    assert!(serve.contains("STRATA_NODE_ID") && serve.contains("rename\\-node"), "{serve}");
}

#[test]
fn an_unreachable_endpoint_says_why_and_where() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.sock");
    let out = Command::new(BIN)
        .args(["client", "info", "--endpoint"])
        .arg(format!("unix://{}", missing.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("no such socket") && err.contains(&format!("tried socket {}", missing.display())), "{err}");

    // A live server's socket, in a directory only root may enter, asked by another user.
    let s = Server::start();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            BIN,
            "client",
            "info",
            "--endpoint",
            &s.endpoint(),
        ])
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert!(!out.status.success() && err.contains("permission denied"), "{err}");
    assert!(err.contains(&format!("tried socket {}", s.sock.display())), "{err}");
    assert!(!err.contains("transport error"), "{err}");
}

/// One quantity grammar for every size flag, Kubernetes' own: `1.5Gi` is taken as it is in a
/// PVC, and `100m` (milli, a typo for `M`) is refused by the parser with that hint.
#[test]
fn size_flags_take_kubernetes_quantities() {
    require_root();
    let s = Server::start();
    let out = s.client(&["-o", "json", "create-volume", "half", "--size", "1.5Gi"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["capacity_bytes"], 3u64 << 29);
    let out = s.client(&["create-volume", "exp", "--size", "2e6"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = s.client(&["create-volume", "milli", "--size", "100m"]);
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("milli") && stderr_of(&out).contains("--size"), "{}", stderr_of(&out));
    let out = s.client(&["expand", &format!("half@{NODE}"), "--size", "1.75Gi"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
}

/// Runs `cmd` with a stdout whose reader is already gone (what `| head` leaves once it has
/// read enough): it must end quietly, with 141 (as if killed by SIGPIPE) or 0, and no panic.
#[track_caller]
fn quiet_on_closed_stdout(cmd: &mut Command, what: &str) {
    let (reader, writer) = nix::unistd::pipe().unwrap();
    drop(reader);
    let out = cmd.stdout(std::process::Stdio::from(writer)).stderr(std::process::Stdio::piped()).output().unwrap();
    let err = stderr_of(&out);
    // 141 from strata's own output, 0 from clap's (--help), which drops what it cannot write.
    assert!(matches!(out.status.code(), Some(141 | 0)), "{what}: {out:?}");
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{what}: {err}");
}

#[test]
fn a_closed_stdout_ends_every_printing_subcommand_quietly() {
    require_root();
    let s = Server::start();
    for i in 0..3 {
        assert!(s.client(&["create-volume", &format!("v{i}"), "--size", "1Mi"]).status.success());
    }
    let ep = s.endpoint();
    let root = s.root.to_str().unwrap();
    let man = s.dir.path().join("man");
    let pv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/flex/examples/pv-pvc-pod.yaml");
    let csi: Vec<Vec<&str>> = vec![
        vec!["client", "--endpoint", &ep, "list-volumes", "-o", "json"],
        vec!["client", "--endpoint", &ep, "list-volumes"],
        vec!["client", "--endpoint", &ep, "info"],
        vec!["client", "--endpoint", &ep, "caps", "-o", "yaml"],
        vec!["client", "--endpoint", &ep, "get-volume", "v0@node-a"],
        vec!["client", "--endpoint", &ep, "get-volume", "nope", "-o", "json"],
        vec!["inspect", "v1", "--root", root, "-o", "json"],
        vec!["inspect", "v1", "--root", root],
        vec!["repair", "--root", root],
        vec!["migrate-pv", pv.to_str().unwrap()],
        vec!["completions", "bash"],
        vec!["man", man.to_str().unwrap()],
        vec!["--help"],
    ];
    for args in &csi {
        quiet_on_closed_stdout(Command::new(BIN).args(args), &format!("strata-csi {args:?}"));
    }
    let flex = env!("CARGO_BIN_EXE_strata-flex");
    for args in [&["--help"][..], &["--version"], &["check"]] {
        quiet_on_closed_stdout(Command::new(flex).args(args), &format!("strata-flex {args:?}"));
    }
}

/// DeleteVolume answers OK for an unknown id (the spec's idempotence); the client asks first and
/// says that nothing was there instead of "deleted".
#[test]
fn deleting_a_volume_that_does_not_exist_says_so() {
    require_root();
    let s = Server::start();
    assert!(s.client(&["create-volume", "t2", "--size", "1Mi"]).status.success());
    let out = s.client(&["delete-volume", "t2"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(err.contains("no volume \"t2\": strata volume ids look like <name>@<node>"), "{err}");
    assert!(err.contains("nothing was deleted") && out.stdout.is_empty(), "{err}");
    let out = s.client(&["delete-volume", "gone@node-a"]);
    assert!(!out.status.success() && stderr_of(&out).contains("gone does not exist; nothing was deleted"));
    let out = s.client(&["delete-volume", "t2@node-a"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "deleted: t2@node-a\n");
}

/// `-o wide` and `-o name` as `kubectl get` has them, and times a person reads.
#[test]
fn wide_and_name_outputs_and_readable_times() {
    require_root();
    let s = Server::start();
    assert!(s.client(&["create-volume", "w1", "--size", "1Mi"]).status.success());
    assert!(s.client(&["create-snapshot", "snap", "--source", "w1@node-a"]).status.success());
    let out = s.client(&["create-volume", "w2", "--size", "1Mi", "--from-snapshot", "snap@node-a"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = |args: &[&str]| String::from_utf8(s.client(args).stdout).unwrap();
    assert_eq!(stdout(&["list-volumes", "-o", "name"]), "w1@node-a\nw2@node-a\n");
    assert_eq!(stdout(&["list-snapshots", "-o", "name"]), "snap@node-a\n");
    let wide = stdout(&["list-volumes", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().split_whitespace().rev().take(2).eq(["CONTEXT", "SOURCE"]), "{wide}");
    assert!(wide.contains("snap@node-a") && wide.contains("backend=dir"), "{wide}");
    let snaps = stdout(&["list-snapshots", "-o", "wide"]);
    let created = snaps.lines().nth(1).unwrap().split_whitespace().last().unwrap().to_owned();
    assert!(humantime::parse_rfc3339(&created).is_ok(), "{snaps}");
    let text = stdout(&["get-snapshot", "snap@node-a"]);
    assert!(text.contains(&format!("creation_time: {created}\n")), "not an epoch: {text}");
}
