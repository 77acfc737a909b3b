//! Why a benchmark run stopped.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{what} {path}: {errno}")]
    Sys { what: &'static str, path: PathBuf, errno: nix::errno::Errno },
    #[error("cannot connect to {endpoint}: {source}")]
    Connect { endpoint: String, source: tonic::transport::Error },
    #[error("{what}: {code:?}: {message}")]
    Rpc { what: String, code: tonic::Code, message: String },
    #[error("{what}: {detail}")]
    Command { what: String, detail: String },
    #[error("{0}")]
    Setup(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A closure that wraps an I/O error with what was done to which path.
    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }

    /// A closure that wraps a failed syscall with what was done to which path.
    pub fn sys(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(nix::errno::Errno) -> Error {
        let path = path.into();
        move |errno| Error::Sys { what, path, errno }
    }

    /// A closure that wraps a failed RPC with what was asked.
    pub fn rpc(what: impl Into<String>) -> impl FnOnce(tonic::Status) -> Error {
        let what = what.into();
        move |st| Error::Rpc { what, code: st.code(), message: st.message().to_owned() }
    }
}
