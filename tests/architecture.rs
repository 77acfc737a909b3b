#![allow(clippy::unwrap_used, clippy::expect_used)]
mod architecture_support;
use std::path::Path;

#[test]
fn dump() {
    let a = architecture_support::analyse(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src")).unwrap();
    for c in a.files.circles() {
        println!("{}", a.describe(&a.files, &c));
    }
    for c in a.folders.circles() {
        println!("{}", a.describe(&a.folders, &c));
    }
    let mut f = a.functions.clone();
    f.sort_by_key(|x| std::cmp::Reverse(x.1.lines));
    for (p, f) in f.iter().take(40) {
        println!("{} {}:{} {}", f.lines, p, f.line, f.name);
    }
}
#[test]
fn dump_edges() {
    let a = architecture_support::analyse(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src")).unwrap();
    for (k, v) in &a.evidence {
        println!("EDGE {} -> {} @ {}", k.0, k.1, v);
    }
}
