//! Helpers for the packaging tests: the manifests under deploy/ as JSON values, and a real
//! `strata-csi serve` on a socket in a temp dir, driven by `strata-csi client`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const CSI_BIN: &str = env!("CARGO_BIN_EXE_strata-csi");
pub const FLEX_BIN: &str = env!("CARGO_BIN_EXE_strata-flex");

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One YAML document of a manifest file.
#[derive(Debug, Clone)]
pub struct Doc {
    pub file: PathBuf,
    pub value: Value,
}

impl Doc {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }
}

/// Every `*.yaml` file under `dir` (recursively), sorted.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The documents of one YAML text.
pub fn parse_docs(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// Every document of every manifest under `deploy/<sub>`.
pub fn manifests(sub: &str) -> Vec<Doc> {
    let mut out = Vec::new();
    for file in yaml_files(&repo().join("deploy").join(sub)) {
        let text = std::fs::read_to_string(&file).unwrap();
        for value in parse_docs(&text) {
            out.push(Doc { file: file.clone(), value });
        }
    }
    out
}

/// The one document of `kind` named `name`.
pub fn find<'a>(docs: &'a [Doc], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Doc> = docs.iter().filter(|d| d.kind() == kind && d.name() == name).collect();
    assert_eq!(found.len(), 1, "want exactly one {kind} {name}");
    &found[0].value
}

/// The container `name` of a workload's pod template.
pub fn container<'a>(workload: &'a Value, name: &str) -> &'a Value {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// The value of `--flag=value` in a container's args.
pub fn arg<'a>(container: &'a Value, flag: &str) -> Option<&'a str> {
    let prefix = format!("{flag}=");
    strings(&container["args"]).into_iter().find_map(|a| a.strip_prefix(&prefix))
}

pub fn strings(v: &Value) -> Vec<&str> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// The pod volume `name` of a workload.
pub fn volume<'a>(workload: &'a Value, name: &str) -> &'a Value {
    workload["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no volume {name}"))
}

/// A `strata-csi serve` on a unix socket in a temp dir; stopped with SIGTERM on drop, which
/// also unmounts the `<root>/volumes` mount the server makes at start.
pub struct Serve {
    pub sock: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    root: Option<PathBuf>,
}

impl Serve {
    /// Starts `strata-csi <args>` (the args must make it listen on `sock`) and waits until it
    /// accepts connections.
    pub fn start(args: &[String], sock: &Path, log: &Path) -> Serve {
        let log_file = std::fs::File::create(log).unwrap();
        let child = Command::new(CSI_BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start strata-csi");
        let root = args.iter().find_map(|a| a.strip_prefix("--root=")).map(PathBuf::from);
        let mut s = Serve { sock: sock.to_owned(), log: log.to_owned(), child: Some(child), root };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::os::unix::net::UnixStream::connect(sock).is_ok() {
                return s;
            }
            if let Some(status) = s.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("strata-csi {args:?} exited with {status}:\n{}", s.log_text());
            }
            assert!(Instant::now() < deadline, "strata-csi did not listen within 20 s:\n{}", s.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `strata-csi client --endpoint <this> --json <args>`.
    pub fn client(&self, args: &[&str]) -> Output {
        let endpoint = format!("unix://{}", self.sock.display());
        Command::new(CSI_BIN).args(["client", "--endpoint", &endpoint, "--json"]).args(args).output().unwrap()
    }

    /// Like [`Serve::client`], asserting success and parsing the JSON answer.
    #[track_caller]
    pub fn client_ok(&self, args: &[&str]) -> Value {
        let out = self.client(args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "client {args:?} failed: {stdout}{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        serde_json::from_str(&stdout).unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(root) = &self.root {
            let _ = nix::mount::umount2(&root.join("volumes"), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// The args of a manifest's strata-csi container, as Kubernetes would run them (`$(VAR)` from
/// `env`), with the endpoint and data root moved into `dir` and the metrics on a free port.
/// Returns the args and the socket.
pub fn local_args(c: &Value, env: &[(&str, &str)], dir: &Path) -> (Vec<String>, PathBuf) {
    let command = strings(&c["command"]);
    assert_eq!(command.first().copied(), Some("/usr/local/bin/strata-csi"), "{c}");
    let sock = dir.join("csi.sock");
    let mut args: Vec<String> = command[1..].iter().map(|s| s.to_string()).collect();
    for a in strings(&c["args"]) {
        let mut a = a.to_owned();
        for (k, v) in env {
            a = a.replace(&format!("$({k})"), v);
        }
        assert!(!a.contains("$("), "{a}: a variable the test does not know");
        if a.starts_with("--endpoint=") {
            a = format!("--endpoint=unix://{}", sock.display());
        } else if a.starts_with("--root=") {
            a = format!("--root={}", dir.join("root").display());
        } else if let Some(addr) = a.strip_prefix("--metrics-address=") {
            let host = addr.rsplit_once(':').expect("host:port").0;
            a = format!("--metrics-address={host}:0");
        }
        args.push(a);
    }
    (args, sock)
}
