//! Exec latency of strata-flex (written below).

fn main() {}
