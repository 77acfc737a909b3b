//! Helpers for the metrics tests: find the metrics address in the server's log, scrape
//! `/metrics` over plain HTTP/1.1, and parse the exposition with the Prometheus project's own
//! text-format parser (Python `prometheus_client.parser`, in the venv `scripts/validate-manifests`
//! sets up). A test that cannot run the parser fails; it never skips.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `host:port` the server logged for its metrics, waiting for the line to appear.
pub fn metrics_address(log: &dyn Fn() -> String) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = log();
        if let Some(at) = text.find("metrics at http://") {
            let rest = &text[at + "metrics at http://".len()..];
            return rest.split('/').next().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "the server never logged its metrics address:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET path` on `addr`: the status line, the headers and the body.
pub fn get(addr: &str, path: &str) -> (String, String, String) {
    let mut conn = std::net::TcpStream::connect(addr).expect("connect to the metrics address");
    conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    conn.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_ascii_lowercase(), body.to_owned())
}

/// `/metrics` of the server at `addr`, checked to be a 200 in the Prometheus text format.
pub fn scrape(addr: &str) -> String {
    let (status, headers, body) = get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{headers}\n{body}");
    assert!(headers.contains("content-type: text/plain; version=0.0.4"), "{headers}");
    body
}

/// `/metrics` once its survey (the per-volume gauges) was taken after this call began: scrapes
/// until `strata_survey_timestamp_seconds` is at least the time of the call (each scrape starts
/// a survey when the last is older than `--metrics-survey-seconds`; the tests give 0).
pub fn scrape_surveyed(addr: &str) -> String {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = scrape(addr);
        let taken = body
            .lines()
            .find_map(|l| l.strip_prefix("strata_survey_timestamp_seconds "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        if taken.is_some_and(|t| t >= since) {
            return body;
        }
        assert!(Instant::now() < deadline, "no survey newer than the call after 20 s:\n{body}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One sample as the parser read it.
#[derive(Debug, serde::Deserialize)]
pub struct Sample {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of an exposition.
#[derive(Debug)]
pub struct Samples(pub Vec<Sample>);

impl Samples {
    /// The value of the one sample `name{labels}` (labels given must match; others may exist
    /// only if `labels` names them all). Panics when there is none.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?} in {:#?}", self.names()))
    }

    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: std::collections::BTreeMap<String, String> =
            labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let found: Vec<&Sample> = self.0.iter().filter(|s| s.name == name && s.labels == want).collect();
        assert!(found.len() <= 1, "{name}{labels:?} appears {} times", found.len());
        found.first().map(|s| s.value)
    }

    /// Every sample of `name`, whatever its labels.
    pub fn all(&self, name: &str) -> Vec<&Sample> {
        self.0.iter().filter(|s| s.name == name).collect()
    }

    fn names(&self) -> Vec<String> {
        self.0.iter().map(|s| format!("{}{:?} {}", s.name, s.labels, s.value)).collect()
    }
}

const PARSE: &str = r#"
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        value = s.value if math.isfinite(s.value) else 1e308
        out.append({"name": s.name, "labels": s.labels, "value": value})
print(json.dumps(out))
"#;

/// The venv's python: `STRATA_VENV` or `target/venv`.
fn python() -> PathBuf {
    let venv = std::env::var_os("STRATA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/validate-manifests first (it installs the Prometheus text-format parser)",
        python.display()
    );
    python
}

/// Parses `text` with the Prometheus text-format parser; a parse error fails the test.
pub fn parse(text: &str) -> Samples {
    let mut child = Command::new(python())
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the venv's python");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus text-format parser rejected the exposition:\n{}\n---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    Samples(serde_json::from_slice(&out.stdout).expect("parser output"))
}
