//! Bounded quoting of untrusted input for error messages and logs: a huge id, path or option
//! never overflows a client's metadata limit (gRPC clients refuse more than 8 KiB).

use std::path::Path;

/// The most bytes of escaped text a quote carries before it is cut short.
pub const QUOTE_MAX: usize = 256;

/// `s` in double quotes with control characters, quotes and backslashes escaped (as `{:?}`
/// does), at most [`QUOTE_MAX`] bytes of it; a longer one is cut on a character boundary and
/// followed by `…`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(QUOTE_MAX) + 8);
    out.push('"');
    let mut cut = false;
    for c in s.chars() {
        let escaped: String = c.escape_debug().collect();
        if out.len() - 1 + escaped.len() > QUOTE_MAX {
            cut = true;
            break;
        }
        out.push_str(&escaped);
    }
    out.push('"');
    if cut {
        out.push('…');
    }
    out
}

/// `text` that is already escaped (the `{:?}` form of a map, say) bounded like [`quote`], without
/// quoting it again.
pub fn clip(text: &str) -> String {
    if text.len() <= QUOTE_MAX {
        return text.to_owned();
    }
    let mut end = QUOTE_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// [`quote`] of a path; bytes that are not UTF-8 show as U+FFFD.
pub fn quote_path(p: &Path) -> String {
    quote(&p.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_are_quoted_whole() {
        assert_eq!(quote("pvc-1"), "\"pvc-1\"");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote_path(Path::new("/var/lib/kubelet/x")), "\"/var/lib/kubelet/x\"");
    }

    #[test]
    fn control_characters_and_quotes_are_escaped() {
        assert_eq!(quote("a\0b\n\"c\\"), r#""a\0b\n\"c\\""#);
        assert_eq!(quote("\u{1b}[31m"), r#""\u{1b}[31m""#);
    }

    #[test]
    fn long_input_is_bounded_with_an_ellipsis() {
        let q = quote(&"x".repeat(10_000));
        assert_eq!(q, format!("\"{}\"…", "x".repeat(QUOTE_MAX)));
        let exact = quote(&"y".repeat(QUOTE_MAX));
        assert!(!exact.ends_with('…'), "exactly the bound is not cut");
    }

    #[test]
    fn clip_bounds_escaped_text_without_quoting_it_again() {
        assert_eq!(clip(r#"{"k": "v"}"#), r#"{"k": "v"}"#);
        let long = format!("{:?}", "ü".repeat(1000));
        let clipped = clip(&long);
        assert!(clipped.len() <= QUOTE_MAX + '…'.len_utf8() && clipped.ends_with('…'), "{clipped}");
    }

    #[test]
    fn the_bound_holds_after_escaping_and_on_char_boundaries() {
        for s in ["\u{1}".repeat(1000), "ü".repeat(1000), "日本".repeat(500), "a😀".repeat(300)] {
            let q = quote(&s);
            assert!(q.len() <= QUOTE_MAX + "\"\"…".len(), "{} bytes", q.len());
            assert!(q.ends_with("\"…"), "{q}");
        }
    }
}
