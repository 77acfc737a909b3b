//! The driver's settings: defaults, then the dot-file beside the executable, then environment.
//!
//! The file is `.strata-flex.json` in the driver's directory (kubelet's probe skips dot-files),
//! or the path in `STRATA_FLEX_CONFIG`. Keys: `root`, `kubelet_dir`, `log_file` (null for no
//! log), `log_level`, `lock_wait_seconds`, `overcommit` (`{"tmpfs": 1.5}`). Environment
//! overrides: `STRATA_FLEX_ROOT`, `STRATA_FLEX_KUBELET_DIR`, `STRATA_FLEX_LOG` (`off` for no log),
//! `STRATA_FLEX_LOG_LEVEL`, `STRATA_FLEX_LOCK_WAIT`, `STRATA_FLEX_OVERCOMMIT` (`tmpfs=1.5,loop=2`).

use super::{Error, Result};
use crate::backend::Kind;
use crate::engine::Overcommit;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The name of the configuration file beside the executable.
pub const FILE_NAME: &str = ".strata-flex.json";

/// The driver's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// strata's data root.
    pub root: PathBuf,
    /// kubelet's root directory; pod volume dirs must lie under it.
    pub kubelet_dir: PathBuf,
    /// Where logs go; `None` for nowhere.
    pub log_file: Option<PathBuf>,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub log_level: String,
    /// How long a call waits for another call on the same volume.
    pub lock_wait: Duration,
    /// How far each backend may promise beyond what the node has.
    pub overcommit: Overcommit,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            root: "/var/lib/strata".into(),
            kubelet_dir: "/var/lib/kubelet".into(),
            log_file: Some("/var/log/strata-flex.log".into()),
            log_level: "info".into(),
            lock_wait: Duration::from_secs(120),
            overcommit: Overcommit::default(),
        }
    }
}

/// The file's shape; every key optional (`strata-flex settings` writes it).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubelet_dir: Option<PathBuf>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub log_file: Option<Option<PathBuf>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_wait_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overcommit: Option<BTreeMap<String, f64>>,
}

/// Tells a `null` (no log) from a missing key (the default log).
fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Option<PathBuf>>, D::Error> {
    Option::<PathBuf>::deserialize(d).map(Some)
}

/// Loads the settings for the executable at `exe`, reading the environment through `env`.
pub fn load(exe: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
    let dir = exe.and_then(Path::parent);
    let path = match env("STRATA_FLEX_CONFIG") {
        Some(p) => Some(PathBuf::from(p)),
        None => dir.map(|d| d.join(FILE_NAME)),
    };
    let mut cfg = Config::default();
    if let Some(path) = &path {
        let named = env("STRATA_FLEX_CONFIG").is_some();
        apply_file(&mut cfg, path, named)?;
    }
    apply_env(&mut cfg, env)?;
    check(&cfg, dir, path.as_deref().unwrap_or(Path::new("environment")))?;
    Ok(cfg)
}

/// Reads the file; a missing one is the defaults, unless `STRATA_FLEX_CONFIG` `named` it.
fn apply_file(cfg: &mut Config, path: &Path, named: bool) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && named => {
            return Err(config_error(path, format!("named by STRATA_FLEX_CONFIG, but {e}")));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(config_error(path, e.to_string())),
    };
    let file = parse_file(&text, path)?;
    apply(cfg, file, path)
}

/// The file's text as its keys.
pub(super) fn parse_file(text: &str, path: &Path) -> Result<FileConfig> {
    serde_json::from_str(text).map_err(|e| config_error(path, e.to_string()))
}

/// Checks settings as a call would read them from `file` at `path` (with no environment).
pub(super) fn validate(file: FileConfig, path: &Path) -> Result<()> {
    let mut cfg = Config::default();
    apply(&mut cfg, file, path)?;
    check(&cfg, path.parent(), path)
}

fn apply(cfg: &mut Config, file: FileConfig, path: &Path) -> Result<()> {
    cfg.root = file.root.unwrap_or(cfg.root.clone());
    cfg.kubelet_dir = file.kubelet_dir.unwrap_or(cfg.kubelet_dir.clone());
    if let Some(log) = file.log_file {
        cfg.log_file = log;
    }
    cfg.log_level = file.log_level.unwrap_or(cfg.log_level.clone());
    if let Some(secs) = file.lock_wait_seconds {
        cfg.lock_wait = Duration::from_secs(secs);
    }
    for (name, ratio) in file.overcommit.unwrap_or_default() {
        let kind =
            Kind::parse(&name).ok_or_else(|| config_error(path, format!("overcommit: unknown backend {name:?}")))?;
        cfg.overcommit.set(kind, ratio).map_err(|e| config_error(path, e))?;
    }
    Ok(())
}

fn apply_env(cfg: &mut Config, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
    if let Some(root) = env("STRATA_FLEX_ROOT") {
        cfg.root = root.into();
    }
    if let Some(dir) = env("STRATA_FLEX_KUBELET_DIR") {
        cfg.kubelet_dir = dir.into();
    }
    match env("STRATA_FLEX_LOG").as_deref() {
        Some("off" | "") => cfg.log_file = None,
        Some(path) => cfg.log_file = Some(path.into()),
        None => {}
    }
    if let Some(level) = env("STRATA_FLEX_LOG_LEVEL") {
        cfg.log_level = level;
    }
    if let Some(secs) = env("STRATA_FLEX_LOCK_WAIT") {
        let secs = secs.parse().map_err(|_| {
            config_error(Path::new("STRATA_FLEX_LOCK_WAIT"), format!("{secs:?} is not a number of seconds"))
        })?;
        cfg.lock_wait = Duration::from_secs(secs);
    }
    if let Some(list) = env("STRATA_FLEX_OVERCOMMIT") {
        let bad = |e| config_error(Path::new("STRATA_FLEX_OVERCOMMIT"), e);
        for pair in list.split(',').filter(|p| !p.trim().is_empty()) {
            let (kind, ratio) = Overcommit::parse_pair(pair).map_err(bad)?;
            cfg.overcommit.set(kind, ratio).map_err(bad)?;
        }
    }
    Ok(())
}

/// Absolute paths only, a known log level, and no log file beside the executable (kubelet
/// watches the driver's directory; a write there makes it probe the driver again).
fn check(cfg: &Config, exe_dir: Option<&Path>, source: &Path) -> Result<()> {
    let log = cfg.log_file.iter().map(|l| ("log_file", l.as_path()));
    let paths = [("root", cfg.root.as_path()), ("kubelet_dir", cfg.kubelet_dir.as_path())];
    for (key, path) in paths.into_iter().chain(log) {
        if !path.is_absolute() {
            return Err(config_error(source, format!("{key} {} is not absolute", path.display())));
        }
    }
    if let (Some(log), Some(dir)) = (&cfg.log_file, exe_dir) {
        if log.parent() == Some(dir) {
            let reason = format!(
                "log_file {} is beside the driver; kubelet would re-probe the driver on every write",
                log.display()
            );
            return Err(config_error(source, reason));
        }
    }
    if cfg.log_level.parse::<tracing::level_filters::LevelFilter>().is_err() {
        return Err(config_error(
            source,
            format!("log_level {:?} is not error, warn, info, debug or trace", cfg.log_level),
        ));
    }
    Ok(())
}

fn config_error(path: &Path, reason: String) -> Error {
    Error::Config { path: path.to_owned(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_without_file_or_env() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = load(Some(&dir.path().join("flex")), &env_of(&[])).unwrap();
        assert_eq!(cfg, Config::default());
    }

    #[test]
    fn file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            r#"{"root":"/srv/strata","log_file":null,"lock_wait_seconds":5,"kubelet_dir":"/k"}"#,
        )
        .unwrap();
        let exe = dir.path().join("flex");
        let cfg = load(Some(&exe), &env_of(&[])).unwrap();
        assert_eq!(cfg.root, PathBuf::from("/srv/strata"));
        assert_eq!(cfg.kubelet_dir, PathBuf::from("/k"));
        assert_eq!(cfg.log_file, None);
        assert_eq!(cfg.lock_wait, Duration::from_secs(5));
        let env = env_of(&[("STRATA_FLEX_ROOT", "/r"), ("STRATA_FLEX_LOG", "/tmp/x.log")]);
        let cfg = load(Some(&exe), &env).unwrap();
        assert_eq!(cfg.root, PathBuf::from("/r"));
        assert_eq!(cfg.overcommit, Overcommit::default());
        assert_eq!(cfg.log_file, Some(PathBuf::from("/tmp/x.log")));
    }

    #[test]
    fn overcommit_from_file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), r#"{"overcommit":{"tmpfs":1.5,"loop":2}}"#).unwrap();
        let exe = dir.path().join("flex");
        let cfg = load(Some(&exe), &env_of(&[])).unwrap();
        assert_eq!((cfg.overcommit.permille(Kind::Tmpfs), cfg.overcommit.permille(Kind::Loop)), (1500, 2000));
        assert_eq!(cfg.overcommit.permille(Kind::Dir), 1000);
        let cfg = load(Some(&exe), &env_of(&[("STRATA_FLEX_OVERCOMMIT", "tmpfs=3, dir=1.25")])).unwrap();
        assert_eq!(cfg.overcommit.permille(Kind::Tmpfs), 3000);
        assert_eq!(cfg.overcommit.permille(Kind::Dir), 1250);
        assert_eq!(cfg.overcommit.permille(Kind::Loop), 2000, "the file's loop ratio stays");
        std::fs::write(dir.path().join(FILE_NAME), r#"{"overcommit":{"tmpfs":0}}"#).unwrap();
        let err = load(Some(&exe), &env_of(&[])).unwrap_err().to_string();
        assert!(err.contains("between 1 and 1000"), "{err}");
    }

    #[test]
    fn bad_settings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("flex");
        let in_plugin_dir = dir.path().join("flex.log");
        for (env, want) in [
            (vec![("STRATA_FLEX_ROOT", "rel")], "not absolute"),
            (vec![("STRATA_FLEX_LOG", in_plugin_dir.to_str().unwrap())], "beside the driver"),
            (vec![("STRATA_FLEX_LOG_LEVEL", "loud")], "log_level"),
            (vec![("STRATA_FLEX_LOCK_WAIT", "soon")], "seconds"),
            (vec![("STRATA_FLEX_OVERCOMMIT", "tmpfs=0.5")], "between 1 and 1000"),
            (vec![("STRATA_FLEX_OVERCOMMIT", "ram=2")], "unknown backend"),
        ] {
            let err = load(Some(&exe), &env_of(&env)).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        let missing = dir.path().join("missing.json");
        let err = load(Some(&exe), &env_of(&[("STRATA_FLEX_CONFIG", missing.to_str().unwrap())])).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("missing.json") && err.contains("STRATA_FLEX_CONFIG"), "{err}");
        std::fs::write(dir.path().join(FILE_NAME), r#"{"rooot":"/x"}"#).unwrap();
        let err = load(Some(&exe), &env_of(&[])).unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
    }
}
