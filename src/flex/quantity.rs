//! Kubernetes quantities as byte counts: `64Mi`, `1Gi`, `1G`, `500M`, `1.5Gi`, `1e9`, `4096`.

use crate::engine::quote;

/// Binary and decimal suffixes with their multipliers.
const SUFFIXES: [(&str, u128); 12] = [
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("Pi", 1 << 50),
    ("Ei", 1 << 60),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("E", 1_000_000_000_000_000_000),
];

/// Parses a quantity into bytes, rounding a fractional byte up as Kubernetes does.
/// Zero, negative, milli (`m`) and anything past `u64::MAX` are refused with a reason.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("is empty; write a size such as 64Mi or 1Gi".into());
    }
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    if s.starts_with('-') {
        return Err("is negative; write a size such as 64Mi or 1Gi".into());
    }
    let (number, suffix) = s.split_at(split);
    let (numerator, denominator) = decimal(number)?;
    let multiplier = multiplier(suffix)?;
    let product = numerator.checked_mul(multiplier).ok_or_else(too_large)?;
    let bytes = product.div_ceil(denominator);
    if bytes == 0 {
        return Err("is zero; a volume needs at least one byte".into());
    }
    u64::try_from(bytes).map_err(|_| too_large())
}

fn too_large() -> String {
    format!("is larger than {} bytes", u64::MAX)
}

/// The multiplier of a suffix: none, a binary or decimal one, or an exponent (`e9`, `E3`).
fn multiplier(suffix: &str) -> Result<u128, String> {
    if suffix.is_empty() {
        return Ok(1);
    }
    if let Some((_, m)) = SUFFIXES.iter().find(|(s, _)| *s == suffix) {
        return Ok(*m);
    }
    if let Some(exp) = suffix.strip_prefix(['e', 'E']) {
        let exp: u32 = exp.parse().map_err(|_| format!("has a bad exponent {}", quote(suffix)))?;
        return 10u128.checked_pow(exp).ok_or_else(too_large);
    }
    if suffix == "m" {
        return Err("uses 'm' (milli, a thousandth of a byte); write M or Mi".into());
    }
    Err(format!("has an unknown suffix {}; use Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P or E", quote(suffix)))
}

/// A decimal number `123` or `1.5` as numerator / denominator.
fn decimal(number: &str) -> Result<(u128, u128), String> {
    let bad = || "is not a number followed by an optional unit, such as 64Mi or 1Gi".to_owned();
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err(bad());
    }
    if int.len() + frac.len() > 30 {
        return Err(too_large());
    }
    let digits = format!("{int}{frac}");
    let numerator: u128 = digits.parse().map_err(|_| bad())?;
    let denominator = 10u128.pow(frac.len() as u32);
    Ok((numerator, denominator))
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn accepts_kubernetes_forms() {
        for (text, bytes) in [
            ("64Mi", 64 << 20),
            ("1Gi", 1 << 30),
            ("1G", 1_000_000_000),
            ("500M", 500_000_000),
            ("4096", 4096),
            (" 2Ki ", 2048),
            ("1.5Gi", 3 << 29),
            ("0.5", 1),
            ("1e3", 1000),
            ("1E9", 1_000_000_000),
            ("15Ei", 15 << 60),
        ] {
            assert_eq!(parse_bytes(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn refuses_bad_sizes_with_a_reason() {
        for (text, reason) in [
            ("", "empty"),
            ("0", "zero"),
            ("0Gi", "zero"),
            ("garbage", "not a number"),
            ("12XB", "unknown suffix"),
            ("-1Gi", "negative"),
            ("1-Gi", "unknown suffix"),
            ("100m", "milli"),
            ("16Ei", "larger"),
            ("99999999999999999999999999999999", "larger"),
            ("1e40", "larger"),
            ("1.2.3", "not a number"),
            (".", "not a number"),
            ("1ez", "exponent"),
        ] {
            let err = parse_bytes(text).unwrap_err();
            assert!(err.contains(reason), "{text:?}: {err}");
        }
    }
}
