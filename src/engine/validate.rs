//! Validation of IDs and paths that come from requests, before anything touches the disk.

use super::quote::{QUOTE_MAX, clip};
use super::{Error, Result};
use std::path::{Component, Path, PathBuf};

/// Longest ID accepted, as the CSI spec bounds string fields.
pub const MAX_ID_LEN: usize = 128;

/// Checks that `id` is one path component of `[A-Za-z0-9._-]`, 1..=128 bytes, not starting with `.`.
pub fn id(kind: &'static str, id: &str) -> Result<()> {
    let reason = if id.is_empty() {
        Some("is empty".to_owned())
    } else if id.len() > MAX_ID_LEN {
        Some(format!("is {} bytes long, more than {MAX_ID_LEN}", id.len()))
    } else if id.starts_with('.') {
        Some("starts with '.'".to_owned())
    } else {
        id.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            .map(|c| format!("contains {c:?}; only letters, digits, '.', '_' and '-' are allowed"))
    };
    match reason {
        Some(reason) => Err(Error::InvalidId { kind, id: printable(id), reason }),
        None => Ok(()),
    }
}

/// A form of an untrusted string that is safe to put in a message or a log line.
fn printable(s: &str) -> String {
    clip(&s.chars().take(QUOTE_MAX).flat_map(char::escape_default).collect::<String>())
}

/// Longest path the kernel takes (`PATH_MAX`, with its NUL).
const PATH_MAX: usize = 4095;
/// Longest single name the kernel takes (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// Checks that `path` is absolute, has no `.` or `..` parts, no NUL and no name longer than the
/// kernel takes, and lies under one of `prefixes`. Where the parent exists, its real path
/// (symlinks resolved) must lie under a prefix as well. A quick check of a path's shape: the
/// engine's node calls resolve paths into handles ([`crate::sys::Place`]) instead.
pub fn path_under(what: &'static str, path: &Path, prefixes: &[PathBuf]) -> Result<()> {
    let real_prefixes = resolve(prefixes);
    prefix_of(what, path, prefixes, &real_prefixes)?;
    if let Some(real) = path.parent().and_then(|p| std::fs::canonicalize(p).ok()) {
        if !real_prefixes.iter().any(|p| real.starts_with(p)) {
            let reason = format!("resolves through a symlink to {}, outside the allowed prefixes", real.display());
            return Err(invalid(what, path, reason));
        }
    }
    Ok(())
}

/// The resolved prefixes, each as it is where it does not exist, for [`prefix_of`].
pub fn resolve(prefixes: &[PathBuf]) -> Vec<PathBuf> {
    prefixes.iter().map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())).collect()
}

/// Checks the shape of `path` (see [`path_under`]) and returns the prefix it lies under: one of
/// `prefixes` as configured, else one of their resolved forms `real_prefixes` (a request may name
/// `/var/lib/kubelet` or the directory it is a symlink to).
pub fn prefix_of<'a>(
    what: &'static str,
    path: &Path,
    prefixes: &'a [PathBuf],
    real_prefixes: &'a [PathBuf],
) -> Result<&'a Path> {
    let bad = |reason: &str| Err(invalid(what, path, reason.to_owned()));
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.is_empty() {
        return bad("is empty");
    }
    if bytes.contains(&0) {
        return bad("contains a NUL byte");
    }
    if bytes.len() > PATH_MAX {
        return bad(&format!("is {} bytes long, more than the kernel's {PATH_MAX}", bytes.len()));
    }
    if !path.is_absolute() {
        return bad("is not absolute");
    }
    if path.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || bytes.windows(3).any(|w| w == b"/./")
        || bytes.ends_with(b"/.")
    {
        return bad("contains '.' or '..'");
    }
    if path.components().any(|c| c.as_os_str().len() > NAME_MAX) {
        return bad(&format!("has a name longer than the kernel's {NAME_MAX} bytes"));
    }
    if path.parent().is_none() {
        return bad("is the root directory");
    }
    let under = |p: &&PathBuf| path.starts_with(p) && path != p.as_path();
    match prefixes.iter().find(under).or_else(|| real_prefixes.iter().find(under)) {
        Some(p) => Ok(p),
        None => bad(&format!("is not under an allowed prefix ({})", list(prefixes))),
    }
}

fn invalid(what: &'static str, path: &Path, reason: String) -> Error {
    Error::InvalidPath { what, path: path.to_owned(), reason }
}

fn list(prefixes: &[PathBuf]) -> String {
    prefixes.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_bounded_at_a_character_boundary() {
        assert_eq!(clip("short"), "short");
        assert_eq!(clip(&"a".repeat(QUOTE_MAX)), "a".repeat(QUOTE_MAX));
        assert_eq!(clip(&"a".repeat(QUOTE_MAX + 1)), format!("{}…", "a".repeat(QUOTE_MAX)));
        // 'é' is two bytes: the cut falls inside the last one that would fit, so it goes.
        let cut = clip(&format!("a{}", "é".repeat(200)));
        assert_eq!(cut, format!("a{}…", "é".repeat(127)));
        let long_id = "é".repeat(1000);
        assert!(id("volume", &long_id).unwrap_err().to_string().len() < QUOTE_MAX + 200);
    }

    #[test]
    fn good_ids_pass() {
        for good in ["pvc-1234", "a", "A.b_c-9", &"x".repeat(128)] {
            id("volume", good).unwrap();
        }
    }

    #[test]
    fn bad_ids_fail_with_a_reason() {
        let long = "x".repeat(129);
        for bad in ["", "a/b", "..", "../x", ".hidden", "a\0b", "a b", &long, "ü"] {
            let err = id("volume", bad).unwrap_err();
            assert!(matches!(err, Error::InvalidId { .. }), "{bad:?}: {err}");
        }
        let msg = id("volume", "a\0b").unwrap_err().to_string();
        assert!(msg.contains("\\u{0}"), "NUL must be shown escaped: {msg}");
    }

    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn paths_must_be_under_a_prefix() {
        let prefixes = [PathBuf::from("/var/lib/kubelet")];
        path_under("target", Path::new("/var/lib/kubelet/pods/x/vol"), &prefixes).unwrap();
        let long_name = format!("/var/lib/kubelet/{}", "n".repeat(256));
        let long_path = format!("/var/lib/kubelet/{}", "d/".repeat(2100));
        for bad in [
            "",
            "relative/x",
            "/var/lib/kubelet",
            "/var/lib/kubelet/../etc",
            "/var/lib/kubelet/./x",
            "/var/lib/kubelet/x/.",
            "/etc/passwd",
            "/var/lib/kubeletX/a",
            "/var/lib/kubelet/a\0b",
            &long_name,
            &long_path,
        ] {
            let err = path_under("target", Path::new(bad), &prefixes).unwrap_err();
            assert!(matches!(err, Error::InvalidPath { .. }), "{bad}: {err}");
        }
        let nul = std::ffi::OsStr::from_bytes(b"/var/lib/kubelet/a\0b");
        let err = path_under("target", Path::new(nul), &prefixes).unwrap_err();
        assert!(err.to_string().contains("NUL"), "{err}");
    }

    #[test]
    fn symlink_escape_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("allowed");
        std::fs::create_dir(&allowed).unwrap();
        std::os::unix::fs::symlink("/etc", allowed.join("link")).unwrap();
        let err = path_under("target", &allowed.join("link/x"), std::slice::from_ref(&allowed)).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        path_under("target", &allowed.join("ok"), &[allowed]).unwrap();
    }
}
