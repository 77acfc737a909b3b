//! Output of the plugin: kubectl-style tables (headers in capitals, columns padded, `<none>` for
//! what is unknown), or the rows as JSON or YAML.

use super::cli::Format;
use super::error::Error;
use serde::Serialize;

/// Rows of cells under headers.
#[derive(Debug)]
pub struct Table {
    pub headers: &'static [&'static str],
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The table as text, columns three spaces apart; a table with no rows says so.
    pub fn render(&self) -> String {
        if self.rows.is_empty() {
            return "No resources found.\n".to_owned();
        }
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|i| self.rows.iter().map(|r| r[i].chars().count()).chain([self.headers[i].len()]).max().unwrap_or(0))
            .collect();
        let headers: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        let mut out = String::new();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            out.push_str(cells.join("   ").trim_end());
            out.push('\n');
        }
        out
    }
}

/// A cell for something that may be unknown.
pub fn cell(value: Option<&str>) -> String {
    value.unwrap_or("<none>").to_owned()
}

/// The rows in `format`: the table `table` builds (wide or not), each row's `kind/name` as
/// `name` gives it (once each, as `kubectl get -o name`), or the rows themselves as JSON or YAML.
pub fn output<T: Serialize>(
    format: Format,
    rows: &[T],
    table: impl FnOnce(&[T], bool) -> Table,
    name: impl Fn(&T) -> String,
) -> Result<String, Error> {
    match format {
        Format::Table => Ok(table(rows, false).render()),
        Format::Wide => Ok(table(rows, true).render()),
        Format::Name => {
            let mut names: Vec<String> = rows.iter().map(name).collect();
            names.dedup();
            Ok(names.into_iter().map(|n| n + "\n").collect())
        }
        Format::Json => serde_json::to_string_pretty(rows).map(|s| s + "\n").map_err(|e| Error::Encode(e.to_string())),
        Format::Yaml => serde_norway::to_string(rows).map_err(|e| Error::Encode(e.to_string())),
    }
}

/// Bytes as a binary quantity a person reads at a glance (`49.5Gi`), from a Kubernetes
/// quantity (`53115920384`, `50652Mi`).
pub fn quantity(q: Option<&str>) -> String {
    let Some(q) = q else { return "<none>".to_owned() };
    let Ok(bytes) = crate::quantity::parse_rounded_up(q) else { return q.to_owned() };
    human(bytes)
}

pub use crate::quantity::human;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_at_a_glance() {
        assert_eq!(human(0), "0");
        assert_eq!(human(256 << 20), "256Mi");
        assert_eq!(quantity(Some("53115920384")), "49.5Gi");
        assert_eq!(quantity(Some("50652Mi")), "49.5Gi");
        assert_eq!(quantity(Some("1Ti")), "1Ti");
        assert_eq!(quantity(None), "<none>");
    }

    #[test]
    fn tables_pad_columns_and_say_when_empty() {
        let t = Table { headers: &["NAME", "NODE"], rows: vec![vec!["a-long-name".into(), "n1".into()]] };
        assert_eq!(t.render(), "NAME          NODE\na-long-name   n1\n");
        assert_eq!(Table { headers: &["NAME"], rows: vec![] }.render(), "No resources found.\n");
    }
}
