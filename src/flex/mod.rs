//! The FlexVolume front-end: kubelet's argv in, engine calls, exactly one JSON reply out.
//!
//! kubelet joins stdout and stderr and parses them as one JSON value, so nothing here prints:
//! the reply is written by [`reply::emit`] alone, logs go to a file (`logging`), and
//! descriptors 1 and 2 point at `/dev/null` while the call runs (`stdio`).
//!
//! What strata does and leaves to kubelet:
//! - `init` answers the driver's capabilities wherever it runs: kube-controller-manager runs it
//!   too, often in a container without the data root or the kubelet dir. Only settings that
//!   cannot be read fail it. `mount` checks the node first (data root, kubelet dir, the right to
//!   mount: `health`) and fails with the reason; `strata-flex check` runs the same checks for a
//!   person, and `--help` / `--version` answer a person (`human`).
//! - `init` reports attach false (mount does attach and stage itself), selinuxRelabel true,
//!   fsGroup true (kubelet chowns read-write mounts; strata only checks the gid), supportsMetrics
//!   true (kubelet statfs's the pod dir) and requiresFSResize true.
//! - Expansion: `expandvolume` (kube-controller-manager, on its own host, which rarely holds a
//!   node-local volume) only checks its arguments and answers Success; `expandfs` (kubelet, on
//!   the volume's node) grows the storage and the filesystem.
//! - Volumes are never deleted by this front-end: FlexVolume has no delete call.
//! - Secrets (`kubernetes.io/secret/*`) are decoded once and kept redacted; an encrypted volume's
//!   key is the Secret's entry `key` (`encryption`, below).
//!
//! Options (`flexVolume.options`, next to kubelet's `kubernetes.io/*` keys, which they override):
//! - `backend`: `dir` (default), `loop`, `btrfs` or `tmpfs`; `size`: a quantity (`64Mi`, `1Gi`,
//!   `1G`, `500M`, bytes), 1Gi when unset, raised by the engine's size policy as for CSI (loop:
//!   at least 16Mi, 300Mi for xfs, whole 4 KiB blocks); `mountOptions`: comma-separated, for
//!   the stage mount.
//! - The fs type of a `loop` volume is the PV's `fsType` (`ext4` when empty, or `xfs`).
//! - `volumeID`: use this existing volume (made by `strata-csi`, say) instead of the one named
//!   after the PV. Without it the volume is the PV's name, or for an inline volume the pod's
//!   volume name, so inline volumes of the same name share one volume on a node.
//! - `encryption: fscrypt`: an encrypted volume (loop ext4, or dir on a root that can encrypt),
//!   keyed by the PV's `secretRef` Secret (its `type` must be `strata/flex`, entry `key`).
//! - An existing volume must agree with `backend`, `fsType` and `encryption` when they are
//!   given; `size` may differ (the volume may have been expanded).
//!
//! ```yaml
//! flexVolume: {driver: "strata/flex", fsType: xfs, options: {backend: loop, size: 10Gi}}
//! ```

#![deny(clippy::print_stdout, clippy::print_stderr, clippy::dbg_macro)]

mod command;
pub mod config;
mod driver;
mod encryption;
mod error;
mod expand;
mod health;
pub mod human;
mod logging;
mod mount;
pub mod options;
mod problem;
pub mod reply;
pub mod secret;
mod settings;
mod stdio;
mod unmount;

pub use error::{Error, Result};
pub use reply::{Reply, Status};

use command::Command;
use driver::Driver;
use std::ffi::OsString;

/// The version of this build (`strata-flex --version`, `init`'s message and the log).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs one kubelet call (`args` without the program name) and returns the exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    reply::set_output(stdio::take_reply_stream());
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(%info, "panic");
        reply::emit(&Reply::failure(format!("strata-flex crashed: {info}")));
    }));
    let exe = std::env::current_exe().ok();
    let cfg = config::load(exe.as_deref(), &|k| std::env::var(k).ok());
    let log_problem = cfg.as_ref().ok().and_then(logging::init);
    let name = args.first().map(|a| a.to_string_lossy().into_owned());
    let span = tracing::info_span!("flex", pid = std::process::id(), cmd = name.as_deref().unwrap_or(""));
    let _entered = span.enter();
    let result = cfg.and_then(|cfg| command::parse(&args).and_then(|c| run(c, cfg, log_problem)));
    let reply = reply::from_result(result);
    tracing::info!(status = ?reply.status, text = %reply.message, "reply");
    reply::emit(&reply)
}

/// Does one parsed command; `log_problem` says why this call logs nothing, if it does not.
fn run(cmd: Command, cfg: config::Config, log_problem: Option<String>) -> Result<Reply> {
    match cmd {
        Command::Init => Ok(init(&cfg, log_problem)),
        Command::Mount { target, json } => {
            let opts = options::parse_for_mount(&json)?;
            tracing::info!(target = %target.display(), ?opts, "mount");
            let driver = open_for(cfg, &target, true)?;
            mount::mount(&driver, &target, &opts)
        }
        Command::Unmount { target } => {
            tracing::info!(target = %target.display(), "unmount");
            let driver = open_for(cfg, &target, false)?;
            unmount::unmount(&driver, &target)
        }
        Command::ExpandVolume { json, new_bytes } => {
            let opts = options::parse(&json)?;
            tracing::info!(new_bytes, id = %opts.id, "expandvolume");
            Ok(expand::expand_volume(&opts, new_bytes))
        }
        Command::ExpandFs { json, new_bytes } => {
            let opts = options::parse(&json)?;
            tracing::info!(new_bytes, id = %opts.id, "expandfs");
            expand::expand_fs(&Driver::open(cfg)?, &opts, new_bytes)
        }
        Command::IsAttached => {
            Ok(Reply { attached: Some(true), ..Reply::success("strata volumes need no attach; always attached") })
        }
        Command::NoOp(name) => {
            Ok(Reply::success(format!("{name}: nothing to do; strata mounts in `mount` (init reports attach: false)")))
        }
        Command::NotSupported(name) => {
            Ok(Reply::not_supported(format!("strata-flex does not implement {}", crate::engine::quote(&name))))
        }
    }
}

/// `init`: the capabilities, wherever it runs (nothing on the host is checked or made).
fn init(cfg: &config::Config, log_problem: Option<String>) -> Reply {
    tracing::info!(version = crate::BUILD, root = %cfg.root.display(), "init");
    let mut message = format!(
        "strata-flex {}, data root {}: each mount checks the node (`strata-flex check` shows how)",
        crate::BUILD,
        cfg.root.display()
    );
    if let Some(problem) = log_problem {
        message.push_str(&format!("; warning: {problem}"));
    }
    Reply { capabilities: Some(reply::CAPABILITIES), ..Reply::success(message) }
}

/// Checks the pod dir against the kubelet dir, then (for a mount) the node, then opens the
/// engine (which makes the root).
fn open_for(cfg: config::Config, target: &std::path::Path, mount: bool) -> Result<Driver> {
    let kubelet_dir = std::slice::from_ref(&cfg.kubelet_dir);
    crate::engine::validate::path_under("pod volume", target, kubelet_dir)?;
    if mount {
        health::for_mount(&cfg)?;
    }
    Driver::open(cfg)
}
