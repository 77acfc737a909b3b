//! The quantity grammar against what Kubernetes accepts, and sizes as people read them.

use super::*;

#[test]
fn kubernetes_forms_are_bytes() {
    for (text, bytes) in [
        ("64Mi", 64 << 20),
        ("1Gi", 1 << 30),
        ("1.5Gi", 3 << 29),
        ("1G", 1_000_000_000),
        ("500M", 500_000_000),
        ("1e9", 1_000_000_000),
        ("1E9", 1_000_000_000),
        ("1e+3", 1000),
        ("2.5e3", 2500),
        ("4096", 4096),
        (" 2Ki ", 2048),
        ("+2Ki", 2048),
        ("1.", 1),
        (".5Ki", 512),
        ("1E", 1_000_000_000_000_000_000),
        ("15Ei", 15 << 60),
        ("0.5", 1),
        ("1.5", 2),
        ("1e-3", 1),
        ("00012k", 12_000),
    ] {
        assert_eq!(parse_bytes(text), Ok(bytes), "{text}");
    }
}

#[test]
fn bad_sizes_are_refused_with_a_reason() {
    for (text, reason) in [
        ("", "empty"),
        ("0", "zero"),
        ("0Gi", "zero"),
        ("0e9", "zero"),
        ("garbage", "not a number"),
        ("12XB", "unknown suffix"),
        ("-1Gi", "negative"),
        ("1-Gi", "unknown suffix"),
        ("100m", "milli"),
        ("5u", "micro"),
        ("5n", "nano"),
        ("16Ei", "larger"),
        ("99999999999999999999999999999999", "larger"),
        ("1e40", "larger"),
        ("1e20", "larger"),
        ("1.2.3", "not a number"),
        (".", "not a number"),
        ("1ez", "exponent"),
        ("1e1.5", "exponent"),
        ("1 Gi", "unknown suffix"),
    ] {
        let err = parse_bytes(text).unwrap_err();
        assert!(err.contains(reason), "{text:?}: {err}");
    }
}

#[test]
fn quantities_kubernetes_wrote_round_up() {
    // What the API server makes of 0.9Gi, and a CSIStorageCapacity in bytes.
    assert_eq!(parse_rounded_up("966367641600m"), Ok(966_367_642));
    assert_eq!(parse_rounded_up("53115920384"), Ok(53_115_920_384));
    assert_eq!(parse_rounded_up("0"), Ok(0));
    assert_eq!(parse_rounded_up("1e-50"), Ok(1));
    assert!(parse_rounded_up("-1").is_err());
}

#[test]
fn sizes_read_at_a_glance() {
    assert_eq!(human(0), "0");
    assert_eq!(human(512), "512");
    assert_eq!(human(1024), "1Ki");
    assert_eq!(human(256 << 20), "256Mi");
    assert_eq!(human(3 << 29), "1.5Gi");
    assert_eq!(human(53_115_920_384), "49.5Gi");
    assert_eq!(human(u64::MAX), "16.0Ei");
    assert_eq!(with_bytes(3 << 29), "1.5Gi (1610612736 bytes)");
    assert_eq!(with_bytes(512), "512 bytes");
    for bytes in [1u64, 1024, 64 << 20, 3 << 29, 10 << 40] {
        assert_eq!(parse_bytes(&human(bytes)), Ok(bytes), "an exact size reads back");
    }
}
