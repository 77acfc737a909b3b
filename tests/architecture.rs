//! The shape of `src/`, checked: layers import only downward, no import circle between files or
//! top-level modules, no function over 50 lines, the engine never decides by volume kind, errors
//! are typed outside argument parsing, and every module says what it holds. The reader behind
//! these checks is itself tested on a small crate made here with each defect planted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod architecture_support;

use architecture_support::Analysis;
use architecture_support::lex::Token;
use std::path::Path;

/// The layers, bottom first. A module may import only from a lower layer.
const LAYERS: &[&[&str]] = &[
    &["quote", "stdout", "crashpoint", "undo"],
    &["quantity"],
    &["sys"],
    &["volume"],
    &["backend"],
    &["engine"],
    &["metrics", "flex"],
    &["csi"],
    &["migrate", "bench"],
    &["kubectl"],
    &["program", "bin"],
];

/// The longest a function may be, in lines from its `fn` to its closing brace.
const LONGEST: usize = 50;

/// Files whose functions parse arguments, options or parameters a person typed: their errors are
/// the message shown to that person, so `Result<_, String>` is the honest type there.
const ARGUMENT_PARSING: &[&str] = &[
    "src/quantity.rs",
    "src/bench/args.rs",
    "src/flex/options.rs",
    "src/flex/settings.rs",
    "src/program/csi/cli.rs",
    "src/csi/convert.rs",
    "src/engine/overcommit.rs",
];

fn analysis() -> Analysis {
    architecture_support::analyse(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src")).unwrap()
}

fn circles(a: &Analysis) -> Vec<String> {
    let mut found: Vec<String> = a.files.circles().iter().map(|c| a.describe(&a.files, c)).collect();
    found.extend(a.folders.circles().iter().map(|c| a.describe(&a.folders, c)));
    found
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn upward_imports(a: &Analysis) -> Vec<String> {
    let mut wrong = Vec::new();
    for (from, targets) in &a.folders.edges {
        for to in targets {
            let ok = matches!((layer_of(from), layer_of(to)), (Some(f), Some(t)) if t < f);
            if !ok {
                let at = a.evidence.get(&(from.clone(), to.clone())).cloned().unwrap_or_default();
                wrong.push(format!("{from} -> {to} (at {at}): layers are {LAYERS:?}"));
            }
        }
    }
    wrong
}

fn long_functions(a: &Analysis) -> Vec<String> {
    let mut long: Vec<_> = a.functions.iter().filter(|(_, f)| f.lines > LONGEST).collect();
    long.sort_by_key(|(_, f)| std::cmp::Reverse(f.lines));
    long.iter().map(|(path, f)| format!("{path}:{} {} is {} lines", f.line, f.name, f.lines)).collect()
}

/// Whether `tokens[i..]` is the path `first::second` (`second` one of `seconds`).
fn path_at(tokens: &[Token], i: usize, first: &str, seconds: &[&str]) -> bool {
    tokens[i].is(first)
        && tokens.get(i + 1).is_some_and(|t| t.is("::"))
        && tokens.get(i + 2).is_some_and(|t| seconds.iter().any(|s| t.is(s)))
}

/// Every place under `prefix` where `first::second` is written outside test code.
fn paths_written(a: &Analysis, prefix: &str, first: &str, seconds: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in a.krate.files.iter().filter(|f| !f.test && f.path.starts_with(prefix)) {
        for i in 0..file.tokens.len() {
            if path_at(&file.tokens, i, first, seconds) {
                found.push(format!("{}:{} {first}::{}", file.path, file.tokens[i].line, file.tokens[i + 2].text));
            }
        }
    }
    found
}

/// Every `Result<_, String>` outside test code and outside `allowed` files.
fn string_errors(a: &Analysis, allowed: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in a.krate.files.iter().filter(|f| !f.test && !allowed.contains(&f.path.as_str())) {
        let t = &file.tokens;
        for i in 0..t.len() {
            if t[i].is("Result") && t.get(i + 1).is_some_and(|x| x.is("<")) && second_argument_is_string(t, i + 2) {
                found.push(format!("{}:{}", file.path, t[i].line));
            }
        }
    }
    found
}

/// Whether the generic arguments opened before `i` end with `, String >` at their own depth.
fn second_argument_is_string(t: &[Token], i: usize) -> bool {
    let mut depth = 0usize;
    for j in i..t.len() {
        match t[j].text.as_str() {
            "<" | "(" | "[" => depth += 1,
            ")" | "]" => depth = depth.saturating_sub(1),
            ">" if depth == 0 => return false,
            ">" => depth -= 1,
            "," if depth == 0 => {
                return t.get(j + 1).is_some_and(|x| x.is("String")) && t.get(j + 2).is_some_and(|x| x.is(">"));
            }
            _ => {}
        }
    }
    false
}

/// Files under `prefix` whose tokens outside test code include one of `names`.
fn files_naming(a: &Analysis, prefix: &str, names: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in a.krate.files.iter().filter(|f| !f.test && f.path.starts_with(prefix)) {
        if let Some(t) = file.tokens.iter().find(|t| names.iter().any(|n| t.is(n))) {
            found.push(format!("{}:{} {}", file.path, t.line, t.text));
        }
    }
    found
}

#[test]
fn no_two_files_or_top_level_modules_import_each_other() {
    let found = circles(&analysis());
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn every_top_level_module_imports_only_from_the_layers_below_it() {
    let wrong = upward_imports(&analysis());
    assert!(wrong.is_empty(), "imports that do not go down:\n{}", wrong.join("\n"));
}

#[test]
fn no_function_is_longer_than_fifty_lines() {
    let long = long_functions(&analysis());
    assert!(long.is_empty(), "functions over {LONGEST} lines:\n{}", long.join("\n"));
}

#[test]
fn the_engine_never_decides_by_the_kind_of_a_volume() {
    let found = paths_written(&analysis(), "src/engine/", "Kind", &["Dir", "Loop", "Btrfs", "Tmpfs"]);
    assert!(found.is_empty(), "the engine names a kind; the backend should decide:\n{}", found.join("\n"));
}

#[test]
fn errors_are_typed_outside_argument_parsing() {
    let found = string_errors(&analysis(), ARGUMENT_PARSING);
    assert!(found.is_empty(), "Result<_, String> outside argument parsing:\n{}", found.join("\n"));
}

#[test]
fn the_front_ends_map_engine_errors_without_knowing_errno() {
    let a = analysis();
    let mut found = files_naming(&a, "src/csi/", &["Errno", "EBUSY", "ENOENT", "ENOSPC"]);
    found.extend(files_naming(&a, "src/flex/", &["Errno", "EBUSY", "ENOENT", "ENOSPC"]));
    assert!(found.is_empty(), "a front-end names an errno:\n{}", found.join("\n"));
}

#[test]
fn no_test_double_is_in_the_release_library() {
    let found = files_naming(&analysis(), "src/", &["FakeHost"]);
    assert!(found.is_empty(), "test doubles outside cfg(test):\n{}", found.join("\n"));
}

#[test]
fn every_module_says_what_it_holds_in_its_first_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let silent: Vec<_> = analysis()
        .krate
        .files
        .iter()
        .filter(|f| !f.test && !std::fs::read_to_string(root.join(&f.path)).unwrap().starts_with("//! "))
        .map(|f| f.path.clone())
        .collect();
    assert!(silent.is_empty(), "modules without a //! line on top:\n{}", silent.join("\n"));
}

/// A crate with every defect the checks look for, written to a temporary directory.
fn planted() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("engine")).unwrap();
    std::fs::create_dir_all(src.join("csi")).unwrap();
    let long_body = "    let _x = 1;\n".repeat(LONGEST);
    let files = [
        ("lib.rs", "//! Planted.\npub mod engine;\npub mod csi;\n".to_owned()),
        ("engine/mod.rs", "//! Engine.\npub mod a;\npub mod b;\n".to_owned()),
        (
            "engine/a.rs",
            "//! A.\nuse super::b::B;\npub struct A;\nfn f() -> Result<(), String> { Ok(()) }\n".to_owned(),
        ),
        ("engine/b.rs", format!("use super::a::A;\npub struct B;\nfn g(k: u8) {{ let _ = Kind::Dir;\n{long_body}}}\n")),
        ("csi/mod.rs", "//! Csi.\nuse crate::engine::a::A;\nfn h() { let _ = Errno::EBUSY; }\n".to_owned()),
    ];
    for (path, text) in files {
        std::fs::write(src.join(path), text).unwrap();
    }
    dir
}

#[test]
fn the_checks_find_each_planted_defect() {
    let dir = planted();
    let a = architecture_support::analyse(&dir.path().join("src")).unwrap();
    let circles = circles(&a);
    assert_eq!(circles.len(), 1, "{circles:?}");
    assert!(circles[0].contains("src/engine/a.rs") && circles[0].contains("src/engine/b.rs"), "{circles:?}");
    assert!(upward_imports(&a).is_empty(), "csi -> engine goes down: {:?}", upward_imports(&a));
    let long = long_functions(&a);
    assert!(long.len() == 1 && long[0].contains("src/engine/b.rs") && long[0].contains(" g is "), "{long:?}");
    let kinds = paths_written(&a, "src/engine/", "Kind", &["Dir"]);
    assert_eq!(kinds, ["src/engine/b.rs:3 Kind::Dir"]);
    assert_eq!(string_errors(&a, &[]), ["src/engine/a.rs:4"]);
    assert!(string_errors(&a, &["src/engine/a.rs"]).is_empty());
    assert_eq!(files_naming(&a, "src/csi/", &["Errno"]), ["src/csi/mod.rs:3 Errno"]);
}

#[test]
fn an_import_up_a_layer_is_found() {
    let dir = planted();
    std::fs::write(dir.path().join("src/engine/mod.rs"), "//! Engine.\npub mod a;\npub mod b;\nuse crate::csi::C;\n")
        .unwrap();
    std::fs::write(dir.path().join("src/csi/mod.rs"), "//! Csi.\npub struct C;\n").unwrap();
    let a = architecture_support::analyse(&dir.path().join("src")).unwrap();
    let wrong = upward_imports(&a);
    assert_eq!(wrong.len(), 1, "{wrong:?}");
    assert!(wrong[0].starts_with("engine -> csi (at src/engine/mod.rs:4)"), "{wrong:?}");
}
