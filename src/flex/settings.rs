//! `strata-flex settings`: the settings file with the settings given changed and every other one
//! kept, so that `install.sh` never drops a hand edit. The result is checked as a call would read
//! it before it is printed.

use super::config::{FileConfig, parse_file, validate};
use crate::backend::Kind;
use crate::engine::Overcommit;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The settings to change; what is not given keeps the file's value (or the default).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The settings file to start from (`.strata-flex.json` beside the driver); a missing one is
    /// the defaults.
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// strata's data root (absolute).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// kubelet's root dir (absolute).
    #[arg(long, value_name = "DIR")]
    pub kubelet_dir: Option<PathBuf>,
    /// The log file (absolute, not beside the driver), or `off`.
    #[arg(long, value_name = "FILE|off")]
    pub log_file: Option<String>,
    /// error, warn, info, debug or trace.
    #[arg(long)]
    pub log_level: Option<String>,
    /// Seconds a call waits for another one on the same volume.
    #[arg(long, value_name = "SECONDS")]
    pub lock_wait: Option<u64>,
    /// `<backend>=<ratio>` pairs, comma-separated (`tmpfs=1.5,loop=2`), replacing the file's
    /// ratios; `none` for no overcommit.
    #[arg(long, value_name = "PAIRS")]
    pub overcommit: Option<String>,
}

/// Why the settings cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The existing file cannot be used; it is never overwritten.
    #[error("{0}; fix or remove it first")]
    Broken(super::Error),
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// `--overcommit` (its parser's own words).
    #[error("--overcommit: {0}")]
    Overcommit(String),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// The merged settings are what a call would refuse.
    #[error(transparent)]
    Refused(super::Error),
}

/// The merged settings as one line of JSON.
pub fn merged(args: &Args) -> Result<String, SettingsError> {
    let mut file = existing(&args.file)?;
    if let Some(root) = &args.root {
        file.root = Some(root.clone());
    }
    if let Some(dir) = &args.kubelet_dir {
        file.kubelet_dir = Some(dir.clone());
    }
    if let Some(log) = args.log_file.as_deref() {
        file.log_file = Some((log != "off").then(|| PathBuf::from(log)));
    }
    if let Some(level) = &args.log_level {
        file.log_level = Some(level.clone());
    }
    if let Some(secs) = args.lock_wait {
        file.lock_wait_seconds = Some(secs);
    }
    if let Some(pairs) = args.overcommit.as_deref() {
        file.overcommit = overcommit(pairs)?;
    }
    let json = serde_json::to_string(&file)?;
    validate(parse_file(&json, &args.file).map_err(SettingsError::Refused)?, &args.file)
        .map_err(SettingsError::Refused)?;
    Ok(json + "\n")
}

/// The file's settings; none when it does not exist.
fn existing(path: &Path) -> Result<FileConfig, SettingsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_file(&text, path).map_err(SettingsError::Broken),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(source) => Err(SettingsError::Read { path: path.to_owned(), source }),
    }
}

/// Parses `--overcommit` (argument parsing: its errors are the parser's words).
fn overcommit(pairs: &str) -> Result<Option<BTreeMap<String, f64>>, SettingsError> {
    if pairs == "none" {
        return Ok(None);
    }
    let mut map = BTreeMap::new();
    for pair in pairs.split(',').filter(|p| !p.trim().is_empty()) {
        let (kind, ratio): (Kind, f64) = Overcommit::parse_pair(pair).map_err(SettingsError::Overcommit)?;
        map.insert(kind.as_str().to_owned(), ratio);
    }
    Ok((!map.is_empty()).then_some(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(file: &Path) -> Args {
        Args {
            file: file.to_owned(),
            root: None,
            kubelet_dir: None,
            log_file: None,
            log_level: None,
            lock_wait: None,
            overcommit: None,
        }
    }

    #[test]
    fn settings_not_given_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".strata-flex.json");
        std::fs::write(&file, "{\n  \"lock_wait_seconds\": 7,\n  \"overcommit\": {\"tmpfs\": 2}\n}\n").unwrap();
        let out = merged(&Args { log_level: Some("debug".into()), ..args(&file) }).unwrap();
        assert_eq!(out, "{\"log_level\":\"debug\",\"lock_wait_seconds\":7,\"overcommit\":{\"tmpfs\":2.0}}\n");
        let out = merged(&Args { overcommit: Some("loop=1.5".into()), log_file: Some("off".into()), ..args(&file) });
        assert_eq!(out.unwrap(), "{\"log_file\":null,\"lock_wait_seconds\":7,\"overcommit\":{\"loop\":1.5}}\n");
        let out = merged(&Args { overcommit: Some("none".into()), ..args(&file) }).unwrap();
        assert_eq!(out, "{\"lock_wait_seconds\":7}\n");
        let fresh = merged(&Args { root: Some("/srv/strata".into()), ..args(&dir.path().join("absent")) });
        assert_eq!(fresh.unwrap(), "{\"root\":\"/srv/strata\"}\n");
    }

    #[test]
    fn what_a_call_would_refuse_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".strata-flex.json");
        for (a, want) in [
            (Args { root: Some("relative".into()), ..args(&file) }, "not absolute"),
            (Args { log_file: Some(dir.path().join("x.log").display().to_string()), ..args(&file) }, "beside"),
            (Args { log_level: Some("loud".into()), ..args(&file) }, "log_level"),
            (Args { overcommit: Some("tmpfs=0.5".into()), ..args(&file) }, "between 1 and 1000"),
            (Args { overcommit: Some("ram=2".into()), ..args(&file) }, "unknown backend"),
        ] {
            let err = merged(&a).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        std::fs::write(&file, "{\"rooot\": 1}").unwrap();
        let broken = merged(&args(&file)).unwrap_err().to_string();
        assert!(broken.contains("fix or remove"), "a broken file is not overwritten: {broken}");
    }
}
