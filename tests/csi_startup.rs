//! A server's start on its data root, as an operator meets it: the root records its node id and
//! refuses another one until told to rename, one server serves a root, paths that depend on the
//! working directory are refused, every setting can come from the environment, and the JSON log
//! is one valid object per line with each key once. Root tier (the server mounts at start).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;

use csi_support::strict_json::check_line;
use csi_support::*;
use nix::sys::signal::Signal;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `strata-csi serve <args>` that is expected to refuse to start: its output, or a panic
/// (after stopping it) if it serves instead.
fn refused_start(args: &[&str], root: &Path) -> Output {
    let child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .arg("--root")
        .arg(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut child = child;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
            let out = child.wait_with_output().unwrap();
            panic!("serve {args:?} started instead of refusing:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{out:?}");
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ids(s: &Server) -> Vec<String> {
    let out = s.client(&["-o", "json", "list-volumes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["volumes"].as_array().unwrap().iter().map(|e| e["volume_id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn another_node_id_on_the_same_root_is_refused_until_renamed() {
    require_root();
    let mut s = Server::start_as("demo-node", None, &[]);
    assert!(s.client(&["create-volume", "keep", "--size", "1Mi"]).status.success());
    s.stop(Signal::SIGTERM);
    let sock = format!("unix://{}", s.dir.path().join("other.sock").display());
    let out = refused_start(&["--endpoint", &sock, "--node-id", "vm"], &s.root);
    let err = stderr(&out);
    assert!(err.contains("\"demo-node\"") && err.contains("\"vm\"") && err.contains("--rename-node"), "{err}");
    // No --node-id: the hostname, and the message says so.
    let out = refused_start(&["--endpoint", &sock], &s.root);
    assert!(stderr(&out).contains("no --node-id was given: the hostname"), "{}", stderr(&out));
    // The volume is still the old node's.
    s.spawn();
    assert_eq!(ids(&s), ["keep@demo-node"]);
    s.stop(Signal::SIGTERM);
    // Renamed deliberately: the ids follow, and the log says what happened.
    s.node = "vm".into();
    s.set_extra(&["--rename-node"]);
    s.spawn();
    assert_eq!(ids(&s), ["keep@vm"]);
    let log = s.log_text();
    assert!(log.contains("node renamed") && log.contains("volumes=1") && log.contains("<name>@demo-node"), "{log}");
    assert!(s.client(&["delete-volume", "keep@vm"]).status.success());
}

#[test]
fn a_second_server_on_a_held_root_is_refused_by_name() {
    require_root();
    let s = Server::start();
    let other = s.dir.path().join("second.sock");
    let out = refused_start(&["--endpoint", &format!("unix://{}", other.display()), "--node-id", NODE], &s.root);
    let err = stderr(&out);
    assert!(err.contains(&format!("pid {}", s.pid())) && err.contains(&s.endpoint()), "{err}");
    assert!(!other.exists(), "the second server made no socket");
    assert!(s.client(&["info"]).status.success(), "the first one still serves");
    // repair works beside it, and says whose the root is.
    let out = Command::new(BIN).args(["repair", "--root"]).arg(&s.root).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("pid {}", s.pid())), "{}", stderr(&out));
}

#[test]
fn relative_paths_are_refused_and_nothing_is_made_in_the_working_directory() {
    let cwd = tempfile::tempdir().unwrap();
    for args in [
        &["serve", "--root", "relative/root"][..],
        &["serve", "--root", "/tmp/x", "--allowed-path-prefix", "kubelet"],
        &["repair", "--root", "root"],
    ] {
        let out = Command::new(BIN).args(args).current_dir(cwd.path()).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains("is not an absolute path"), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);
}

/// Each line of a JSON log, strictly: one object, every key once.
fn strict_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .map(|line| {
            check_line(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            serde_json::from_str(line).unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_log_is_one_object_per_line_with_each_key_once() {
    require_root();
    let mut s = Server::start_with(&["--log-format", "json"]);
    // Failed calls: the status message goes beside the event's own message.
    for args in [
        vec!["delete-volume", "nope@elsewhere"],
        vec!["get-volume", "nope"],
        vec!["create-volume", "x", "--param", "backend=zfs"],
        vec!["stage", "nope@node-a", "--staging-path", "/etc"],
    ] {
        assert!(!s.client(&args).status.success(), "{args:?}");
    }
    assert!(s.client(&["create-volume", "ok", "--size", "1Mi"]).status.success());
    s.stop(Signal::SIGTERM);
    let lines = strict_lines(&s.log_text());
    let message = |l: &serde_json::Value| l["fields"]["message"].as_str().unwrap_or("").to_owned();
    let failed: Vec<&serde_json::Value> = lines.iter().filter(|l| message(l) == "failed").collect();
    // Five: delete-volume asks ControllerGetVolume before DeleteVolume.
    assert_eq!(failed.len(), 5, "{lines:?}");
    assert!(failed.iter().all(|l| l["fields"]["code"].is_string() && l["fields"]["error"].is_string()), "{failed:?}");
    assert!(failed.iter().any(|l| l["fields"]["error"].as_str().unwrap().contains("backend")), "{failed:?}");
    // The start in order: starting, then the reconcile, then serving.
    let order: Vec<String> = lines.iter().map(message).collect();
    let at = |m: &str| order.iter().position(|o| o == m).unwrap_or_else(|| panic!("no {m:?} in {order:?}"));
    assert!(at("starting") < at("reconcile done") && at("reconcile done") < at("serving"), "{order:?}");
}

#[test]
fn log_level_overrides_rust_log() {
    require_root();
    let mut s = Server::start_with(&["--log-level", "warn"]);
    assert!(!s.client(&["get-volume", "nope"]).status.success());
    s.stop(Signal::SIGTERM);
    let log = s.log_text();
    assert!(!log.contains("starting") && !log.contains(" INFO ") && !log.contains("DEBUG"), "{log}");
    assert!(log.contains("WARN") && log.contains("failed"), "{log}");
}

#[test]
fn every_setting_can_come_from_the_environment() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("env.sock");
    let endpoint = format!("unix://{}", sock.display());
    let root = dir.path().join("root");
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .env("STRATA_ENDPOINT", &endpoint)
        .env("STRATA_ROOT", &root)
        .env("STRATA_NODE_ID", "env-node")
        .env("STRATA_DRIVER_NAME", "env.strata.example")
        .env("STRATA_ALLOWED_PATH_PREFIX", format!("{},/var/lib/kubelet", dir.path().display()))
        .env("STRATA_BACKENDS", "dir,tmpfs")
        .env("STRATA_LOG_FORMAT", "json")
        .env("STRATA_LOG_LEVEL", "info")
        .env("STRATA_DRAIN_SECONDS", "5")
        .env("STRATA_CONTROLLER_ONLY", "false")
        .env("STRATA_OVERCOMMIT", "tmpfs=2,dir=1.5")
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{}",
            std::fs::read_to_string(dir.path().join("serve.log")).unwrap()
        );
        assert!(Instant::now() < deadline, "did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The client beside it takes the same STRATA_ENDPOINT.
    let client =
        |args: &[&str]| Command::new(BIN).arg("client").args(args).env("STRATA_ENDPOINT", &endpoint).output().unwrap();
    let info: serde_json::Value = serde_json::from_slice(&client(&["-o", "json", "info"]).stdout).unwrap();
    assert_eq!(
        (info["name"].as_str(), info["node"]["node_id"].as_str()),
        (Some("env.strata.example"), Some("env-node"))
    );
    let out = client(&["create-volume", "l", "--param", "backend=loop"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not enabled"), "{out:?}");
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    child.wait().unwrap();
    cleanup(dir.path());
    let text = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(!strict_lines(&text).is_empty());
    assert!(root.join("identity.json").is_file());
}

#[test]
fn inspect_of_another_nodes_volume_says_where_it_lives() {
    require_root();
    let s = Server::start();
    assert!(s.client(&["create-volume", "b", "--size", "1Mi"]).status.success());
    let inspect = |id: &str| Command::new(BIN).args(["inspect", id, "--root"]).arg(&s.root).output().unwrap();
    let out = inspect("b@other");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("lives on node other") && err.contains(NODE), "{err}");
    let out = inspect(&format!("b@{NODE}"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("volume_id: b"));
}

#[test]
fn the_strict_check_refuses_a_repeated_key() {
    assert_eq!(check_line(r#"{"a":1,"b":{"c":[{"d":null}]}}"#), Ok(()));
    let line = r#"{"fields":{"message":"failed","code":"NotFound","message":"volume nope does not exist"}}"#;
    assert!(check_line(line).unwrap_err().contains("duplicate key \"message\""));
    assert!(check_line(r#"{"a":1} trailing"#).is_err());
    assert!(check_line("[1]").is_err());
}

/// A TCP endpoint logs the address it bound (port 0 resolved) and that it has no
/// authentication, and a client reaches it there.
#[test]
fn a_tcp_endpoint_logs_its_real_address_and_warns() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("serve.log");
    let mut child = Command::new(BIN)
        .args(["serve", "--endpoint", "tcp://127.0.0.1:0", "--node-id", "n", "--root"])
        .arg(dir.path().join("root"))
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let endpoint = loop {
        let log = std::fs::read_to_string(&log_path).unwrap();
        if let Some(line) = log.lines().find(|l| l.contains("serving")) {
            break line.split("endpoint=").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "{log}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(endpoint.starts_with("tcp://127.0.0.1:") && !endpoint.ends_with(":0"), "{endpoint}");
    assert!(log.contains("WARN") && log.contains("no authentication"), "{log}");
    let out = Command::new(BIN).args(["client", "info", "--endpoint", &endpoint]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    child.wait().unwrap();
    cleanup(dir.path());
}

#[test]
fn a_journal_that_is_not_strata_s_stops_the_start_and_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("journal"), b"copied from somewhere else").unwrap();
    let sock = format!("unix://{}", dir.path().join("csi.sock").display());
    let out = refused_start(&["--endpoint", &sock, "--node-id", "vm"], &root);
    let err = stderr(&out);
    assert!(err.contains("intent journal") && err.contains("move it aside"), "{err}");
    assert_eq!(std::fs::read(root.join("journal")).unwrap(), b"copied from somewhere else", "left as it was");
}
