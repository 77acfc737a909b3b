//! A private temp directory for one run; on drop it unmounts what is left under it, detaches
//! the loop devices of files under it, and removes it (never while anything is still mounted).

use super::{Error, Result};
use crate::sys::{Host, LinuxHost};
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    /// Makes `<base>/strata-bench.XXXXXX` (mode 0700).
    pub fn new(base: &Path, name: &str) -> Result<WorkDir> {
        let template = base.join(format!("{name}.XXXXXX"));
        let path = nix::unistd::mkdtemp(&template).map_err(Error::sys("mkdtemp", &template))?;
        Ok(WorkDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes a subdirectory (and its parents) and returns it.
    pub fn sub(&self, rel: &str) -> Result<PathBuf> {
        let dir = self.path.join(rel);
        std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        Ok(dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let left = unmount_under(&self.path);
        detach_loops_under(&self.path);
        if left == 0 {
            // The bench's volumes hold what its workloads wrote: removed by the tree engine.
            let _ = crate::sys::tree::remove_tree(&self.path);
        } else {
            eprintln!("bench: {left} mounts remain under {}; leaving it in place", self.path.display());
        }
    }
}

/// Lazily unmounts every mount under `dir`, innermost first; returns how many remain.
pub fn unmount_under(dir: &Path) -> usize {
    let host = LinuxHost;
    let under = |host: &LinuxHost| -> Vec<PathBuf> {
        let table = host.mount_table().unwrap_or_default();
        table.iter().rev().map(|m| m.mount_point.clone()).filter(|p| p.starts_with(dir)).collect()
    };
    for point in under(&host) {
        if let Ok(place) = crate::sys::place_at(&point) {
            let _ = host.unmount(&place, true);
        }
    }
    under(&host).len()
}

/// Detaches every loop device whose backing file lies under `dir`.
pub fn detach_loops_under(dir: &Path) {
    let host = LinuxHost;
    let Ok(loops) = host.loop_list() else { return };
    for l in crate::sys::loops_under(&loops, dir) {
        let _ = host.loop_detach(&l.device);
    }
}
