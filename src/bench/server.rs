//! The `strata-csi serve` the harness starts itself, and the memory of any server by pid.

use super::workdir::WorkDir;
use super::{Error, Result};
use crate::backend::Kind;
use crate::csi::client::connect;
use crate::csi::proto::ProbeRequest;
use crate::csi::proto::identity_client::IdentityClient;
use crate::csi::server::Endpoint;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// How long a server may take to answer its first Probe, and to exit after SIGTERM.
const READY_WAIT: Duration = Duration::from_secs(20);
const EXIT_WAIT: Duration = Duration::from_secs(30);

/// A running `strata-csi serve` with a temp root, socket and kubelet directory.
#[derive(Debug)]
pub struct SelfServer {
    child: Child,
    pub endpoint: Endpoint,
    /// The allowed prefix: staging and target paths go under it.
    pub kubelet: PathBuf,
    pub log: PathBuf,
}

impl SelfServer {
    /// Starts `exe serve` with its root at `root` (made under `work` when `None`).
    pub fn start(exe: &Path, work: &WorkDir, root: Option<&Path>, backends: &[Kind], extra: &[String]) -> Result<Self> {
        let kubelet = work.sub("kubelet")?;
        let root = match root {
            Some(r) => r.to_owned(),
            None => work.path().join("root"),
        };
        let sock = work.path().join("csi.sock");
        let log = work.path().join("serve.log");
        let stderr = std::fs::File::create(&log).map_err(Error::io("create", &log))?;
        let kinds: Vec<&str> = backends.iter().map(|k| k.as_str()).collect();
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .arg("--endpoint")
            .arg(format!("unix://{}", sock.display()))
            .arg("--root")
            .arg(&root)
            .arg("--allowed-path-prefix")
            .arg(&kubelet)
            .arg("--node-id")
            .arg("bench-node")
            .arg("--backends")
            .arg(kinds.join(","))
            .arg("--drain-seconds")
            .arg("5")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = cmd.spawn().map_err(Error::io("start", exe))?;
        Ok(SelfServer { child, endpoint: Endpoint::Unix(sock), kubelet, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the server answers Probe; returns the channel.
    pub async fn ready(&mut self) -> Result<Channel> {
        let deadline = Instant::now() + READY_WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                return Err(Error::Setup(format!("strata-csi serve exited with {status}: {log}")));
            }
            if let Ok(ch) = connect(&self.endpoint).await {
                if IdentityClient::new(ch.clone()).probe(ProbeRequest {}).await.is_ok() {
                    return Ok(ch);
                }
            }
            if Instant::now() > deadline {
                return Err(Error::Setup(format!("strata-csi serve did not answer within {READY_WAIT:?}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited in time.
    pub fn stop(mut self) -> Result<()> {
        self.terminate()
    }

    fn terminate(&mut self) -> Result<()> {
        if self.child.try_wait().ok().flatten().is_some() {
            return Ok(());
        }
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + EXIT_WAIT;
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(Error::Setup("strata-csi serve did not stop on SIGTERM; killed it".into()))
    }
}

impl Drop for SelfServer {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

/// Resident memory of a process, from `/proc/<pid>/status`, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Memory {
    pub rss_kib: u64,
    /// The peak resident set so far (VmHWM).
    pub hwm_kib: u64,
    pub threads: u64,
}

/// Reads the memory figures of `pid`.
pub fn memory(pid: u32) -> Result<Memory> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let text = std::fs::read_to_string(&path).map_err(Error::io("read", &path))?;
    Ok(parse_status(&text))
}

/// The figures of a `/proc/<pid>/status` text; missing ones are 0.
pub fn parse_status(text: &str) -> Memory {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Memory { rss_kib: field("VmRSS"), hwm_kib: field("VmHWM"), threads: field("Threads") }
}

/// CPU time a process has used so far, in nanoseconds: the sum of its threads' run time from
/// `/proc/<pid>/task/*/schedstat` (threads that already exited are not counted).
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let run_ns = |e: std::fs::DirEntry| -> Option<u64> {
        let text = std::fs::read_to_string(e.path().join("schedstat")).ok()?;
        text.split_whitespace().next()?.parse().ok()
    };
    Some(tasks.filter_map(|e| e.ok().and_then(run_ns)).sum())
}

/// How long a server must stay (nearly) idle to count as quiet.
const QUIET_WINDOW: std::time::Duration = std::time::Duration::from_millis(50);
/// The most CPU a quiet server uses over [`QUIET_WINDOW`]: 2 % of one CPU.
const QUIET_NS: u64 = 1_000_000;

/// Server CPU time over a stretch of work.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    pid: Option<u32>,
    start: Option<u64>,
}

impl CpuMeter {
    pub fn start(pid: Option<u32>) -> CpuMeter {
        CpuMeter { pid, start: pid.and_then(cpu_ns) }
    }

    /// [`CpuMeter::per_op_us`] once the server has gone quiet (less than 2 % of a CPU over
    /// 50 ms, waiting 3 s at most): work a call left to the background (a delete's removal of
    /// the files) counts for the calls that left it, and not for the next figure.
    pub async fn settled_per_op_us(&self, ops: usize) -> Option<f64> {
        let pid = self.pid?;
        let mut last = cpu_ns(pid)?;
        for _ in 0..60 {
            tokio::time::sleep(QUIET_WINDOW).await;
            let now = cpu_ns(pid)?;
            let quiet = now.saturating_sub(last) < QUIET_NS;
            last = now;
            if quiet {
                break;
            }
        }
        self.per_op_us(ops)
    }

    /// Microseconds of server CPU per operation, over `ops` operations since the start.
    pub fn per_op_us(&self, ops: usize) -> Option<f64> {
        let now = self.pid.and_then(cpu_ns)?;
        let used = now.checked_sub(self.start?)?;
        (ops > 0).then(|| used as f64 / 1e3 / ops as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields() {
        let text = "Name:\tstrata-csi\nVmHWM:\t    9000 kB\nVmRSS:\t    7168 kB\nThreads:\t3\n";
        assert_eq!(parse_status(text), Memory { rss_kib: 7168, hwm_kib: 9000, threads: 3 });
        assert_eq!(parse_status(""), Memory::default());
        let own = memory(std::process::id()).unwrap();
        assert!(own.rss_kib > 0 && own.threads > 0);
    }

    #[test]
    fn cpu_time_grows_with_work() {
        // A busy process of its own: this one's threads (other tests) end while it measures.
        let mut busy = std::process::Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap();
        let meter = CpuMeter::start(Some(busy.id()));
        std::thread::sleep(std::time::Duration::from_millis(100));
        let used = meter.per_op_us(1);
        busy.kill().unwrap();
        busy.wait().unwrap();
        assert!(used.unwrap() > 1000.0, "{used:?}");
        assert_eq!(CpuMeter::start(None).per_op_us(1), None);
    }
}
