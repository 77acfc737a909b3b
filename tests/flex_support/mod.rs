//! Test support: runs the built `strata-flex` exactly as kubelet does, in temp dirs, and checks
//! that nothing (mounts, loop devices) is left behind. Needs root, and says so loudly.

#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use strata::engine::{Config, Engine};

pub const BIN: &str = env!("CARGO_BIN_EXE_strata-flex");

/// One call's result: the parsed reply, the exit code and the raw streams.
#[derive(Debug)]
pub struct Reply {
    pub json: Value,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Reply {
    pub fn status(&self) -> &str {
        self.json["status"].as_str().unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.json["message"].as_str().unwrap_or("")
    }

    /// Asserts Success with exit 0.
    #[track_caller]
    pub fn ok(&self) -> &Reply {
        assert_eq!((self.status(), self.code), ("Success", 0), "{self:#?}");
        self
    }

    /// Asserts Failure with exit 1 and a message containing `want`.
    #[track_caller]
    pub fn failed(&self, want: &str) -> &Reply {
        assert_eq!((self.status(), self.code), ("Failure", 1), "{self:#?}");
        assert!(self.message().contains(want), "message lacks {want:?}: {self:#?}");
        self
    }
}

/// Parses output the way kubelet does: stdout and stderr joined, one JSON value.
pub fn parse_output(out: &Output) -> Reply {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let joined = format!("{stdout}{stderr}");
    let json: Value =
        serde_json::from_str(&joined).unwrap_or_else(|e| panic!("kubelet could not parse {joined:?}: {e}"));
    assert!(json.is_object(), "{joined}");
    assert_eq!(stderr, "", "stderr must stay empty");
    assert!(stdout.ends_with("}\n") && stdout.matches('\n').count() == 1, "one line: {stdout:?}");
    Reply { json, code: out.status.code().unwrap_or(-1), stdout, stderr }
}

/// Encodes options as Go's `json.Marshal(map[string]string)` does: sorted keys, compact, and
/// `<`, `>`, `&`, U+2028, U+2029 escaped. Later maps override earlier ones, as in kubelet.
pub fn kubelet_json(layers: &[&[(&str, &str)]]) -> String {
    let mut map = BTreeMap::new();
    for layer in layers {
        for (k, v) in layer.iter() {
            map.insert(k.to_string(), v.to_string());
        }
    }
    serde_json::to_string(&map)
        .expect("encode")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// A temp world: a data root, a kubelet dir with pods, a log file outside both.
pub struct World {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub kubelet: PathBuf,
    pub log: PathBuf,
}

impl World {
    #[track_caller]
    pub fn new() -> World {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the strata-flex integration tests mount filesystems and attach loop devices: run them as root \
             (CI does); they never skip"
        );
        let tmp = tempfile::Builder::new().prefix("strata-flex-test.").tempdir().expect("tempdir");
        let kubelet = tmp.path().join("kubelet");
        std::fs::create_dir(&kubelet).expect("kubelet dir");
        World { root: tmp.path().join("root"), log: tmp.path().join("strata-flex.log"), kubelet, tmp }
    }

    /// `strata-flex <args>` with this world's settings in the environment.
    pub fn run(&self, args: &[&str]) -> Reply {
        let out = self.command(args).output().expect("run strata-flex");
        parse_output(&out)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("STRATA_FLEX_ROOT", &self.root)
            .env("STRATA_FLEX_KUBELET_DIR", &self.kubelet)
            .env("STRATA_FLEX_LOG", &self.log)
            .env("STRATA_FLEX_LOG_LEVEL", "debug")
            .env_remove("STRATA_FLEX_CONFIG");
        cmd
    }

    /// The pod volume dir kubelet would use, created (0750) as kubelet does before `mount`.
    pub fn pod_dir(&self, pod: &str, volume: &str) -> PathBuf {
        let dir = self.pod_path(pod, volume);
        std::fs::DirBuilder::new().recursive(true).mode(0o750).create(&dir).expect("pod dir");
        dir
    }

    pub fn pod_path(&self, pod: &str, volume: &str) -> PathBuf {
        self.kubelet.join("pods").join(pod).join("volumes/strata~flex").join(volume)
    }

    /// `mount <podVolumeDir> <json>` with kubelet's base and pod keys, then `user` options.
    pub fn mount(&self, pod: &str, volume: &str, readwrite: &str, user: &[(&str, &str)]) -> Reply {
        let dir = self.pod_dir(pod, volume);
        let json = self.mount_json(pod, volume, readwrite, user);
        self.run(&["mount", dir.to_str().expect("utf-8"), &json])
    }

    pub fn mount_json(&self, pod: &str, volume: &str, readwrite: &str, user: &[(&str, &str)]) -> String {
        let uid = format!("uid-{pod}");
        let base: &[(&str, &str)] = &[
            ("kubernetes.io/fsType", ""),
            ("kubernetes.io/pvOrVolumeName", volume),
            ("kubernetes.io/readwrite", readwrite),
        ];
        let extra: &[(&str, &str)] = &[
            ("kubernetes.io/pod.name", pod),
            ("kubernetes.io/pod.namespace", "default"),
            ("kubernetes.io/pod.uid", &uid),
            ("kubernetes.io/serviceAccount.name", "default"),
        ];
        kubelet_json(&[base, extra, user])
    }

    /// `unmount <podVolumeDir>`; kubelet then removes the dir, which must be possible.
    pub fn unmount(&self, pod: &str, volume: &str) -> Reply {
        let dir = self.pod_path(pod, volume);
        let reply = self.run(&["unmount", dir.to_str().expect("utf-8")]);
        if reply.status() == "Success" && dir.exists() {
            std::fs::remove_dir(&dir).expect("kubelet's os.Remove of the pod dir must succeed");
        }
        reply
    }

    pub fn staging(&self, volume: &str) -> PathBuf {
        self.root.join("staging").join(volume)
    }

    /// Mount table lines whose mount point lies under this world.
    pub fn mounts(&self) -> Vec<String> {
        mounts_under(self.tmp.path())
    }

    /// Mounts under this world other than a tmpfs volume's own mount (which lives as long as
    /// the volume): staging and pod mounts.
    pub fn node_mounts(&self) -> Vec<String> {
        let volumes = format!(" {}/volumes/", self.root.display());
        self.mounts().into_iter().filter(|l| !l.contains(&volumes)).collect()
    }

    /// How many mounts sit exactly at `path`.
    pub fn mounts_at(&self, path: &Path) -> usize {
        let table = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let want = path.to_str().expect("utf-8");
        table.lines().filter(|l| l.split(' ').nth(4) == Some(want)).count()
    }

    /// Loop devices backed by a file under this world.
    pub fn loops(&self) -> Vec<String> {
        loops_under(self.tmp.path())
    }

    /// Deletes every volume through the engine, then asserts nothing is left mounted or attached.
    #[track_caller]
    pub fn finish(self) {
        if self.root.exists() {
            let engine = Engine::new(
                Config { allowed_prefixes: vec![self.kubelet.clone()], ..Config::new(&self.root) },
                std::sync::Arc::new(strata::sys::LinuxHost),
            )
            .expect("engine");
            for vol in engine.list_volumes().expect("list") {
                engine.delete_volume(&vol.id).unwrap_or_else(|e| panic!("delete {}: {e}", vol.id));
            }
        }
        // A CSI server on this root gave its volumes directory a mount of its own: not a leak.
        let own = self.root.join("volumes");
        let own = own.to_str().expect("utf-8 root");
        let left: Vec<String> = self.mounts().into_iter().filter(|l| l.split(' ').nth(4) != Some(own)).collect();
        assert_eq!(left, Vec::<String>::new(), "mounts left behind");
        assert_eq!(self.loops(), Vec::<String>::new(), "loop devices left behind");
    }
}

impl Drop for World {
    /// Best effort for a failed test: nothing of it may outlive it.
    fn drop(&mut self) {
        for _ in 0..16 {
            let left = self.mounts();
            let Some(line) = left.last() else { break };
            if let Some(point) = line.split(' ').nth(4) {
                let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        for dev in self.loops() {
            let _ = Command::new("losetup").args(["-d", &dev]).output();
        }
    }
}

pub fn mounts_under(dir: &Path) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let prefix = format!("{}/", dir.display());
    table
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|p| p.starts_with(&prefix) || p == prefix.trim_end_matches('/')))
        .map(str::to_owned)
        .collect()
}

pub fn loops_under(dir: &Path) -> Vec<String> {
    use strata::sys::Host;
    let loops = strata::sys::LinuxHost.loop_list().expect("loop list");
    strata::sys::loops_under(&loops, dir).into_iter().map(|l| l.device.display().to_string()).collect()
}

/// Every path under `dir` with its kind, for "nothing created or removed" checks.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

fn walk(dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.filter_map(Result::ok) {
        let path = e.path();
        let kind = e.file_type().map(|t| if t.is_dir() { "d" } else { "f" }).unwrap_or("?");
        out.push(format!("{kind} {}", path.display()));
        if kind == "d" {
            walk(&path, out);
        }
    }
}
