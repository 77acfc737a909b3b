//! Logs go to a file (never stdout or stderr, which kubelet parses as the reply).

use super::config::Config;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;
use tracing::level_filters::LevelFilter;

/// Sends `tracing` events to the configured log file. A log that cannot be opened means no
/// log: the call itself must not fail for it, but the reason is returned (`init` says it).
pub fn init(cfg: &Config) -> Option<String> {
    let path = cfg.log_file.as_ref()?;
    let file = OpenOptions::new().create(true).append(true).mode(0o640).open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) => return Some(format!("log file {} cannot be opened ({e}): strata-flex logs nothing", path.display())),
    };
    let level = cfg.log_level.parse().unwrap_or(LevelFilter::INFO);
    let _ = tracing_subscriber::fmt()
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .with_max_level(level)
        .with_target(false)
        .try_init();
    None
}
