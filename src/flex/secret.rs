//! Secrets from `kubernetes.io/secret/*` options: decoded once, never printed, wiped on drop.

use base64::Engine as _;
use std::collections::BTreeMap;
use std::fmt;

/// A secret that is not standard base64: what is wrong, never the value.
#[derive(Debug, thiserror::Error)]
#[error("is not standard base64 ({0})")]
pub struct NotBase64(&'static str);

/// The decoded bytes of one secret key. `Debug` prints `<redacted>`; there is no `Display`.
pub struct Secret(Vec<u8>);

impl Secret {
    /// Decodes kubelet's standard, padded base64; the error never quotes the value.
    pub fn decode(encoded: &str) -> Result<Secret, NotBase64> {
        base64::engine::general_purpose::STANDARD.decode(encoded).map(Secret).map_err(|e| NotBase64(describe(&e)))
    }

    /// The secret's bytes, for the code that needs them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

/// A base64 error without the offending byte (it could be part of the secret).
fn describe(e: &base64::DecodeError) -> &'static str {
    match e {
        base64::DecodeError::InvalidByte(..) => "invalid character",
        base64::DecodeError::InvalidLength(_) => "invalid length",
        base64::DecodeError::InvalidLastSymbol(..) => "invalid last symbol",
        base64::DecodeError::InvalidPadding => "invalid padding",
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

/// The secrets of one call, by key (the part after `kubernetes.io/secret/`).
#[derive(Debug, Default)]
pub struct Secrets(pub BTreeMap<String, Secret>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_never_shows_the_value() {
        let s = Secret::decode("czNjcjN0").unwrap();
        assert_eq!(s.expose(), b"s3cr3t");
        let all = Secrets(BTreeMap::from([("password".to_owned(), s)]));
        let shown = format!("{all:?} {:#?}", all);
        assert!(!shown.contains("s3cr3t") && !shown.contains("czNjcjN0"), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("password"));
    }

    #[test]
    fn bad_base64_error_does_not_quote_the_value() {
        let err = Secret::decode("qq*qq").unwrap_err().to_string();
        assert!(!err.contains('*') && !err.contains("qq"), "{err}");
        assert!(Secret::decode("czNjcjN").is_err(), "unpadded is refused");
    }
}
