//! Readiness: the data root is usable, the server has the privileges its node calls need, and
//! every enabled backend has what it needs on this host. Checked by Probe and logged at start.

use super::Driver;
use crate::backend::Kind;
use crate::engine::Engine;
use crate::sys::caps;
use std::path::Path;
use tonic::Status;

/// Where the backends' tools are looked for (the same directories the host seam runs them from).
const TOOL_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The external tools a backend runs.
fn tools(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Loop => &["blkid", "mkfs.ext4", "mkfs.xfs", "resize2fs", "xfs_growfs"],
        Kind::Btrfs => &["btrfs"],
        Kind::Dir | Kind::Tmpfs => &[],
    }
}

fn installed(tool: &str) -> bool {
    TOOL_DIRS.iter().any(|d| Path::new(d).join(tool).is_file())
}

/// One subject of the readiness check and what is wrong with it (nothing: ready).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub subject: String,
    pub problems: Vec<String>,
}

impl Driver {
    /// What keeps the driver from serving; empty when it is ready.
    pub(super) async fn problems(&self) -> Result<Vec<String>, Status> {
        let checks = self.checks().await?;
        Ok(checks.into_iter().flat_map(|c| c.problems).collect())
    }

    /// Every check, ready or not.
    pub async fn checks(&self) -> Result<Vec<Check>, Status> {
        let backends = self.opts.backends.clone();
        let node = !self.opts.controller_only;
        self.blocking(move |e| Ok::<_, Status>(checks(e, &backends, node, &caps::effective()))).await
    }

    /// Logs each check's outcome: at start, so that the log says at once what is not ready;
    /// and, once, the backends not enabled, whose GetCapacity is 0 from then on.
    pub async fn log_readiness(&self) {
        let off: Vec<&str> = Kind::ALL.iter().filter(|k| !self.opts.backends.contains(k)).map(|k| k.as_str()).collect();
        if !off.is_empty() {
            tracing::info!(
                backends = %off.join(","),
                "not enabled (--backends): GetCapacity answers 0 bytes for them, so the scheduler places none of \
                 their volumes on this node"
            );
        }
        match self.checks().await {
            Ok(checks) => {
                for c in checks {
                    if c.problems.is_empty() {
                        tracing::info!(subject = %c.subject, "ready");
                    } else {
                        tracing::warn!(subject = %c.subject, problems = %c.problems.join("; "), "not ready");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e.message(), "readiness check failed"),
        }
    }
}

fn checks(engine: &Engine, backends: &[Kind], node: bool, caps: &crate::sys::Result<u64>) -> Vec<Check> {
    let root = &engine.config().root;
    let mut root_problems = Vec::new();
    if let Err(e) = nix::unistd::access(root, nix::unistd::AccessFlags::W_OK) {
        root_problems.push(format!("the data root {} is not writable: {e}", root.display()));
    }
    let mut out = vec![Check { subject: "data root".into(), problems: root_problems }];
    if node {
        out.push(Check { subject: "privileges".into(), problems: privilege_problems(caps) });
    }
    for &kind in backends {
        let mut problems = Vec::new();
        if let Err(e) = engine.backend_usable(kind) {
            problems.push(format!("backend {}: {e}", kind.as_str()));
        }
        for tool in tools(kind).iter().filter(|t| !installed(t)) {
            problems.push(format!(
                "backend {} needs {tool}, which is not installed in {}",
                kind.as_str(),
                TOOL_DIRS.join(", ")
            ));
        }
        out.push(Check { subject: format!("backend {}", kind.as_str()), problems });
    }
    out
}

/// A node server mounts: without CAP_SYS_ADMIN every stage and publish would fail.
fn privilege_problems(caps: &crate::sys::Result<u64>) -> Vec<String> {
    match caps {
        Ok(c) if caps::may_mount(*c) => Vec::new(),
        Ok(_) => vec![
            "no CAP_SYS_ADMIN: this server cannot mount, so no volume can be staged or published \
             (run it as root in a privileged container, or with --controller-only for a controller)"
                .into(),
        ],
        Err(e) => vec![format!("cannot tell this process's capabilities: {e}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_formatting_and_btrfs_backends_need_tools() {
        assert!(tools(Kind::Dir).is_empty() && tools(Kind::Tmpfs).is_empty());
        assert!(tools(Kind::Loop).contains(&"mkfs.xfs"));
        assert!(installed("sh"));
        assert!(!installed("strata-no-such-tool"));
    }

    #[test]
    fn a_node_server_needs_cap_sys_admin() {
        assert_eq!(privilege_problems(&Ok(0x1ff_ffff_ffff)), Vec::<String>::new());
        let missing = privilege_problems(&Ok(0));
        assert!(missing[0].contains("CAP_SYS_ADMIN") && missing[0].contains("--controller-only"), "{missing:?}");
    }
}
