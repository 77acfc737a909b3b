//! Named crash points for the fault tests: with `STRATA_CRASH_AT=<name>` in its environment, the
//! process aborts (no unwinding, no cleanup: as SIGKILL would leave it) when it reaches that
//! point. Unset, a point costs one relaxed load of a value read once.

use std::sync::OnceLock;

/// The environment variable naming the point to crash at.
pub const ENV: &str = "STRATA_CRASH_AT";

/// Aborts the process if `name` is the point `STRATA_CRASH_AT` names.
pub fn hit(name: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    if AT.get_or_init(|| std::env::var(ENV).ok()).as_deref() == Some(name) {
        // Logged, never printed: a FlexVolume process's stdout and stderr are kubelet's reply.
        tracing::error!(point = name, "crash point reached; aborting as a kill would");
        std::process::abort();
    }
}
