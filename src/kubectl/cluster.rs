//! Running `kubectl`: the user's flags passed on, JSON read back, and its failures sorted into
//! no cluster, no permission, no such resource type, not found, or anything else.

use super::cli::Cli;
use super::error::Error;
use serde_json::Value;
use std::ffi::OsString;
use std::io::Write;
use std::process::{Command, Stdio};

/// How to run kubectl: the program and the user's connection flags.
#[derive(Debug, Clone)]
pub struct Kubectl {
    program: OsString,
    flags: Vec<String>,
    namespace: Option<String>,
}

/// Which namespaces a `get` of namespaced objects covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Cluster-scoped objects.
    Cluster,
    /// The user's namespace (`-n`, else the context's).
    Namespace,
    /// Every namespace (`-A`).
    All,
}

impl Kubectl {
    /// `$KUBECTL` (default `kubectl`) with the user's `--kubeconfig`, `--context` and `-n`.
    pub fn from_env(cli: &Cli) -> Kubectl {
        let program = std::env::var_os("KUBECTL").filter(|p| !p.is_empty()).unwrap_or_else(|| "kubectl".into());
        let mut flags = Vec::new();
        if let Some(k) = &cli.kubeconfig {
            flags.push(format!("--kubeconfig={k}"));
        }
        if let Some(c) = &cli.context {
            flags.push(format!("--context={c}"));
        }
        Kubectl { program, flags, namespace: cli.namespace.clone() }
    }

    /// `kubectl get <what> -o json` over `scope`.
    pub fn get(&self, what: &[&str], scope: Scope) -> Result<Value, Error> {
        let mut args: Vec<String> = vec!["get".into()];
        args.extend(what.iter().map(|w| (*w).to_owned()));
        match (scope, &self.namespace) {
            (Scope::All, _) => args.push("--all-namespaces".into()),
            (Scope::Namespace, Some(ns)) => args.push(format!("--namespace={ns}")),
            _ => {}
        }
        args.extend(["-o".into(), "json".into()]);
        let out = self.run(&args, None)?;
        serde_json::from_slice(&out).map_err(|e| Error::BadJson { args: args.join(" "), reason: e.to_string() })
    }

    /// The items of a `kubectl get` list.
    pub fn items(&self, what: &[&str], scope: Scope) -> Result<Vec<Value>, Error> {
        Ok(match self.get(what, scope)? {
            Value::Object(mut o) => match o.remove("items") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        })
    }

    /// `kubectl apply -f -` of `manifest`; kubectl's answer.
    pub fn apply(&self, manifest: &str) -> Result<String, Error> {
        let args = ["apply".to_owned(), "-f".into(), "-".into()];
        let out = self.run(&args, Some(manifest.as_bytes()))?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// `kubectl delete pv NAME --wait`; kubectl's answer.
    pub fn delete_pv(&self, name: &str) -> Result<String, Error> {
        let args = ["delete".to_owned(), "pv".into(), name.to_owned(), "--wait=true".into()];
        let out = self.run(&args, None)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    fn run(&self, args: &[String], stdin: Option<&[u8]>) -> Result<Vec<u8>, Error> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.flags).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let no_kubectl = |source| Error::NoKubectl { program: self.program.to_string_lossy().into_owned(), source };
        let mut child = cmd.spawn().map_err(no_kubectl)?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A kubectl that exits early closes the pipe: its exit status and stderr say why.
            let _ = pipe.write_all(input);
        }
        let out = child.wait_with_output().map_err(no_kubectl)?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        match classify(&args.join(" "), &stderr) {
            Error::NoCluster { .. } if stderr.contains("localhost:8080") && !self.has_kubeconfig() => {
                Err(no_kubeconfig(&|k| std::env::var_os(k)))
            }
            e => Err(e),
        }
    }

    /// Whether kubectl has a kubeconfig to read: `--kubeconfig`, a `KUBECONFIG` naming a file
    /// that exists, or `~/.kube/config` (kubectl's fallback without any is localhost:8080).
    fn has_kubeconfig(&self) -> bool {
        self.flags.iter().any(|f| f.starts_with("--kubeconfig=")) || found_kubeconfig(&|k| std::env::var_os(k))
    }
}

/// Whether `KUBECONFIG` or `$HOME/.kube/config` names a file that exists.
fn found_kubeconfig(env: &dyn Fn(&str) -> Option<OsString>) -> bool {
    let listed = env("KUBECONFIG").map(|v| std::env::split_paths(&v).any(|p| p.is_file())).unwrap_or(false);
    listed || env("HOME").is_some_and(|h| std::path::Path::new(&h).join(".kube/config").is_file())
}

/// The error for a kubectl that had no kubeconfig, saying where it was looked for.
fn no_kubeconfig(env: &dyn Fn(&str) -> Option<OsString>) -> Error {
    let listed = match env("KUBECONFIG") {
        Some(v) if !v.is_empty() => format!("KUBECONFIG ({}) names no file that exists", v.to_string_lossy()),
        _ => "KUBECONFIG is not set".to_owned(),
    };
    let home = env("HOME").map_or("~/.kube/config".to_owned(), |h| format!("{}/.kube/config", h.to_string_lossy()));
    Error::NoKubeconfig { env: listed, home }
}

/// Sorts a kubectl failure by what its stderr says (quoted, bounded).
fn classify(args: &str, stderr: &str) -> Error {
    let message = crate::engine::clip(stderr.trim());
    let has = |needle: &str| stderr.contains(needle);
    if has("(Forbidden)") || has(" is forbidden: ") {
        Error::Forbidden { message }
    } else if has("the server doesn't have a resource type") {
        let resource = args.split_whitespace().nth(1).unwrap_or("?").to_owned();
        Error::NoResource { resource, message }
    } else if has("(NotFound)") {
        Error::NotFound { message }
    } else if ["Unable to connect to the server", "connection refused", "no such host", "i/o timeout"]
        .iter()
        .any(|n| has(n))
        || has("couldn't get current server API group list")
    {
        Error::NoCluster { message }
    } else {
        Error::Kubectl { args: args.to_owned(), message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_kubeconfig_is_told_from_a_cluster_that_is_down() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path().as_os_str().to_owned();
        let none = |k: &str| (k == "HOME").then(|| h.clone());
        assert!(!found_kubeconfig(&none));
        let msg = no_kubeconfig(&none).to_string();
        assert!(msg.starts_with("no kubeconfig found") && msg.contains("KUBECONFIG is not set"), "{msg}");
        assert!(msg.contains(&format!("{}/.kube/config does not exist", home.path().display())), "{msg}");
        std::fs::create_dir(home.path().join(".kube")).unwrap();
        std::fs::write(home.path().join(".kube/config"), "").unwrap();
        assert!(found_kubeconfig(&none));
        let file = home.path().join(".kube/config").into_os_string();
        let listed = |k: &str| (k == "KUBECONFIG").then(|| file.clone());
        assert!(found_kubeconfig(&listed));
    }

    #[test]
    fn failures_are_sorted_by_what_kubectl_says() {
        let refused = "E1129 memcache.go:265] couldn't get current server API group list: Get \"https://127.0.0.1:6443/api?timeout=32s\": dial tcp 127.0.0.1:6443: connect: connection refused\nThe connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?";
        assert!(matches!(classify("get pv", refused), Error::NoCluster { .. }));
        let forbidden = "Error from server (Forbidden): persistentvolumes is forbidden: User \"dev\" cannot list resource \"persistentvolumes\" in API group \"\" at the cluster scope";
        assert!(matches!(classify("get pv", forbidden), Error::Forbidden { .. }));
        let crd = "error: the server doesn't have a resource type \"volumesnapshotcontents\"";
        match classify("get volumesnapshotcontents", crd) {
            Error::NoResource { resource, .. } => assert_eq!(resource, "volumesnapshotcontents"),
            other => panic!("{other:?}"),
        }
        let missing = "Error from server (NotFound): persistentvolumes \"nope\" not found";
        assert!(matches!(classify("get pv nope", missing), Error::NotFound { .. }));
        assert!(matches!(classify("get pv", "something else"), Error::Kubectl { .. }));
    }
}
