//! How long each function is: from the line of its `fn` to the line of its closing brace. A
//! function inside another counts on its own, and within the other's lines too; closures are
//! their function's.

use super::lex::{Kind, Token};
use super::source::matching;

/// One function with a body.
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub line: usize,
    pub lines: usize,
}

/// The functions with a body among `tokens` (a trait's declarations without one are skipped).
pub fn functions(tokens: &[Token]) -> Vec<Function> {
    let mut found = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if !t.is("fn") {
            continue;
        }
        let Some(name) = tokens.get(i + 1).and_then(Token::ident) else { continue };
        let Some(open) = body(tokens, i + 2) else { continue };
        let Some(close) = matching(tokens, open) else { continue };
        found.push(Function { name: name.to_owned(), line: t.line, lines: tokens[close].line - t.line + 1 });
    }
    found
}

/// The `{` opening the body of the function whose signature goes on at `i`: the first brace
/// outside its parentheses and brackets; `None` when a `;` ends the signature first.
fn body(tokens: &[Token], i: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (at, t) in tokens.iter().enumerate().skip(i) {
        if t.kind != Kind::Punct {
            continue;
        }
        match t.text.as_str() {
            "(" | "[" => depth += 1,
            ")" | "]" => depth = depth.saturating_sub(1),
            "{" if depth == 0 => return Some(at),
            ";" if depth == 0 => return None,
            _ => {}
        }
    }
    None
}
