//! The project's performance targets, checked against a report.

use super::report::{Driver, Goal, Report};

/// The label of the self-started strata server in a report.
pub const SELF_LABEL: &str = "strata (self-started)";

/// Every target the report has figures for.
pub fn evaluate(r: &Report) -> Vec<Goal> {
    let mut out = Vec::new();
    if let Some(d) = r.drivers.iter().find(|d| d.label == SELF_LABEL) {
        out.extend(csi_goals(d));
    }
    if let Some(l) = &r.loop_ext4 {
        out.push(Goal::below("loop ext4 create+stage+unstage+delete / bare tools (p50)", l.ratio_p50, 1.5, "x", true));
    }
    for init in r.flex.iter().flat_map(|f| f.rows.iter().filter(|x| x.what == "init")) {
        let kind = if init.static_binary { "static" } else { "dynamic" };
        let name = format!("strata-flex init p50 ({}, {kind})", init.program);
        out.push(Goal::below(&name, init.latency.p50_us / 1e3, 1.0, "ms", false));
    }
    out
}

fn csi_goals(d: &Driver) -> Vec<Goal> {
    let mut out = Vec::new();
    let ms = |us: f64| us / 1e3;
    if let Some(c) = d.cycles.iter().find(|c| c.class == "dir") {
        out.push(Goal::below("dir node cycle p50, no other volumes", ms(c.cycle.p50_us), 1.0, "ms", false));
    }
    if let Some(a) = &d.at_scale {
        let name = format!("dir node cycle p50 with {} other volumes", a.population);
        out.push(Goal::below(&name, ms(a.cycle.cycle.p50_us), 1.0, "ms", false));
        out.push(Goal::below("dir node cycle p50 at scale / no other volumes", a.ratio_p50, 1.2, "x", true));
    }
    if let Some(cd) = &d.create_delete {
        out.push(Goal::below("CreateVolume+DeleteVolume dir p50 (durable)", ms(cd.pair.p50_us), 1.0, "ms", false));
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    if let Some(m) = d.memory.at_rest {
        out.push(Goal::below("server RSS at rest", mib(m.rss_kib), 8.0, "MiB", false));
    }
    if let (Some(m), Some(a)) = (d.memory.after_population, &d.at_scale) {
        let name = format!("server RSS with {} volumes", a.population);
        out.push(Goal::below(&name, mib(m.rss_kib), 16.0, "MiB", false));
    }
    out
}
