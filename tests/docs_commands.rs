//! The docs cannot drift from the binaries: every ```sh block of README.md and docs/cli.md runs
//! here, in order, in one bash (`set -euo pipefail`) per document, with the binaries under test
//! first on PATH (as `cargo install --path .` would put them). Root tier: the blocks start a
//! server on a scratch directory, mount filesystems and attach loop devices.
//!
//! Two kinds of line are not executed, and each is checked instead: `kubectl ...` (there is no
//! cluster here; the manifests, kustomizations and object names it uses must exist) and the
//! build, run and test commands themselves (`cargo install`, the quick start's `cargo run ...
//! serve`, `scripts/test`), which is what runs this.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod packaging_support;

use packaging_support::{CSI_BIN, manifests, repo};
use std::path::Path;
use std::process::Command;

/// The ```sh blocks of a markdown file, in order.
fn sh_blocks(doc: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join(doc)).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), l) => {
                block.push_str(l);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "{doc}: an unclosed ```sh block");
    blocks
}

/// Checks a `kubectl` line against deploy/: files and kustomizations exist, named objects too.
fn check_kubectl(line: &str) {
    let words: Vec<&str> = line.split('#').next().unwrap().split_whitespace().collect();
    let names = |kind: &str| -> Vec<String> {
        manifests("").iter().filter(|d| d.kind() == kind).map(|d| d.name().to_owned()).collect()
    };
    for (i, w) in words.iter().enumerate() {
        match *w {
            "-k" => assert!(repo().join(words[i + 1]).join("kustomization.yaml").is_file(), "{line}"),
            "-f" => assert!(repo().join(words[i + 1]).is_file(), "{line}"),
            "logs" => assert!(names("Pod").contains(&words[i + 1].to_owned()), "{line}: no such Pod in deploy/"),
            w if w.starts_with("ds/") => assert!(names("DaemonSet").contains(&w[3..].to_owned()), "{line}"),
            _ => {}
        }
    }
}

/// The script a document's blocks make, with the lines that are checked rather than run.
fn script_of(doc: &str) -> String {
    let mut script = String::new();
    for block in sh_blocks(doc) {
        for line in block.lines() {
            let cmd = line.trim_start();
            if cmd.starts_with("kubectl ") {
                check_kubectl(cmd);
            } else if cmd.starts_with("cargo install --locked --path .")
                || cmd.starts_with("cargo run --release --bin strata-csi -- serve")
                || cmd == "scripts/test"
            {
                assert!(repo().join("scripts/test").is_file());
            } else {
                script.push_str(line);
                script.push('\n');
            }
        }
    }
    script
}

fn run_doc(doc: &str) -> String {
    assert!(nix::unistd::geteuid().is_root(), "the {doc} commands mount and attach loop devices: run as root");
    let script = script_of(doc);
    assert!(script.contains("strata-csi "), "{doc}: no strata-csi command found");
    let bin_dir = Path::new(CSI_BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(repo())
        .env("PATH", path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{doc}: a command failed ({}):\n--- script\n{script}--- stdout\n{stdout}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_cli_page_runs_as_written() {
    let out = run_doc("docs/cli.md");
    for step in [
        "ready: true",
        "published: demo@demo-node",
        "staged_by: strata-csi (CSI)",
        "snapshot_id: demo-snap@demo-node",
        "key_in_kernel: yes",
    ] {
        assert!(out.contains(step), "docs/cli.md did not show {step:?}:\n{out}");
    }
    assert!(out.contains("deleted: demo@demo-node"), "{out}");
    // The node's identity: refused under another id, renamed on purpose; the generated pages.
    for step in [
        "belongs to node \"demo-node\"",
        "node renamed",
        "keep@other-node\n",
        "deleted: keep@other-node",
        "ok    kubelet dir:",
        "Usage: strata-flex",
    ] {
        assert!(out.contains(step), "docs/cli.md did not show {step:?}:\n{out}");
    }
    for cmd in [
        "create-volume",
        "stage",
        "publish",
        "stats",
        "expand",
        "node-expand",
        "create-snapshot",
        "unpublish",
        "unstage",
        "delete-volume",
    ] {
        assert!(script_of("docs/cli.md").contains(&format!("strata-csi client {cmd} ")), "docs/cli.md lacks {cmd}");
    }
    assert!(script_of("docs/cli.md").contains("--from-snapshot"), "docs/cli.md lacks a restore");
}

#[test]
fn the_readme_runs_as_written() {
    let out = run_doc("README.md");
    assert!(out.contains(&format!("strata-csi {}\n", strata::BUILD)), "{out}");
    assert!(out.contains(&format!("strata-flex {}\n", strata::BUILD)), "{out}");
    assert!(out.contains("deleted: demo@demo-node"), "{out}");
}

/// The long options `strata-csi <args> --help` lists.
fn long_options(args: &[&str]) -> Vec<String> {
    let out = Command::new(CSI_BIN).args(args).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let mut opts: Vec<String> = help
        .lines()
        .filter_map(|l| l.trim_start().split([' ', ',', '=']).find(|w| w.starts_with("--")))
        .map(str::to_owned)
        .filter(|o| o != "--help" && o != "--version")
        .collect();
    opts.dedup();
    opts
}

#[test]
fn every_bench_option_is_in_the_performance_doc() {
    let doc = std::fs::read_to_string(repo().join("docs/performance.md")).unwrap();
    let opts = long_options(&["bench"]);
    assert!(opts.len() > 20, "{opts:?}");
    let missing: Vec<&String> =
        opts.iter().filter(|o| !doc.contains(&format!("`{o}")) && !doc.contains(&format!(" {o} "))).collect();
    assert!(missing.is_empty(), "docs/performance.md does not describe {missing:?}");
}

#[test]
fn every_flex_environment_override_is_documented() {
    let source = std::fs::read_to_string(repo().join("src/flex/config.rs")).unwrap();
    let ops = std::fs::read_to_string(repo().join("docs/operations.md")).unwrap();
    let mut vars: Vec<&str> = source
        .split('"')
        .filter(|w| w.starts_with("STRATA_FLEX_") && w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .collect();
    vars.sort();
    vars.dedup();
    assert!(
        vars.len() >= 6 && vars.contains(&"STRATA_FLEX_ROOT"),
        "the overrides were not found in the source: {vars:?}"
    );
    for v in vars {
        assert!(ops.contains(&format!("| `{v}` |")), "docs/operations.md's table lacks {v}");
    }
}

#[test]
fn no_doc_relies_on_findmnt_r_to_find_a_volume_s_mounts() {
    let mut docs = vec![repo().join("README.md")];
    docs.extend(std::fs::read_dir(repo().join("docs")).unwrap().map(|e| e.unwrap().path()));
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap().replace('\n', " ");
        for (i, _) in text.match_indices("findmnt -R") {
            let around = &text[i..(i + 80).min(text.len())];
            assert!(around.contains("is no check"), "{}: `findmnt -R` used as a check: {around}", doc.display());
        }
    }
}

/// The kubectl plugin's install line copies from where the build line before it builds.
#[test]
fn the_kubectl_plugin_is_installed_from_where_it_was_built() {
    let blocks = sh_blocks("docs/operations.md");
    let block = blocks.iter().find(|b| b.contains("kubectl-strata /usr/local/bin/")).expect("the install block");
    let built = if block.contains("cargo build --release") { "target/release/" } else { "target/static/" };
    assert!(block.contains(&format!("install -m 0755 {built}kubectl-strata")), "{block}");
}
