//! A small YAML emitter for the manifests `migrate-pv` prints: block style, keys in the order
//! given, and every string that a YAML 1.1 reader (Kubernetes' `sigs.k8s.io/yaml`) could take for
//! something else written as a double-quoted (JSON) string.

/// A YAML value: strings, booleans, sequences and mappings with ordered keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Str(String),
    Bool(bool),
    List(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    pub fn str(s: impl Into<String>) -> Node {
        Node::Str(s.into())
    }

    /// A mapping from pairs whose keys are string slices.
    pub fn map<const N: usize>(pairs: [(&str, Node); N]) -> Node {
        Node::Map(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    fn is_empty_collection(&self) -> bool {
        matches!(self, Node::List(l) if l.is_empty()) || matches!(self, Node::Map(m) if m.is_empty())
    }
}

/// The document `node` (a mapping) as YAML text, ending in a newline.
pub fn to_string(node: &Node) -> String {
    let mut out = String::new();
    match node {
        Node::Map(pairs) if !pairs.is_empty() => map(pairs, 0, &mut out),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    out
}

fn map(pairs: &[(String, Node)], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for (key, value) in pairs {
        out.push_str(&pad);
        out.push_str(&scalar(key));
        entry(value, indent, out);
    }
}

/// Writes what follows a key (or a `- ` marker) at `indent`: an inline value or a nested block.
fn entry(value: &Node, indent: usize, out: &mut String) {
    match value {
        Node::Map(pairs) if !pairs.is_empty() => {
            out.push_str(":\n");
            map(pairs, indent + 2, out);
        }
        Node::List(items) if !items.is_empty() => {
            out.push_str(":\n");
            list(items, indent, out);
        }
        other => {
            out.push_str(": ");
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

/// A block sequence at `indent` (Kubernetes style: the dash at the key's column).
fn list(items: &[Node], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for item in items {
        out.push_str(&pad);
        out.push_str("- ");
        match item {
            Node::Map(pairs) if !pairs.is_empty() => {
                let (first_key, first_value) = &pairs[0];
                out.push_str(&scalar(first_key));
                entry(first_value, indent + 2, out);
                map(&pairs[1..], indent + 2, out);
            }
            Node::List(inner) if !inner.is_empty() => {
                out.push('\n');
                list(inner, indent + 2, out);
            }
            other => {
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
    }
}

fn inline(node: &Node) -> String {
    match node {
        Node::Str(s) => scalar(s),
        Node::Bool(b) => b.to_string(),
        n if n.is_empty_collection() => if matches!(n, Node::List(_)) { "[]" } else { "{}" }.to_owned(),
        // Non-empty collections are always written as blocks by the callers.
        Node::List(_) | Node::Map(_) => String::new(),
    }
}

/// `s` plain when no YAML reader can misread it, else as a double-quoted (JSON) string.
fn scalar(s: &str) -> String {
    if plain_is_safe(s) { s.to_owned() } else { serde_json::Value::String(s.to_owned()).to_string() }
}

/// Plain scalars are limited to a letter followed by letters, digits and `.`, `_`, `-`, `/`,
/// and never a YAML 1.1 boolean or null word (`yes`, `off`, `y`, `null`, …).
fn plain_is_safe(s: &str) -> bool {
    const WORDS: [&str; 11] = ["y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf"];
    let mut chars = s.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    starts_with_letter
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
        && !WORDS.contains(&s.to_ascii_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_lists_and_quoting() {
        let doc = Node::map([
            ("apiVersion", Node::str("v1")),
            ("list", Node::List(vec![Node::str("ReadWriteOnce"), Node::str("1Gi")])),
            ("empty", Node::List(vec![])),
            (
                "terms",
                Node::List(vec![Node::map([
                    ("key", Node::str("topology.strata.csi.dev/node")),
                    ("values", Node::List(vec![Node::str("yes")])),
                ])]),
            ),
            ("flag", Node::Bool(true)),
            ("odd key: x", Node::str("a\"b\nc")),
            ("nested", Node::map([("inner", Node::map([("x", Node::str("@home"))]))])),
        ]);
        let text = to_string(&doc);
        assert_eq!(
            text,
            "apiVersion: v1\nlist:\n- ReadWriteOnce\n- \"1Gi\"\nempty: []\nterms:\n- key: topology.strata.csi.dev/node\n  \
             values:\n  - \"yes\"\nflag: true\n\"odd key: x\": \"a\\\"b\\nc\"\nnested:\n  inner:\n    x: \"@home\"\n"
        );
        let back: serde_json::Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(back["terms"][0]["values"][0], "yes");
        assert_eq!(back["odd key: x"], "a\"b\nc");
        assert_eq!(back["list"][1], "1Gi");
        assert_eq!(back["nested"]["inner"]["x"], "@home");
    }

    #[test]
    fn words_a_yaml_1_1_reader_would_misread_are_quoted() {
        for s in ["yes", "No", "ON", "y", "null", "true", "", "1", "0x10", "1e3", "~", "-a", "a b", "a:b", "#x"] {
            assert!(!plain_is_safe(s), "{s:?}");
        }
        for s in ["v1", "ext4", "strata.csi.dev", "ReadWriteOnce", "app.kubernetes.io/name", "pv-1"] {
            assert!(plain_is_safe(s), "{s:?}");
        }
    }
}
