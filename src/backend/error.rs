//! Backend errors: a host call that failed, or a volume in a state the backend cannot act on.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Host(#[from] crate::sys::Error),
    #[error("raw block access is only available for loop volumes")]
    BlockUnsupported,
    #[error("{device} carries a {found} filesystem, but the volume is {expected}; refusing to mount or format it")]
    WrongFilesystem { device: PathBuf, found: String, expected: String },
    #[error("{path} is not on btrfs: the btrfs backend needs the data root on a btrfs filesystem")]
    NotBtrfs { path: PathBuf },
    #[error("the storage of the volume is missing: {path}")]
    Missing { path: PathBuf },
    #[error("{0} does not hold the volume's filesystem; refusing to freeze what is mounted there")]
    NotStagedHere(PathBuf),
    #[error("{0} is not supported by this backend")]
    Unsupported(&'static str),
}

impl Error {
    /// For `map_err`: the step `what` on `path` failed, as a host error of the one sys shape.
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Host(crate::sys::Error::io(what, path, source))
    }
}
