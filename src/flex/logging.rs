//! Logs go to a file (never stdout or stderr, which kubelet parses as the reply).

use super::config::Config;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;
use tracing::level_filters::LevelFilter;

/// Sends `tracing` events to the configured log file. A log that cannot be opened means no
/// log: the call itself must not fail for it.
pub fn init(cfg: &Config) {
    let Some(path) = &cfg.log_file else { return };
    let file = OpenOptions::new().create(true).append(true).mode(0o640).open(path);
    let Ok(file) = file else { return };
    let level = cfg.log_level.parse().unwrap_or(LevelFilter::INFO);
    let _ = tracing_subscriber::fmt()
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .with_max_level(level)
        .with_target(false)
        .try_init();
}
