//! Where the client's answers go: a table or indented text for people, the full answer as json
//! or yaml for scripts (`-o`), and an error as one `error: CODE: message` line on stderr.

use super::render;
use crate::csi::cli::OutputFormat;
use serde_json::{Value, json};

/// Prints an answer: in `format` if one is asked for, else as `table` (list commands), else as text.
pub fn answer(value: &Value, format: Option<OutputFormat>, table: Option<fn(&Value) -> String>) {
    match (format, table) {
        (Some(f), _) => crate::stdout::print(&format!("{}\n", encode(value, f))),
        (None, Some(table)) => crate::stdout::print(&table(value)),
        (None, None) => crate::stdout::print(&render::text(value)),
    }
}

/// Prints a failure: one line on stderr, and for `-o` the error object on stdout as well.
pub fn failure(format: Option<OutputFormat>, code: &str, message: &str) {
    let message = one_line(message);
    crate::stdout::error(&format!("error: {code}: {message}"));
    if let Some(f) = format {
        crate::stdout::print(&format!("{}\n", encode(&json!({"error": {"code": code, "message": message}}), f)));
    }
}

fn encode(value: &Value, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => serde_json::to_string_pretty(value).unwrap_or_default(),
        OutputFormat::Yaml => serde_norway::to_string(value).unwrap_or_default().trim_end().to_owned(),
    }
}

/// `message` on one line: its lines joined with `; `.
fn one_line(message: &str) -> String {
    message.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_carry_the_full_answer() {
        let v = json!({"volumes": [{"volume_id": "v@n", "capacity_bytes": 1024}], "next_token": ""});
        let from_json: Value = serde_json::from_str(&encode(&v, OutputFormat::Json)).unwrap();
        let from_yaml: Value = serde_norway::from_str(&encode(&v, OutputFormat::Yaml)).unwrap();
        assert_eq!((from_json, from_yaml), (v.clone(), v));
    }

    #[test]
    fn messages_fit_on_one_line() {
        assert_eq!(one_line("first\n  second\n\n"), "first; second");
        assert_eq!(one_line("volume \"x\" does not exist"), "volume \"x\" does not exist");
    }
}
