//! A Rust lexer just good enough to read structure: identifiers, punctuation and string literals,
//! each with its line. Comments are dropped and a literal's text never looks like code, so a
//! `crate::x` or an `fn` in a comment, a string or a raw string is not taken for one.

/// One token: an identifier or keyword, `::`, one punctuation character, a string literal (its
/// raw text between the quotes) or another literal (numbers, characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Ident,
    Punct,
    Str,
    Literal,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub kind: Kind,
    pub text: String,
    pub line: usize,
}

impl Token {
    pub fn is(&self, text: &str) -> bool {
        self.kind != Kind::Str && self.text == text
    }

    pub fn ident(&self) -> Option<&str> {
        (self.kind == Kind::Ident).then_some(self.text.as_str())
    }
}

/// The tokens of `source`.
pub fn lex(source: &str) -> Vec<Token> {
    let mut lexer = Lexer { chars: source.chars().collect(), at: 0, line: 1, out: Vec::new() };
    lexer.run();
    lexer.out
}

struct Lexer {
    chars: Vec<char>,
    at: usize,
    line: usize,
    out: Vec<Token>,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> char {
        self.chars.get(self.at + ahead).copied().unwrap_or('\0')
    }

    /// Moves past one character, counting lines.
    fn bump(&mut self) -> char {
        let c = self.peek(0);
        if c == '\n' {
            self.line += 1;
        }
        self.at += 1;
        c
    }

    fn push(&mut self, kind: Kind, text: String, line: usize) {
        self.out.push(Token { kind, text, line });
    }

    fn run(&mut self) {
        while self.at < self.chars.len() {
            let c = self.peek(0);
            let line = self.line;
            if c.is_whitespace() {
                self.bump();
            } else if c == '/' && self.peek(1) == '/' {
                while self.at < self.chars.len() && self.peek(0) != '\n' {
                    self.bump();
                }
            } else if c == '/' && self.peek(1) == '*' {
                self.block_comment();
            } else if let Some(hashes) = self.raw_string_start() {
                let text = self.raw_string(hashes);
                self.push(Kind::Str, text, line);
            } else if c == '"' || ((c == 'b' || c == 'c') && self.peek(1) == '"') {
                let text = self.string();
                self.push(Kind::Str, text, line);
            } else if c == '\'' || (c == 'b' && self.peek(1) == '\'') {
                self.quote(line);
            } else if c == 'r' && self.peek(1) == '#' && is_ident_start(self.peek(2)) {
                self.at += 2;
                let text = self.ident();
                self.push(Kind::Ident, text, line);
            } else if is_ident_start(c) {
                let text = self.ident();
                self.push(Kind::Ident, text, line);
            } else if c.is_ascii_digit() {
                let text = self.number();
                self.push(Kind::Literal, text, line);
            } else if c == ':' && self.peek(1) == ':' {
                self.at += 2;
                self.push(Kind::Punct, "::".into(), line);
            } else {
                self.bump();
                self.push(Kind::Punct, c.to_string(), line);
            }
        }
    }

    /// `/* ... */`, nested as Rust nests them.
    fn block_comment(&mut self) {
        let mut depth = 0usize;
        while self.at < self.chars.len() {
            if self.peek(0) == '/' && self.peek(1) == '*' {
                depth += 1;
                self.at += 2;
            } else if self.peek(0) == '*' && self.peek(1) == '/' {
                depth -= 1;
                self.at += 2;
                if depth == 0 {
                    return;
                }
            } else {
                self.bump();
            }
        }
    }

    /// The number of `#` of a raw string starting here (`r"`, `r#"`, `br##"`, `cr"`), if one does.
    fn raw_string_start(&self) -> Option<usize> {
        let prefix = match (self.peek(0), self.peek(1)) {
            ('r', _) => 1,
            ('b' | 'c', 'r') => 2,
            _ => return None,
        };
        let hashes = (0..).take_while(|&i| self.peek(prefix + i) == '#').count();
        (self.peek(prefix + hashes) == '"').then_some(hashes)
    }

    fn raw_string(&mut self, hashes: usize) -> String {
        while self.bump() != '"' {}
        let start = self.at;
        loop {
            if self.at >= self.chars.len() {
                return self.chars[start..].iter().collect();
            }
            if self.peek(0) == '"' && (1..=hashes).all(|i| self.peek(i) == '#') {
                let text = self.chars[start..self.at].iter().collect();
                self.at += 1 + hashes;
                return text;
            }
            self.bump();
        }
    }

    /// `"..."`, `b"..."` or `c"..."`, with escapes; the text between the quotes, as written.
    fn string(&mut self) -> String {
        while self.bump() != '"' {}
        let start = self.at;
        while self.at < self.chars.len() && self.peek(0) != '"' {
            if self.bump() == '\\' {
                self.bump();
            }
        }
        let text = self.chars[start..self.at].iter().collect();
        self.bump();
        text
    }

    /// A character literal (`'x'`, `'\n'`, `b'x'`) becomes a literal; a lifetime or a label
    /// (`'a`, `'static`) is dropped.
    fn quote(&mut self, line: usize) {
        if self.peek(0) == 'b' {
            self.bump();
        }
        self.bump();
        if self.peek(0) == '\\' {
            while self.at < self.chars.len() && self.peek(0) != '\'' {
                if self.bump() == '\\' {
                    self.bump();
                }
            }
            self.bump();
            self.push(Kind::Literal, "'c'".into(), line);
        } else if self.peek(1) == '\'' {
            self.at += 2;
            self.push(Kind::Literal, "'c'".into(), line);
        } else {
            self.ident();
        }
    }

    fn ident(&mut self) -> String {
        let start = self.at;
        while is_ident_char(self.peek(0)) {
            self.at += 1;
        }
        self.chars[start..self.at].iter().collect()
    }

    /// A number: digits, letters (suffixes, exponents, hex) and underscores, and a `.` followed by
    /// a digit (`1.5`, but not the range `0..60`).
    fn number(&mut self) -> String {
        let start = self.at;
        while is_ident_char(self.peek(0)) || (self.peek(0) == '.' && self.peek(1).is_ascii_digit()) {
            self.at += 1;
        }
        self.chars[start..self.at].iter().collect()
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}
