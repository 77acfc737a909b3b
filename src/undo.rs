//! Best-effort undo: what a failed call does to leave nothing behind. An undo that fails too is
//! logged here, the same way from every layer (a leaf module: sys, backend, engine and the
//! front-ends all use it); the call still fails with its own error.

/// Logs a failed undo step at warn with the fields `action` (what the undo did) and `error`.
pub fn log<T, E: std::fmt::Display>(action: &str, result: Result<T, E>) {
    if let Err(e) = result {
        tracing::warn!(action, error = %e, "undo failed");
    }
}

/// A removal that found nothing to remove: nothing was left behind, so it did its job.
pub fn missing_ok(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_real_failure_is_one() {
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert!(missing_ok(Err(missing)).is_ok());
        assert!(missing_ok(Err(std::io::Error::from_raw_os_error(libc::EBUSY))).is_err());
        log("remove nothing", Ok::<(), std::io::Error>(()));
        log("remove a file", Err::<(), _>(std::io::Error::from_raw_os_error(libc::EBUSY)));
    }
}
