//! The node checks of strata-flex: the data root takes new files, the kubelet dir can be read,
//! the log file can be written, and this process may mount. `init` makes none of them (it runs
//! on hosts that have none of these, kube-controller-manager's container among them); `mount`
//! makes the ones it needs and fails with the reason ([`for_mount`]), and `strata-flex check`
//! reports every one to a person ([`node`]).

use super::config::Config;
use super::problem::Problem;
use super::{Error, Result};
use crate::sys::access::may_write_into;
use crate::sys::caps;
use std::path::Path;

/// What `mount` needs of the node, checked before it touches anything: a Failure names the
/// first thing missing (the data root is created if missing, as the engine would).
pub fn for_mount(cfg: &Config) -> Result<()> {
    root(&cfg.root, true).map_err(|r| unusable("data root", &cfg.root, r))?;
    kubelet_dir(&cfg.kubelet_dir).map_err(|r| unusable("kubelet dir", &cfg.kubelet_dir, r))?;
    mount_right().map_err(|reason| Error::NoMountRight { reason: Box::new(reason) })?;
    Ok(())
}

/// Every check, for a person: what was checked, and what was found or why it fails. Nothing is
/// created but a probe file, removed again.
pub fn node(cfg: &Config) -> Vec<(&'static str, std::result::Result<String, Problem>)> {
    let said = |r: std::result::Result<(), Problem>, p: &Path, what: &str| {
        r.map(|()| format!("{} {what}", p.display()))
            .map_err(|e| Problem::At { path: p.to_owned(), problem: Box::new(e) })
    };
    vec![
        ("data root", said(root(&cfg.root, false), &cfg.root, "takes new files")),
        ("kubelet dir", said(kubelet_dir(&cfg.kubelet_dir), &cfg.kubelet_dir, "can be read")),
        ("log file", log_file(cfg.log_file.as_deref())),
        ("mount", mount_right().map(|()| "this process has CAP_SYS_ADMIN".to_owned())),
    ]
}

/// Whether a file can be made in `path`: made first when `create`, else a missing root is fine
/// when its parent could take it.
fn root(path: &Path, create: bool) -> std::result::Result<(), Problem> {
    if create {
        crate::engine::perm::make_dir(path).map_err(Problem::MakeRoot)?;
    } else if !path.exists() {
        let parent = path.parent().unwrap_or(Path::new("/"));
        return may_write_into(parent)
            .map_err(|error| Problem::ParentRefuses { parent: parent.to_owned(), error: Box::new(error) });
    }
    let probe = path.join(format!(".init-check.{}", std::process::id()));
    let created = crate::engine::perm::private_file().write(true).create_new(true).open(&probe);
    match created {
        Ok(_) => std::fs::remove_file(&probe).map_err(Problem::RemoveProbe),
        Err(e) => Err(Problem::CannotCreate(e)),
    }
}

fn kubelet_dir(path: &Path) -> std::result::Result<(), Problem> {
    std::fs::read_dir(path).map(drop).map_err(Problem::Unreadable)
}

/// Whether the log file can be appended to (or made), without making it.
fn log_file(path: Option<&Path>) -> std::result::Result<String, Problem> {
    let Some(path) = path else { return Ok("off: strata-flex logs nothing".to_owned()) };
    if path.exists() {
        let opened = std::fs::OpenOptions::new().append(true).open(path);
        opened.map_err(|source| Problem::LogUnwritable { path: path.to_owned(), source })?;
    } else {
        let dir = path.parent().unwrap_or(Path::new("/"));
        may_write_into(dir).map_err(|error| Problem::LogDirRefuses {
            path: path.to_owned(),
            dir: dir.to_owned(),
            error: Box::new(error),
        })?;
    }
    Ok(format!("{} can be written", path.display()))
}

fn mount_right() -> std::result::Result<(), Problem> {
    match caps::effective().map_err(Problem::Capabilities)? {
        c if caps::may_mount(c) => Ok(()),
        _ => Err(Problem::NoCapSysAdmin),
    }
}

fn unusable(what: &'static str, path: &Path, reason: Problem) -> Error {
    Error::Unusable { what, path: path.to_owned(), reason: Box::new(reason) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(root: &Path, kubelet_dir: &Path, log: Option<&Path>) -> Config {
        Config {
            root: root.to_owned(),
            kubelet_dir: kubelet_dir.to_owned(),
            log_file: log.map(Path::to_owned),
            ..Config::default()
        }
    }

    #[test]
    fn a_usable_root_is_created_for_mount_and_left_clean() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("strata");
        root_ok(&cfg(&root, tmp.path(), None));
        assert!(root.is_dir());
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0, "no probe file left");
    }

    /// `for_mount` past the root and kubelet dir (the mount right depends on who runs the test).
    fn root_ok(c: &Config) {
        match for_mount(c) {
            Ok(()) | Err(Error::NoMountRight { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn an_unusable_root_or_kubelet_dir_is_named_with_the_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = for_mount(&cfg(&file.join("root"), tmp.path(), None)).unwrap_err().to_string();
        assert!(err.contains("data root") && err.contains("file/root") && err.contains("Not a directory"), "{err}");
        let err = for_mount(&cfg(&file, tmp.path(), None)).unwrap_err().to_string();
        assert!(err.starts_with("data root "), "{err}");
        let missing = tmp.path().join("no-kubelet");
        let err = for_mount(&cfg(&tmp.path().join("r"), &missing, None)).unwrap_err().to_string();
        assert!(err.contains("kubelet dir") && err.contains("no-kubelet") && err.contains("No such file"), "{err}");
    }

    #[test]
    fn a_person_sees_every_check_and_nothing_is_made() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("strata");
        let log = tmp.path().join("no-such-dir/flex.log");
        let checks = node(&cfg(&root, tmp.path(), Some(&log)));
        let names: Vec<&str> = checks.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["data root", "kubelet dir", "log file", "mount"]);
        assert!(checks[0].1.is_ok() && checks[1].1.is_ok(), "{checks:?}");
        let log_problem = checks[2].1.as_ref().unwrap_err().to_string();
        assert!(log_problem.contains("no-such-dir") && log_problem.contains("log nothing"), "{log_problem}");
        assert!(!root.exists(), "check does not make the data root");
        let off = node(&cfg(&root, tmp.path(), None));
        assert!(off[2].1.as_ref().unwrap().starts_with("off"), "{off:?}");
    }
}
