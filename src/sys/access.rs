//! Whether this process may make files in a directory (`access(2)` with `W_OK|X_OK`), asked
//! without making anything: the node checks of strata-flex use it.

use super::error::{Error, Result};
use std::path::Path;

/// Ok when this process may create entries in `dir`; else the OS's refusal.
pub fn may_write_into(dir: &Path) -> Result<()> {
    rustix::fs::access(dir, rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK)
        .map_err(|e| Error::io("access", dir, e))
}

/// The OS's answer in `error` alone (`EACCES: Permission denied`), for a message that names the
/// path itself.
pub fn refusal(error: &Error) -> String {
    error.errno().map_or_else(|| error.to_string(), |e| e.to_string())
}
