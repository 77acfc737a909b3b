//! Readiness: the data root is usable and every enabled backend has what it needs on this host.

use super::Driver;
use crate::backend::Kind;
use crate::engine::Engine;
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

impl Driver {
    /// What keeps the driver from serving; empty when it is ready.
    pub(super) async fn problems(&self) -> Result<Vec<String>, Status> {
        let backends = self.opts.backends.clone();
        self.blocking(move |e| Ok::<_, Status>(problems(e, &backends))).await
    }
}

fn problems(engine: &Engine, backends: &[Kind]) -> Vec<String> {
    let mut out = Vec::new();
    let root = &engine.config().root;
    if let Err(e) = nix::unistd::access(root, nix::unistd::AccessFlags::W_OK) {
        out.push(format!("the data root {} is not writable: {e}", root.display()));
    }
    for &kind in backends {
        if let Err(e) = engine.backend_usable(kind) {
            out.push(format!("backend {}: {e}", kind.as_str()));
        }
        for tool in tools(kind).iter().filter(|t| !installed(t)) {
            out.push(format!(
                "backend {} needs {tool}, which is not installed in {}",
                kind.as_str(),
                TOOL_DIRS.join(", ")
            ));
        }
    }
    out
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
}
