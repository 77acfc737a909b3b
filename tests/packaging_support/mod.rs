//! Helpers for the packaging tests: the manifests under deploy/ as JSON values, and a real
//! `strata-csi serve` on a socket in a temp dir, driven by `strata-csi client`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
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
        Serve::start_with_env(args, &[], sock, log)
    }

    /// [`Serve::start`] with `env` set (and any `STRATA_*` of this process's left out).
    pub fn start_with_env(args: &[String], env: &[(String, String)], sock: &Path, log: &Path) -> Serve {
        let log_file = std::fs::File::create(log).unwrap();
        let mut cmd = Command::new(CSI_BIN);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("STRATA_")) {
            cmd.env_remove(k);
        }
        let child = cmd
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start strata-csi");
        let root = args
            .iter()
            .find_map(|a| a.strip_prefix("--root="))
            .or_else(|| env.iter().find(|(k, _)| k == "STRATA_ROOT").map(|(_, v)| v.as_str()))
            .map(PathBuf::from);
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

/// The settings a kustomization under `deploy/<sub>` generates as ConfigMap `name`
/// (`configMapGenerator`: its `envs` files, `KEY=VALUE` lines, and its `literals`).
pub fn generated_config(sub: &str, name: &str) -> BTreeMap<String, String> {
    let dir = repo().join("deploy").join(sub);
    let k = parse_docs(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap()).remove(0);
    let generator = k["configMapGenerator"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["name"] == name))
        .unwrap_or_else(|| panic!("deploy/{sub} generates no ConfigMap {name}"));
    let mut out = BTreeMap::new();
    let files = strings(&generator["envs"]).into_iter().map(|f| std::fs::read_to_string(dir.join(f)).unwrap());
    let text: String = files.collect::<Vec<_>>().join("\n") + "\n" + &strings(&generator["literals"]).join("\n");
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("{line:?} is not KEY=VALUE"));
        out.insert(k.to_owned(), v.to_owned());
    }
    out
}

/// The environment of container `c` of a workload under `deploy/<sub>`, as Kubernetes sets it:
/// its ConfigMaps (`envFrom`, generated by the kustomization), then its own `env` (values, and
/// `valueFrom` fields from `fields`), which win.
pub fn container_env(sub: &str, c: &Value, fields: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for from in c["envFrom"].as_array().into_iter().flatten() {
        let name = from["configMapRef"]["name"].as_str().expect("envFrom names a ConfigMap");
        env.extend(generated_config(sub, name));
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap();
        let value = match (e["value"].as_str(), e["valueFrom"]["fieldRef"]["fieldPath"].as_str()) {
            (Some(v), _) => v.to_owned(),
            (None, Some(path)) => fields
                .iter()
                .find(|(f, _)| *f == path)
                .unwrap_or_else(|| panic!("{name}: field {path} the test does not know"))
                .1
                .to_owned(),
            _ => panic!("{name}: neither value nor fieldRef"),
        };
        env.insert(name.to_owned(), value);
    }
    env
}

/// One strata-csi setting of container `c` (`STRATA_ROOT`, ...), as [`container_env`] has it.
pub fn setting(sub: &str, c: &Value, key: &str) -> Option<String> {
    container_env(sub, c, &[("spec.nodeName", "node-1"), ("status.podIP", "10.0.0.1")]).remove(key)
}

/// The environment of a manifest's strata-csi container (from [`container_env`], `fields` for
/// its `valueFrom` fields), with the endpoint and data root moved into `dir` and the metrics on
/// a free local port. Returns the command's arguments, the environment and the socket.
pub fn local_serve(
    sub: &str,
    c: &Value,
    fields: &[(&str, &str)],
    dir: &Path,
) -> (Vec<String>, Vec<(String, String)>, PathBuf) {
    let command = strings(&c["command"]);
    assert_eq!(command.first().copied(), Some("/usr/local/bin/strata-csi"), "{c}");
    assert!(c.get("args").is_none(), "strata-csi's settings come from its environment, by name: {c}");
    let sock = dir.join("csi.sock");
    let mut env = container_env(sub, c, fields);
    env.insert("STRATA_ENDPOINT".into(), format!("unix://{}", sock.display()));
    env.insert("STRATA_ROOT".into(), dir.join("root").display().to_string());
    if env.contains_key("STRATA_METRICS_ADDRESS") {
        env.insert("STRATA_METRICS_ADDRESS".into(), "127.0.0.1:0".into());
    }
    let args = command[1..].iter().map(|s| s.to_string()).collect();
    (args, env.into_iter().collect(), sock)
}
