//! The crate as files: which module each file of `src/` is (following `mod` declarations from
//! `lib.rs`, `#[path]` included), which files are test code, and each file's tokens with test
//! code taken out.
//!
//! Test code is an item under `#[test]` or under a `#[cfg(...)]` that names `test` other than
//! inside `not(...)` (`cfg(test)`, `cfg(all(test, ...))`, `cfg(any(test, feature = "testing"))`),
//! and every file declared by such an item (`#[cfg(test)] mod tests;`) or below one.

use super::lex::{Kind, Token, lex};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One file of `src/`.
#[derive(Debug)]
pub struct File {
    /// The path below the crate's directory, `src/csi/node.rs`.
    pub path: String,
    /// Its module path (`["csi", "node"]`; empty for `lib.rs`). A program under `src/bin/` is a
    /// crate of its own: `["bin", "<name>"]`.
    pub module: Vec<String>,
    /// The whole file is test code.
    pub test: bool,
    /// A program's own crate (`src/bin/*.rs`): it reaches the library as `strata::`.
    pub program: bool,
    /// Its tokens outside test code.
    pub tokens: Vec<Token>,
    /// The modules it declares (`mod name;`), test or not.
    pub children: BTreeSet<String>,
}

/// Every file of the crate, by module.
#[derive(Debug)]
pub struct Crate {
    pub files: Vec<File>,
    pub by_module: BTreeMap<Vec<String>, usize>,
}

/// A `mod` declaration at the top of a file.
struct ModDecl {
    name: String,
    path: Option<String>,
    test: bool,
    inline: bool,
    line: usize,
}

/// Reads the crate whose `src/` is `src`. Errors name what this reader does not understand.
pub fn read(src: &Path) -> Result<Crate, String> {
    let mut krate = Crate { files: Vec::new(), by_module: BTreeMap::new() };
    let mut queue = vec![(src.join("lib.rs"), Vec::new(), false)];
    while let Some((path, module, test)) = queue.pop() {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (tokens, decls, whole_file_test) = strip_tests(lex(&text));
        let rel = relative(src, &path);
        let mut children = BTreeSet::new();
        for decl in decls {
            if decl.inline && !decl.test {
                return Err(format!("{rel}:{}: inline module {}: give it a file of its own", decl.line, decl.name));
            }
            children.insert(decl.name.clone());
            if decl.inline {
                continue;
            }
            let child = child_file(&path, &decl).ok_or_else(|| format!("{rel}: no file for mod {}", decl.name))?;
            let mut child_module = module.clone();
            child_module.push(decl.name);
            queue.push((child, child_module, test || decl.test || whole_file_test));
        }
        krate.by_module.insert(module.clone(), krate.files.len());
        let test = test || whole_file_test;
        krate.files.push(File { path: rel, module, test, program: false, tokens, children });
    }
    add_programs_and_check_all(src, &mut krate)?;
    Ok(krate)
}

/// Adds `src/bin/*.rs` as programs; any other file of `src/` that no module declares is an error.
fn add_programs_and_check_all(src: &Path, krate: &mut Crate) -> Result<(), String> {
    let known: BTreeSet<String> = krate.files.iter().map(|f| f.path.clone()).collect();
    for path in rust_files(src)? {
        let rel = relative(src, &path);
        if known.contains(&rel) {
            continue;
        }
        let Some(name) = rel.strip_prefix("src/bin/").and_then(|n| n.strip_suffix(".rs")) else {
            return Err(format!("{rel} is part of no module"));
        };
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{rel}: {e}"))?;
        let (tokens, _, test) = strip_tests(lex(&text));
        let module = vec!["bin".to_owned(), name.to_owned()];
        krate.files.push(File { path: rel, module, test, program: true, tokens, children: BTreeSet::new() });
    }
    Ok(())
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.is_dir() {
            files.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(files)
}

/// `src/csi/node.rs` for `<crate>/src/csi/node.rs`.
fn relative(src: &Path, path: &Path) -> String {
    let below = path.strip_prefix(src).unwrap_or(path);
    format!("src/{}", below.display())
}

/// The file of a `mod` declared in `parent`: `#[path]` is relative to the parent's directory;
/// otherwise `name.rs` or `name/mod.rs` beside a `lib.rs` or `mod.rs`, below `parent/` for any
/// other file.
fn child_file(parent: &Path, decl: &ModDecl) -> Option<PathBuf> {
    let dir = parent.parent()?;
    if let Some(path) = &decl.path {
        return Some(dir.join(path));
    }
    let stem = parent.file_stem()?.to_str()?;
    let base = if stem == "lib" || stem == "mod" { dir.to_path_buf() } else { dir.join(stem) };
    [base.join(format!("{}.rs", decl.name)), base.join(&decl.name).join("mod.rs")].into_iter().find(|p| p.exists())
}

/// The tokens outside test code, the file's `mod` declarations, and whether the whole file is
/// test code (`#![cfg(test)]`).
fn strip_tests(tokens: Vec<Token>) -> (Vec<Token>, Vec<ModDecl>, bool) {
    let mut kept = Vec::with_capacity(tokens.len());
    let mut decls = Vec::new();
    let mut whole_file_test = false;
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let (attrs, start) = attributes(&tokens, i);
        whole_file_test |= attrs.iter().any(|a| a.inner && a.test);
        let test = attrs.iter().any(|a| !a.inner && a.test);
        if depth == 0 {
            let decl = mod_decl(&tokens, start, &attrs, test);
            decls.extend(decl.filter(|d| !decls.iter().any(|o: &ModDecl| o.name == d.name)));
        }
        if test {
            i = item_end(&tokens, start);
            continue;
        }
        let end = (start + 1).min(tokens.len());
        for t in &tokens[i..end] {
            depth = depth_after(t, depth);
            kept.push(t.clone());
        }
        i = end;
    }
    (kept, decls, whole_file_test)
}

fn depth_after(token: &Token, depth: usize) -> usize {
    match token.text.as_str() {
        "{" if token.kind == Kind::Punct => depth + 1,
        "}" if token.kind == Kind::Punct => depth.saturating_sub(1),
        _ => depth,
    }
}

/// One attribute: `#[...]` or `#![...]`.
struct Attribute {
    inner: bool,
    test: bool,
    path: Option<String>,
}

/// The attributes starting at `i` (perhaps none) and where the item after them starts.
fn attributes(tokens: &[Token], i: usize) -> (Vec<Attribute>, usize) {
    let mut attrs = Vec::new();
    let mut at = i;
    while tokens.get(at).is_some_and(|t| t.is("#")) {
        let inner = tokens.get(at + 1).is_some_and(|t| t.is("!"));
        let open = at + 1 + usize::from(inner);
        if !tokens.get(open).is_some_and(|t| t.is("[")) {
            break;
        }
        let Some(close) = matching(tokens, open) else { break };
        attrs.push(attribute(&tokens[open + 1..close], inner));
        at = close + 1;
    }
    (attrs, at)
}

fn attribute(body: &[Token], inner: bool) -> Attribute {
    let name = body.first().and_then(Token::ident).unwrap_or("");
    let test = match name {
        "test" => body.len() == 1,
        "cfg" => names_test(&body[1..]),
        _ => false,
    };
    let path = (name == "path").then(|| body.iter().find(|t| t.kind == Kind::Str).map(|t| t.text.clone())).flatten();
    Attribute { inner, test, path }
}

/// Whether a `cfg(...)` predicate names `test` outside every `not(...)`.
fn names_test(predicate: &[Token]) -> bool {
    let mut negated_at: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    for (i, t) in predicate.iter().enumerate() {
        match t.text.as_str() {
            "(" => depth += 1,
            ")" => {
                depth = depth.saturating_sub(1);
                negated_at.retain(|&d| d <= depth);
            }
            "not" if predicate.get(i + 1).is_some_and(|n| n.is("(")) => negated_at.push(depth + 1),
            "test" if t.kind == Kind::Ident && negated_at.is_empty() => return true,
            _ => {}
        }
    }
    false
}

/// A `[pub[(...)]] mod name` at `start`: declared (`;`) or inline (`{`).
fn mod_decl(tokens: &[Token], start: usize, attrs: &[Attribute], test: bool) -> Option<ModDecl> {
    let mut at = start;
    if tokens.get(at)?.is("pub") {
        at += 1;
        if tokens.get(at)?.is("(") {
            at = matching(tokens, at)? + 1;
        }
    }
    if !tokens.get(at)?.is("mod") {
        return None;
    }
    let name = tokens.get(at + 1)?.ident()?.to_owned();
    let inline = tokens.get(at + 2)?.is("{");
    let path = attrs.iter().find_map(|a| a.path.clone());
    Some(ModDecl { name, path, test, inline, line: tokens[at].line })
}

/// The index of the bracket closing the one at `open`.
pub fn matching(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        if t.kind != Kind::Punct {
            continue;
        }
        match t.text.as_str() {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Where the item (or statement) starting at `start` ends: after its `;` or its closing `}`, or
/// before the bracket that closes what holds it.
fn item_end(tokens: &[Token], start: usize) -> usize {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(start) {
        if t.kind != Kind::Punct {
            continue;
        }
        match t.text.as_str() {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" if depth == 0 => return i,
            "}" if depth == 1 => return i + 1,
            ")" | "]" | "}" => depth -= 1,
            ";" if depth == 0 => return i + 1,
            _ => {}
        }
    }
    tokens.len()
}
