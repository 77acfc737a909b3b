//! Which file imports which: every `use` (a tree: `use crate::a::{b, c::{self, D}}`) and every
//! path in code (`crate::x::y()`, `super::z::W`, `child::f()`, `alias::g()`), resolved to the
//! file that defines what it names. A name a module only re-exports (`pub use x::Y`, or a plain
//! `use` a child reaches through `super::`) is followed to the file that defines it; a name the
//! reader cannot follow (made by a macro, say) counts for the module's own file. Method calls and
//! field accesses are not paths: a type counts where it is defined, whichever file holds its
//! `impl` blocks.

use super::lex::{Kind, Token};
use super::source::{Crate, File};
use std::collections::{BTreeMap, BTreeSet};

/// One import of `from` that names something of `to`, at a line of `from` (files are indices
/// into [`Crate::files`]).
#[derive(Debug, Clone)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub line: usize,
}

/// What one file imports and defines.
#[derive(Debug, Default)]
struct Names {
    /// `use` leaves: the name they bring in and the path they name.
    aliases: BTreeMap<String, Vec<String>>,
    /// `use path::*`.
    globs: Vec<Vec<String>>,
    /// Every path used (use leaves and paths in code), with its line.
    paths: Vec<(Vec<String>, usize)>,
    /// The names of the items defined at the file's top.
    defined: BTreeSet<String>,
}

/// Where a path leads: a module, or an item of some file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Module(usize),
    Item(usize),
}

/// Every import edge between two different files of the library (programs under `src/bin/` and
/// test files are not read).
pub fn edges(krate: &Crate) -> Vec<Edge> {
    let names: Vec<Names> = krate.files.iter().map(|f| names(&f.tokens)).collect();
    let resolver = Resolver { krate, names: &names };
    let mut edges = Vec::new();
    for (from, file) in krate.files.iter().enumerate() {
        if file.test || file.program {
            continue;
        }
        for (path, line) in &names[from].paths {
            let to = match resolver.resolve(from, path, &mut BTreeSet::new()) {
                Some(Target::Module(f) | Target::Item(f)) => f,
                None => continue,
            };
            if to != from && !krate.files[to].test {
                edges.push(Edge { from, to, line: *line });
            }
        }
    }
    edges
}

/// Whether `ancestor`'s module holds `file`'s (a strict prefix of its path).
pub fn is_ancestor(ancestor: &File, file: &File) -> bool {
    ancestor.module.len() < file.module.len() && file.module.starts_with(&ancestor.module)
}

fn names(tokens: &[Token]) -> Names {
    let mut names = Names::default();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        if t.is("use") && !tokens.get(i + 1).is_some_and(|n| n.is("<")) {
            i = use_tree(tokens, i + 1, &mut Vec::new(), &mut names);
            continue;
        }
        if depth == 0 {
            defined_name(tokens, i, &mut names.defined);
        }
        if t.kind == Kind::Ident && starts_path(tokens, i) {
            let (path, next) = code_path(tokens, i);
            names.paths.push((path, t.line));
            i = next;
            continue;
        }
        match t.text.as_str() {
            "{" if t.kind == Kind::Punct => depth += 1,
            "}" if t.kind == Kind::Punct => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    names
}

/// The name an item defines when `fn`, `struct`, `enum`, `trait`, `type`, `const`, `static`,
/// `union`, `mod` or `macro_rules!` is at `i`.
fn defined_name(tokens: &[Token], i: usize, defined: &mut BTreeSet<String>) {
    const KEYWORDS: [&str; 9] = ["fn", "struct", "enum", "trait", "type", "const", "static", "union", "mod"];
    let t = &tokens[i];
    let name_at = if KEYWORDS.iter().any(|k| t.is(k)) {
        i + 1
    } else if t.is("macro_rules") && tokens.get(i + 1).is_some_and(|n| n.is("!")) {
        i + 2
    } else {
        return;
    };
    let name_at = if tokens.get(name_at).is_some_and(|n| n.is("mut")) { name_at + 1 } else { name_at };
    if let Some(name) = tokens.get(name_at).and_then(Token::ident) {
        defined.insert(name.to_owned());
    }
}

/// Whether a path of two or more segments starts at `i`: `a::b`, not preceded by `::`.
fn starts_path(tokens: &[Token], i: usize) -> bool {
    let after = tokens.get(i + 1).is_some_and(|t| t.is("::"));
    let next_is_name = tokens.get(i + 2).is_some_and(|t| t.kind == Kind::Ident);
    let before = i > 0 && (tokens[i - 1].is("::") || tokens[i - 1].is("$") && tokens[i].text != "crate");
    after && next_is_name && !before
}

/// The path at `i` (its identifiers), and the index after it.
fn code_path(tokens: &[Token], mut i: usize) -> (Vec<String>, usize) {
    let mut path = vec![tokens[i].text.clone()];
    while tokens.get(i + 1).is_some_and(|t| t.is("::")) {
        match tokens.get(i + 2).and_then(Token::ident) {
            Some(name) => path.push(name.to_owned()),
            None => break,
        }
        i += 2;
    }
    (path, i + 1)
}

/// Reads a use tree at `i` below `prefix`, up to its `;` (or the `,` or `}` ending a subtree);
/// returns the index after it.
fn use_tree(tokens: &[Token], mut i: usize, prefix: &mut Vec<String>, names: &mut Names) -> usize {
    let depth = prefix.len();
    if tokens.get(i).is_some_and(|t| t.is("::")) {
        i += 1;
    }
    while i < tokens.len() {
        let t = &tokens[i];
        if t.is("{") {
            i += 1;
            while !tokens.get(i).is_none_or(|t| t.is("}")) {
                i = use_tree(tokens, i, prefix, names);
                if tokens.get(i).is_some_and(|t| t.is(",")) {
                    i += 1;
                }
            }
            i += 1;
            break;
        } else if t.is("*") {
            names.globs.push(prefix.clone());
            i += 1;
            break;
        } else if let Some(name) = t.ident() {
            let next = tokens.get(i + 1);
            if next.is_some_and(|n| n.is("::")) {
                prefix.push(name.to_owned());
                i += 2;
                continue;
            }
            let mut path = prefix.clone();
            if name != "self" {
                path.push(name.to_owned());
            }
            let (alias, after) = match next {
                Some(n) if n.is("as") => (tokens.get(i + 2).map_or("_", |a| a.text.as_str()), i + 3),
                _ => (path.last().map_or("", String::as_str), i + 1),
            };
            if alias != "_" {
                names.aliases.insert(alias.to_owned(), path.clone());
            }
            names.paths.push((path, t.line));
            i = after;
            break;
        } else {
            break;
        }
    }
    prefix.truncate(depth);
    if depth == 0 {
        while tokens.get(i).is_some_and(|t| !t.is(";")) {
            i += 1;
        }
        i += 1;
    }
    i
}

struct Resolver<'a> {
    krate: &'a Crate,
    names: &'a [Names],
}

impl Resolver<'_> {
    /// Where `path`, written in file `from`, leads; `None` for another crate's.
    fn resolve(&self, from: usize, path: &[String], seen: &mut BTreeSet<(usize, String)>) -> Option<Target> {
        let (first, rest) = path.split_first()?;
        let module = &self.krate.files[from].module;
        let start = match first.as_str() {
            "crate" => Target::Module(self.module(&[])?),
            "self" => Target::Module(from),
            "super" => {
                let supers = path.iter().take_while(|s| *s == "super").count();
                let up = module.len().checked_sub(supers)?;
                return self.walk(self.module(&module[..up])?, &path[supers..], seen);
            }
            name if self.krate.files[from].children.contains(name) => Target::Module(self.child(from, name)?),
            name if self.names[from].aliases.contains_key(name) => self.alias(from, name, seen)?,
            _ => return None,
        };
        match start {
            Target::Module(m) => self.walk(m, rest, seen),
            item => Some(item),
        }
    }

    /// Follows `path` down from module `m`'s file.
    fn walk(&self, mut m: usize, path: &[String], seen: &mut BTreeSet<(usize, String)>) -> Option<Target> {
        for name in path {
            match self.child(m, name) {
                Some(child) => m = child,
                None => return Some(self.item(m, name, seen)),
            }
        }
        Some(Target::Module(m))
    }

    /// Where item `name` of file `file` is defined: there, or where an import of it leads.
    fn item(&self, file: usize, name: &str, seen: &mut BTreeSet<(usize, String)>) -> Target {
        let names = &self.names[file];
        if names.defined.contains(name) || !seen.insert((file, name.to_owned())) {
            return Target::Item(file);
        }
        if names.aliases.contains_key(name) {
            return self.alias(file, name, seen).unwrap_or(Target::Item(file));
        }
        for glob in &names.globs {
            if let Some(Target::Module(m)) = self.resolve(file, glob, seen) {
                let names = &self.names[m];
                if names.defined.contains(name) || names.aliases.contains_key(name) {
                    return self.item(m, name, seen);
                }
            }
        }
        Target::Item(file)
    }

    /// Where the `use` that brought `name` into `file` leads.
    fn alias(&self, file: usize, name: &str, seen: &mut BTreeSet<(usize, String)>) -> Option<Target> {
        let path = self.names[file].aliases.get(name)?;
        if !seen.insert((file, format!("use {name}"))) {
            return None;
        }
        self.resolve(file, path, seen)
    }

    fn module(&self, path: &[String]) -> Option<usize> {
        self.krate.by_module.get(path).copied()
    }

    fn child(&self, m: usize, name: &str) -> Option<usize> {
        let mut path = self.krate.files[m].module.clone();
        path.push(name.to_owned());
        self.module(&path)
    }
}
