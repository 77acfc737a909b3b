//! Reads a crate's `src/` for `tests/architecture.rs`: its files and modules, their imports, and
//! their functions' lengths.

pub mod functions;
pub mod graph;
pub mod imports;
pub mod lex;
pub mod source;

use graph::Graph;
use std::collections::BTreeMap;
use std::path::Path;

/// What the rules are checked on.
#[derive(Debug)]
pub struct Analysis {
    /// Import edges between files (`src/a.rs` -> `src/b.rs`), but a file's imports of its own
    /// ancestors' items.
    pub files: Graph,
    /// Import edges between top-level modules (`csi` -> `engine`).
    pub folders: Graph,
    /// For each edge of either graph, the first import that makes it (`src/a.rs:12`).
    pub evidence: BTreeMap<(String, String), String>,
    /// Every function outside test code: its file, name, first line and length.
    pub functions: Vec<(String, functions::Function)>,
    /// The crate itself: its files, their modules and tokens outside test code.
    pub krate: source::Crate,
}

/// Reads the crate whose `src/` is `src`.
pub fn analyse(src: &Path) -> Result<Analysis, String> {
    let krate = source::read(src)?;
    let mut analysis = Analysis {
        files: Graph::default(),
        folders: Graph::default(),
        evidence: BTreeMap::new(),
        functions: vec![],
        krate: source::Crate { files: vec![], by_module: BTreeMap::new() },
    };
    for edge in imports::edges(&krate) {
        let (from, to) = (&krate.files[edge.from], &krate.files[edge.to]);
        let at = format!("{}:{}", from.path, edge.line);
        if !imports::is_ancestor(to, from) {
            analysis.files.add(&from.path, &to.path);
            analysis.evidence.entry((from.path.clone(), to.path.clone())).or_insert_with(|| at.clone());
        }
        if let (Some(a), Some(b)) = (from.module.first(), to.module.first()) {
            if a != b {
                analysis.folders.add(a, b);
                analysis.evidence.entry((a.clone(), b.clone())).or_insert(at);
            }
        }
    }
    for file in krate.files.iter().filter(|f| !f.test) {
        let found = functions::functions(&file.tokens);
        analysis.functions.extend(found.into_iter().map(|f| (file.path.clone(), f)));
    }
    analysis.krate = krate;
    Ok(analysis)
}

impl Analysis {
    /// A circle in words: its members, and the imports between them with where each is made.
    pub fn describe(&self, graph: &Graph, circle: &[String]) -> String {
        let mut lines = vec![format!("circle of {}:", circle.join(", "))];
        for from in circle {
            for to in circle.iter().filter(|to| graph.has(from, to)) {
                let at = self.evidence.get(&(from.clone(), to.clone())).map_or("", String::as_str);
                lines.push(format!("    {from} -> {to} (at {at})"));
            }
        }
        lines.join("\n")
    }
}
