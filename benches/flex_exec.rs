//! Exec latency of `strata-flex` as kubelet sees it: `init`, and a `dir` mount + unmount pair,
//! next to a bash script that only echoes the init JSON, measured round-robin in one run.
//!
//! `cargo bench --bench flex_exec` (root: it mounts). `STRATA_FLEX_BENCH_BIN=/path/to/flex`
//! adds rows for another build (for example the static one); `STRATA_FLEX_BENCH_ITERS` sets
//! the number of rounds (default 300).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const INIT_JSON: &str = r#"{"status":"Success","message":"strata-flex is ready","capabilities":{"attach":false,"selinuxRelabel":true,"fsGroup":true,"supportsMetrics":true,"requiresFSResize":true}}"#;

/// One program under test and where its world lives.
struct Subject {
    label: String,
    exe: PathBuf,
    root: PathBuf,
    pod: PathBuf,
    json: String,
}

/// Runs a command and checks it answered Success; returns the wall time.
fn timed(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd.output().expect("exec");
    let spent = start.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains(r#""status":"Success""#), "{cmd:?}: {text}");
    spent
}

impl Subject {
    fn new(label: &str, exe: PathBuf, tmp: &Path) -> Subject {
        let base = tmp.join(label.replace(' ', "-"));
        let kubelet = base.join("kubelet");
        let vol = "pv-bench";
        let pod = kubelet.join("pods/uid-1/volumes/strata~flex").join(vol);
        let json = format!(
            r#"{{"backend":"dir","kubernetes.io/fsType":"","kubernetes.io/pod.name":"bench","kubernetes.io/pod.namespace":"default","kubernetes.io/pod.uid":"uid-1","kubernetes.io/pvOrVolumeName":"{vol}","kubernetes.io/readwrite":"rw","kubernetes.io/serviceAccount.name":"default","size":"1Gi"}}"#
        );
        std::fs::create_dir_all(&kubelet).expect("kubelet dir");
        Subject { label: label.to_owned(), exe, root: base.join("root"), pod, json }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        let kubelet = self.root.with_file_name("kubelet");
        cmd.args(args)
            .env("STRATA_FLEX_ROOT", &self.root)
            .env("STRATA_FLEX_KUBELET_DIR", kubelet)
            .env("STRATA_FLEX_LOG", self.root.with_file_name("flex.log"));
        cmd
    }

    fn init(&self) -> Duration {
        timed(&mut self.command(&["init"]))
    }

    /// kubelet's mkdir of the pod dir is not timed; the two execs are.
    fn mount_unmount(&self) -> (Duration, Duration) {
        std::fs::create_dir_all(&self.pod).expect("pod dir");
        let pod = self.pod.to_str().expect("utf-8");
        let mount = timed(&mut self.command(&["mount", pod, &self.json]));
        let unmount = timed(&mut self.command(&["unmount", pod]));
        (mount, unmount)
    }
}

#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn quantile(&self, q: f64) -> f64 {
        let mut v: Vec<f64> = self.0.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        v.sort_by(f64::total_cmp);
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v[i]
    }
}

fn main() {
    assert!(nix::unistd::geteuid().is_root(), "flex_exec mounts: run it as root");
    let iters: usize = std::env::var("STRATA_FLEX_BENCH_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let tmp = tempfile::Builder::new().prefix("strata-flex-bench.").tempdir().expect("tempdir");
    let script = tmp.path().join("init.sh");
    std::fs::write(&script, format!("#!/bin/bash\necho '{INIT_JSON}'\n")).expect("script");
    let exec_bits = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&script, exec_bits).expect("chmod");

    let mut subjects = vec![Subject::new("strata-flex", env!("CARGO_BIN_EXE_strata-flex").into(), tmp.path())];
    if let Ok(other) = std::env::var("STRATA_FLEX_BENCH_BIN") {
        let name = Path::new(&other).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        subjects.push(Subject::new(&format!("{name} (STRATA_FLEX_BENCH_BIN)"), other.into(), tmp.path()));
    }
    let mut bash = Samples::default();
    let mut rows: Vec<[Samples; 4]> = subjects.iter().map(|_| Default::default()).collect();
    for round in 0..iters + 20 {
        let b = timed(&mut Command::new(&script));
        let mut got = Vec::new();
        for s in &subjects {
            let init = s.init();
            let (m, u) = s.mount_unmount();
            got.push([init, m, u, m + u]);
        }
        if round >= 20 {
            bash.0.push(b);
            for (row, g) in rows.iter_mut().zip(got) {
                for (samples, d) in row.iter_mut().zip(g) {
                    samples.0.push(d);
                }
            }
        }
    }
    report(iters, &bash, &subjects, &rows);
    for s in &subjects {
        let left = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        assert!(!left.contains(s.pod.to_str().expect("utf-8")), "a pod mount was left behind");
    }
}

fn report(iters: usize, bash: &Samples, subjects: &[Subject], rows: &[[Samples; 4]]) {
    let (b50, b99) = (bash.quantile(0.5), bash.quantile(0.99));
    let mut out = format!(
        "exec latency, {iters} rounds (round-robin, after 20 warm-up rounds)\n\n\
         | what | p50 ms | p99 ms | p50 / bash p50 | p99 / bash p99 |\n|---|---:|---:|---:|---:|\n\
         | bash script echoing the init JSON | {b50:.3} | {b99:.3} | 1.00 | 1.00 |\n"
    );
    let names = ["init", "mount (dir)", "unmount (dir)", "mount + unmount (dir)"];
    for (s, row) in subjects.iter().zip(rows) {
        for (name, samples) in names.iter().zip(row) {
            let (p50, p99) = (samples.quantile(0.5), samples.quantile(0.99));
            out.push_str(&format!(
                "| {} {name} | {p50:.3} | {p99:.3} | {:.2} | {:.2} |\n",
                s.label,
                p50 / b50,
                p99 / b99
            ));
        }
    }
    std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes()).expect("stdout");
}
