//! Where the client's answers go: a table or indented text for people, the full answer as json
//! or yaml for scripts (`-o`), and an error as one `error: CODE: message` line on stderr.

use super::render;
use crate::program::csi::cli::OutputFormat;
use serde_json::{Value, json};

/// A list's table, normal or wide.
pub type TableView = fn(&Value, bool) -> String;

/// Prints an answer: in `format` if one is asked for, else as `table` (list commands), else as
/// text. `-o name` prints the ids the answer names; an answer that names none prints as text.
pub fn answer(value: &Value, format: Option<OutputFormat>, table: Option<TableView>) {
    let text = match (format, table) {
        (Some(f @ (OutputFormat::Json | OutputFormat::Yaml)), _) => format!("{}\n", encode(value, f)),
        (Some(OutputFormat::Name), _) if !names(value).is_empty() => names(value),
        (Some(OutputFormat::Wide), Some(table)) => table(value, true),
        (_, Some(table)) => table(value, false),
        (_, None) => render::text(value),
    };
    crate::stdout::print(&text);
}

/// The ids an answer names, one a line: a list's items', or the one volume's or snapshot's.
fn names(value: &Value) -> String {
    const IDS: [&str; 3] = ["volume_id", "snapshot_id", "deleted"];
    let id = |v: &Value| IDS.iter().find_map(|k| v[*k].as_str().map(str::to_owned));
    let items = ["volumes", "snapshots"].iter().find_map(|k| value[*k].as_array());
    let ids: Vec<String> = match items {
        Some(items) => items.iter().filter_map(id).collect(),
        None => id(value).into_iter().collect(),
    };
    ids.into_iter().map(|i| i + "\n").collect()
}

/// Prints a failure: one line on stderr, and for `-o` the error object on stdout as well.
pub fn failure(format: Option<OutputFormat>, code: &str, message: &str) {
    let message = one_line(message);
    crate::stdout::error(&format!("error: {code}: {message}"));
    if let Some(f @ (OutputFormat::Json | OutputFormat::Yaml)) = format {
        crate::stdout::print(&format!("{}\n", encode(&json!({"error": {"code": code, "message": message}}), f)));
    }
}

fn encode(value: &Value, format: OutputFormat) -> String {
    match format {
        OutputFormat::Yaml => serde_norway::to_string(value).unwrap_or_default().trim_end().to_owned(),
        _ => serde_json::to_string_pretty(value).unwrap_or_default(),
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
    fn name_output_is_the_ids_an_answer_names() {
        let list = json!({"volumes": [{"volume_id": "a@n"}, {"volume_id": "b@n"}], "next_token": ""});
        assert_eq!(names(&list), "a@n\nb@n\n");
        assert_eq!(names(&json!({"snapshot_id": "s@n", "size_bytes": 1})), "s@n\n");
        assert_eq!(names(&json!({"deleted": "v@n"})), "v@n\n");
        assert_eq!(names(&json!({"ready": true})), "", "info names nothing: it prints as text");
    }

    #[test]
    fn messages_fit_on_one_line() {
        assert_eq!(one_line("first\n  second\n\n"), "first; second");
        assert_eq!(one_line("volume \"x\" does not exist"), "volume \"x\" does not exist");
    }
}
