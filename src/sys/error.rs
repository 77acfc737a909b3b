//! Errors of the host seam: each names the action, the path and the OS error or tool output.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bind mount {source_path} on {target}: {errno}")]
    Bind { source_path: PathBuf, target: PathBuf, errno: nix::Error },
    #[error("mount {fstype} {source_path} on {target}: {errno}")]
    Mount { source_path: PathBuf, target: PathBuf, fstype: String, errno: nix::Error },
    #[error("remount {target}: {errno}")]
    Remount { target: PathBuf, errno: nix::Error },
    #[error("unmount {target}: {errno}")]
    Unmount { target: PathBuf, errno: nix::Error },
    #[error("read mount table: {0}")]
    MountTable(std::io::Error),
    #[error("loop device {what} for {path}: {source}")]
    Loop { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{tool} failed on {path}: {detail}")]
    Tool { tool: String, path: PathBuf, detail: String },
    #[error("{tool} could not start: {source}")]
    ToolSpawn { tool: String, source: std::io::Error },
    #[error("statvfs {path}: {errno}")]
    Statvfs { path: PathBuf, errno: nix::Error },
    #[error("copy {from} to {to}: {source}")]
    Copy { from: PathBuf, to: PathBuf, source: std::io::Error },
    #[error("fscrypt: {what} {path}: {errno}")]
    Fscrypt { what: &'static str, path: PathBuf, errno: nix::Error },
    #[error("{path}: {source}")]
    Place { path: PathBuf, source: super::PlaceError },
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Tree(#[from] super::tree::Error),
}
