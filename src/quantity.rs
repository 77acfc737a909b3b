//! Sizes, one way for every front-end: Kubernetes quantities (the grammar of
//! `k8s.io/apimachinery/pkg/api/resource`: `64Mi`, `1.5Gi`, `500M`, `1e9`, `+2Ki`) read as byte
//! counts, and byte counts written for people (`1.5Gi`, or `1.5Gi (1610612736 bytes)` where a
//! script may want the exact figure). CSI's command line, the FlexVolume options and
//! `kubectl strata` all read and write sizes here.
//!
//! As in Kubernetes, a quantity that is not a whole number of bytes is rounded up (`1.5` is 2
//! bytes). The suffixes `m`, `u` and `n` (milli, micro, nano) are valid Kubernetes but mean a
//! fraction of a byte: for a size they are nearly always a typo for `M`, so [`parse_bytes`]
//! refuses them with that hint, while [`parse_rounded_up`] (for quantities Kubernetes itself
//! wrote, such as `966367641600m`) takes them.

use crate::quote::quote;

/// Binary suffixes with their powers of two.
const BINARY: [(&str, u32); 6] = [("Ki", 10), ("Mi", 20), ("Gi", 30), ("Ti", 40), ("Pi", 50), ("Ei", 60)];
/// Decimal suffixes with their powers of ten (negative: a fraction).
const DECIMAL: [(&str, i32); 9] =
    [("n", -9), ("u", -6), ("m", -3), ("k", 3), ("M", 6), ("G", 9), ("T", 12), ("P", 15), ("E", 18)];
/// More significant digits than any byte count has (u64 has 20): refused as too large.
const MAX_DIGITS: usize = 30;
/// The largest power of ten a `u128` holds.
const MAX_POW10: u32 = 38;

/// A size given by a person (a flag, a FlexVolume option) in bytes, rounded up to a whole byte.
/// Zero, negative, fraction-of-a-byte suffixes (`100m`) and anything past `u64::MAX` are refused
/// with a reason that reads after the quoted text (`"1Xi" has an unknown suffix ...`).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let q = Parsed::read(text)?;
    if let Some(s) = ["m", "u", "n"].into_iter().find(|s| q.suffix == *s) {
        let name = match s {
            "m" => "milli",
            "u" => "micro",
            _ => "nano",
        };
        return Err(format!("uses '{s}' ({name}: a fraction of a byte); for a size write M (10^6) or Mi (2^20)"));
    }
    match q.bytes()? {
        0 => Err("is zero; a volume needs at least one byte".into()),
        n => Ok(n),
    }
}

/// Any non-negative Kubernetes quantity in bytes, rounded up (`966367641600m` is 966367642).
pub fn parse_rounded_up(text: &str) -> Result<u64, String> {
    Parsed::read(text)?.bytes()
}

/// `bytes` in the largest binary unit that keeps it at least 1: exact where it divides (`64Mi`),
/// else with one decimal (`49.5Gi`); below 1Ki the plain number.
pub fn human(bytes: u64) -> String {
    let Some((name, shift)) = BINARY.iter().rev().find(|(_, s)| bytes >> s > 0) else {
        return bytes.to_string();
    };
    let unit = 1u64 << shift;
    if bytes % unit == 0 {
        return format!("{}{name}", bytes / unit);
    }
    format!("{:.1}{name}", bytes as f64 / unit as f64)
}

/// `bytes` for a message: the readable size and the exact count (`1.5Gi (1610612736 bytes)`),
/// or just the count below 1Ki (`512 bytes`).
pub fn with_bytes(bytes: u64) -> String {
    match human(bytes) {
        h if bytes < 1024 => format!("{h} bytes"),
        h => format!("{h} ({bytes} bytes)"),
    }
}

/// A quantity taken apart: `numerator / denominator` before the suffix, and the suffix.
#[derive(Debug)]
struct Parsed<'a> {
    numerator: u128,
    denominator: u128,
    suffix: &'a str,
}

impl<'a> Parsed<'a> {
    fn read(text: &'a str) -> Result<Parsed<'a>, String> {
        let s = text.trim();
        if s.is_empty() {
            return Err("is empty; write a size such as 64Mi or 1Gi".into());
        }
        let unsigned = match s.as_bytes()[0] {
            b'-' => return Err("is negative; write a size such as 64Mi or 1Gi".into()),
            b'+' => &s[1..],
            _ => s,
        };
        let split = unsigned.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(unsigned.len());
        let (number, suffix) = unsigned.split_at(split);
        let (numerator, denominator) = decimal(number)?;
        Ok(Parsed { numerator, denominator, suffix })
    }

    /// The value in whole bytes, rounded up.
    fn bytes(&self) -> Result<u64, String> {
        let (num, den) = scale(self.numerator, self.denominator, self.suffix)?;
        u64::try_from(num.div_ceil(den)).map_err(|_| too_large())
    }
}

/// `numerator / denominator` times the suffix's multiplier, as a new fraction.
fn scale(numerator: u128, denominator: u128, suffix: &str) -> Result<(u128, u128), String> {
    let times = |m: u128| numerator.checked_mul(m).map(|n| (n, denominator)).ok_or_else(too_large);
    if suffix.is_empty() {
        return Ok((numerator, denominator));
    }
    if let Some((_, shift)) = BINARY.iter().find(|(s, _)| *s == suffix) {
        return times(1u128 << shift);
    }
    let exp = match DECIMAL.iter().find(|(s, _)| *s == suffix) {
        Some((_, e)) => *e,
        None => exponent(suffix)?,
    };
    if exp >= 0 {
        let m = 10u128.checked_pow(exp.unsigned_abs()).ok_or_else(too_large)?;
        return if numerator == 0 { Ok((0, 1)) } else { times(m) };
    }
    // A negative power: a value below one byte once it passes the digits a number may have.
    let down = exp.unsigned_abs().min(MAX_POW10 - 8);
    Ok((numerator, denominator.saturating_mul(10u128.pow(down))))
}

/// The exponent of `e3`, `E-2`, `e+9`.
fn exponent(suffix: &str) -> Result<i32, String> {
    let unknown = || {
        format!(
            "has an unknown suffix {}; use Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E or an exponent (1e9)",
            quote(suffix)
        )
    };
    let digits = suffix.strip_prefix(['e', 'E']).ok_or_else(unknown)?;
    let exp: i32 = digits.parse().map_err(|_| format!("has a bad exponent {}", quote(suffix)))?;
    if exp > MAX_POW10 as i32 {
        return Err(too_large());
    }
    Ok(exp)
}

/// `123`, `1.5`, `1.` or `.5` as numerator / denominator.
fn decimal(number: &str) -> Result<(u128, u128), String> {
    let bad = || "is not a number followed by an optional unit, such as 64Mi or 1Gi".to_owned();
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err(bad());
    }
    let digits = format!("{int}{frac}");
    let significant = digits.trim_start_matches('0');
    if significant.len() > MAX_DIGITS {
        return Err(too_large());
    }
    if frac.len() > MAX_DIGITS {
        return Err(format!("has more than {MAX_DIGITS} decimal places"));
    }
    let numerator: u128 = if significant.is_empty() { 0 } else { significant.parse().map_err(|_| bad())? };
    let denominator = 10u128.pow(u32::try_from(frac.len()).map_err(|_| bad())?);
    Ok((numerator, denominator))
}

fn too_large() -> String {
    format!("is larger than {} bytes", u64::MAX)
}

#[cfg(test)]
mod tests;
