//! `init`'s health check: kubelet (and the docs) treat a Success from `init` as "ready", so the
//! data root must be a directory strata can create files in, and the kubelet dir one it can read.

use super::config::Config;
use super::{Error, Result};
use std::path::Path;

/// Checks the data root (created if missing, as `mount` would) and the kubelet dir.
pub fn check(cfg: &Config) -> Result<()> {
    root(&cfg.root)?;
    kubelet_dir(&cfg.kubelet_dir)
}

fn root(path: &Path) -> Result<()> {
    crate::engine::perm::make_dir(path).map_err(|e| unusable("data root", path, e.to_string()))?;
    let probe = path.join(format!(".init-check.{}", std::process::id()));
    let created = crate::engine::perm::private_file().write(true).create_new(true).open(&probe);
    match created {
        Ok(_) => std::fs::remove_file(&probe).map_err(|e| unusable("data root", path, format!("remove probe: {e}"))),
        Err(e) => Err(unusable("data root", path, format!("cannot create a file in it: {e}"))),
    }
}

fn kubelet_dir(path: &Path) -> Result<()> {
    match std::fs::read_dir(path) {
        Ok(_) => Ok(()),
        Err(e) => Err(unusable("kubelet dir", path, e.to_string())),
    }
}

fn unusable(what: &'static str, path: &Path, reason: String) -> Error {
    Error::Unusable { what, path: path.to_owned(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(root: &Path, kubelet_dir: &Path) -> Config {
        Config { root: root.to_owned(), kubelet_dir: kubelet_dir.to_owned(), ..Config::default() }
    }

    #[test]
    fn a_usable_root_is_created_and_left_clean() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("strata");
        check(&cfg(&root, tmp.path())).unwrap();
        assert!(root.is_dir());
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0, "no probe file left");
    }

    #[test]
    fn an_unusable_root_or_kubelet_dir_is_named_with_the_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = check(&cfg(&file.join("root"), tmp.path())).unwrap_err().to_string();
        assert!(err.contains("data root") && err.contains("file/root") && err.contains("Not a directory"), "{err}");
        let err = check(&cfg(&file, tmp.path())).unwrap_err().to_string();
        assert!(err.starts_with("data root "), "{err}");
        let missing = tmp.path().join("no-kubelet");
        let err = check(&cfg(&tmp.path().join("r"), &missing)).unwrap_err().to_string();
        assert!(err.contains("kubelet dir") && err.contains("no-kubelet") && err.contains("No such file"), "{err}");
    }
}
