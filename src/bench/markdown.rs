//! The report as markdown: one table per part, latencies in milliseconds, ratios against floors.

use super::report::{
    AtScale, CycleFigures, Driver, Flex, Floor, Goal, LoopExt4, Meta, Report, StatsFigure, Throughput,
};
use super::stats::{Summary, ratio};
use std::fmt::Write;

/// Renders the whole report.
pub fn render(r: &Report) -> String {
    let mut out = header(&r.meta);
    let bind = r.floor.as_ref().map_or(0.0, |f| f.bind_pair.p50_us);
    if let Some(f) = &r.floor {
        out += &floor(f);
    }
    for d in &r.drivers {
        out += &driver(d, bind);
    }
    if let Some(f) = &r.flex {
        out += &flex(f);
    }
    if let Some(l) = &r.loop_ext4 {
        out += &loop_ext4(l);
    }
    if !r.targets.is_empty() {
        out += &goals(&r.targets);
    }
    out
}

fn header(m: &Meta) -> String {
    let l = |a: [f64; 3]| format!("{:.2} {:.2} {:.2}", a[0], a[1], a[2]);
    format!(
        "# strata bench {}\n\nkernel {}, {} cpus, {} mounts at start, {:.1} s; load average before {}, after {}\n",
        m.version,
        m.kernel,
        m.cpus,
        m.mounts_before,
        m.seconds,
        l(m.load_before),
        l(m.load_after)
    )
}

/// A row: name, p50 and p99 in ms, n, and a last column.
pub fn row(name: &str, s: &Summary, last: &str) -> String {
    format!("| {name} | {:.3} | {:.3} | {} | {last} |\n", s.p50_us / 1e3, s.p99_us / 1e3, s.n)
}

/// A row of a driver table: like [`row`], with the server's CPU time per operation.
pub fn row_cpu(name: &str, s: &Summary, cpu: Option<f64>, last: &str) -> String {
    let cpu = cpu.map_or_else(|| "-".to_owned(), |c| format!("{c:.0}"));
    format!("| {name} | {:.3} | {:.3} | {} | {cpu} | {last} |\n", s.p50_us / 1e3, s.p99_us / 1e3, s.n)
}

const DRIVER_HEAD: &str =
    "| figure | p50 ms | p99 ms | n | server CPU µs/op | p50 / bind pair |\n|---|---:|---:|---:|---:|---:|\n";

fn times(x: f64) -> String {
    if x > 0.0 { format!("{x:.1}x") } else { "-".into() }
}

const LATENCY_HEAD: &str = "| figure | p50 ms | p99 ms | n | {} |\n|---|---:|---:|---:|---:|\n";

fn head(last: &str) -> String {
    LATENCY_HEAD.replace("{}", last)
}

fn floor(f: &Floor) -> String {
    let mut out = format!("\n## Floors\n\n{}", head("p50 / bind pair"));
    let b = f.bind_pair.p50_us;
    out += &row("bind mount + umount (kernel)", &f.bind_pair, "1.0x");
    out += &row("statx STATX_MNT_ID", &f.statx, &times(ratio(f.statx.p50_us, b)));
    let mi = format!("read + parse mountinfo ({} lines)", f.mountinfo_lines);
    out += &row(&mi, &f.mountinfo, &times(ratio(f.mountinfo.p50_us, b)));
    out +=
        &row("node state write: temp, rename (no fsync)", &f.record_cached, &times(ratio(f.record_cached.p50_us, b)));
    out += &row(
        "record write: temp, fsync, rename, fsync dir (durable)",
        &f.record_durable,
        &times(ratio(f.record_durable.p50_us, b)),
    );
    out
}

fn driver(d: &Driver, bind: f64) -> String {
    let mut out = format!("\n## CSI: {} ({})\n\n", d.label, d.endpoint);
    out += &memory(d);
    out += &format!("\n{DRIVER_HEAD}");
    out += &row_cpu(
        "NodeGetCapabilities (the call floor)",
        &d.rpc_floor,
        d.rpc_floor_cpu_us,
        &times(ratio(d.rpc_floor.p50_us, bind)),
    );
    if let Some(cd) = &d.create_delete {
        let name = format!("CreateVolume + DeleteVolume ({})", cd.class);
        out += &row_cpu(&name, &cd.pair, cd.server_cpu_us, &times(ratio(cd.pair.p50_us, bind)));
        out += &row_cpu("  CreateVolume", &cd.create, None, &times(ratio(cd.create.p50_us, bind)));
        out += &row_cpu("  DeleteVolume", &cd.delete, None, &times(ratio(cd.delete.p50_us, bind)));
    }
    let calls = if d.stages { "stage + publish + unpublish + unstage" } else { "publish + unpublish" };
    for c in &d.cycles {
        out += &cycle_rows(&format!("{calls} ({})", c.class), c, bind);
    }
    out += &cycle_floor(d);
    if let Some(s) = &d.volume_stats {
        out += &stats_row("NodeGetVolumeStats, published", s, bind);
    }
    if let Some(a) = &d.at_scale {
        out += &at_scale(a, bind);
    }
    if !d.scale.is_empty() {
        out += &scale(&d.scale);
    }
    if !d.throughput.is_empty() {
        out += &throughput(&d.throughput);
    }
    out
}

/// What any driver's node cycle costs its server (four call floors and CSI's kernel work), and
/// the first cycle's CPU beyond that.
fn cycle_floor(d: &Driver) -> String {
    let (Some(kernel), Some(call)) = (d.cycle_kernel_cpu_us, d.rpc_floor_cpu_us) else { return String::new() };
    let floor = kernel + 4.0 * call;
    let mut out = format!(
        "\nNode cycle floor (server CPU any driver pays): 4 call floors ({:.0} µs) + CSI's kernel work ({kernel:.0} µs) \
         = {floor:.0} µs.",
        4.0 * call
    );
    if let Some(cpu) = d.cycles.first().and_then(|c| c.server_cpu_us) {
        out += &format!(" The cycle above it: {:.0} µs ({:.2}x the floor).", cpu - floor, cpu / floor);
    }
    out + "\n"
}

fn cycle_rows(name: &str, c: &CycleFigures, bind: f64) -> String {
    let mut out = row_cpu(name, &c.cycle, c.server_cpu_us, &times(ratio(c.cycle.p50_us, bind)));
    for (part, s) in
        [("stage", &c.stage), ("publish", &c.publish), ("unpublish", &c.unpublish), ("unstage", &c.unstage)]
    {
        if s.p50_us > 0.0 {
            out += &row_cpu(&format!("  {part}"), s, None, &times(ratio(s.p50_us, bind)));
        }
    }
    out
}

fn stats_row(name: &str, s: &StatsFigure, bind: f64) -> String {
    row_cpu(&format!("{name} ({})", s.class), &s.call, s.server_cpu_us, &times(ratio(s.call.p50_us, bind)))
}

fn at_scale(a: &AtScale, bind: f64) -> String {
    let name = format!(
        "same cycle ({}) with {} other volumes published ({} mountinfo lines)",
        a.cycle.class, a.population, a.mountinfo_lines
    );
    let mut out = cycle_rows(&name, &a.cycle, bind);
    if let Some(s) = &a.volume_stats {
        out += &stats_row("NodeGetVolumeStats, published, among them", s, bind);
    }
    out += &format!(
        "\nAt scale / base: p50 {:.2}, p99 {:.2} (population built in {:.1} s, removed in {:.1} s)\n",
        a.ratio_p50, a.ratio_p99, a.build_seconds, a.teardown_seconds
    );
    out
}

fn scale(points: &[super::report::ScalePoint]) -> String {
    let mut out = String::from(
        "\n| other volumes | create + delete p50 ms | p99 ms | create p50 | delete p50 | server CPU µs/pair | vs the first |\n|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let first = points.first().map_or(0.0, |p| p.create_delete.pair.p50_us);
    for p in points {
        let cd = &p.create_delete;
        let cpu = cd.server_cpu_us.map_or("-".to_owned(), |c| format!("{c:.0}"));
        out += &format!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {cpu} | {:.2} |\n",
            p.volumes,
            cd.pair.p50_us / 1e3,
            cd.pair.p99_us / 1e3,
            cd.create.p50_us / 1e3,
            cd.delete.p50_us / 1e3,
            ratio(cd.pair.p50_us, first)
        );
    }
    out
}

fn memory(d: &Driver) -> String {
    let mib = |m: Option<super::server::Memory>| match m {
        Some(m) => format!(
            "{:.1} MiB ({} threads, peak {:.1} MiB)",
            m.rss_kib as f64 / 1024.0,
            m.threads,
            m.hwm_kib as f64 / 1024.0
        ),
        None => "-".into(),
    };
    match d.memory.pid {
        None => "Server RSS: not measured (no --server-pid)\n".into(),
        Some(pid) => format!(
            "Server RSS (pid {pid}): at rest {}; with the population {}; after the run {}\n",
            mib(d.memory.at_rest),
            mib(d.memory.after_population),
            mib(d.memory.after_run)
        ),
    }
}

fn throughput(t: &[Throughput]) -> String {
    let mut out = String::from(
        "\n| concurrent clients | cycles/s | calls/s | cycle p50 ms | cycle p99 ms | cycles |\n|---:|---:|---:|---:|---:|---:|\n",
    );
    for x in t {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {:.3} | {:.3} | {} |",
            x.clients,
            x.cycles_per_second,
            x.calls_per_second,
            x.cycle.p50_us / 1e3,
            x.cycle.p99_us / 1e3,
            x.cycles
        );
    }
    out
}

fn flex(f: &Flex) -> String {
    let mut out = format!("\n## FlexVolume exec ({} rounds, round-robin)\n\n{}", f.rounds, head("p50 / static no-op"));
    for r in &f.rows {
        let kind = if r.static_binary { "static" } else { "dynamic" };
        out += &row(&format!("{} ({}, {kind})", r.what, short(&r.program)), &r.latency, &times(r.x_floor));
    }
    out
}

/// The last three components of a program's path (the JSON keeps the whole path).
fn short(program: &str) -> String {
    let parts: Vec<&str> = program.split('/').filter(|p| !p.is_empty()).collect();
    match parts.len() {
        0..=3 => program.to_owned(),
        n => format!("…/{}", parts[n - 3..].join("/")),
    }
}

fn loop_ext4(l: &LoopExt4) -> String {
    let gib = l.size_bytes as f64 / f64::from(1u32 << 30);
    let mut out = format!("\n## loop ext4, {gib:.2} GiB: create + stage + unstage + delete\n\n{}", head("p50 / tools"));
    out += &row("bare tools: truncate, losetup, mkfs.ext4, mount, umount, losetup -d, rm", &l.tools, "1.0x");
    out += &row("strata over CSI", &l.strata, &format!("{:.2}x", l.ratio_p50));
    out
}

fn goals(g: &[Goal]) -> String {
    let mut out = String::from("\n## Targets\n\n| target | measured | limit | met |\n|---|---:|---:|---|\n");
    for x in g {
        let met = if x.met { "yes" } else { "**no**" };
        let _ = writeln!(out, "| {} | {:.3} {} | {} {} | {met} |", x.name, x.value, x.unit, x.limit, x.unit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::ExecRow;

    fn summary(p50_ms: f64, p99_ms: f64, n: usize) -> Summary {
        Summary { n, p50_us: p50_ms * 1e3, p99_us: p99_ms * 1e3, ..Summary::default() }
    }

    #[test]
    fn a_row_shows_milliseconds_and_the_last_column() {
        assert_eq!(row("x", &summary(0.25, 1.5, 7), "2.0x"), "| x | 0.250 | 1.500 | 7 | 2.0x |\n");
        assert_eq!(times(0.0), "-");
        assert_eq!(times(12.34), "12.3x");
    }

    #[test]
    fn every_table_row_has_as_many_cells_as_its_header() {
        let mut r = Report {
            floor: Some(Floor { bind_pair: summary(0.02, 0.05, 10), ..Floor::default() }),
            ..Report::default()
        };
        let cycle = CycleFigures { class: "dir".into(), cycle: summary(0.5, 0.9, 10), ..CycleFigures::default() };
        let stats = StatsFigure { class: "dir".into(), call: summary(0.1, 0.2, 10), server_cpu_us: Some(42.0) };
        r.drivers.push(Driver {
            label: "strata".into(),
            stages: true,
            cycles: vec![cycle.clone()],
            volume_stats: Some(stats.clone()),
            at_scale: Some(AtScale {
                volume_stats: Some(stats),
                ..AtScale::new(1000, 2040, &cycle.cycle, cycle.clone())
            }),
            throughput: vec![Throughput { clients: 8, cycles: 100, ..Throughput::default() }],
            ..Driver::default()
        });
        r.flex = Some(Flex { rounds: 3, rows: vec![ExecRow { what: "init".into(), ..ExecRow::default() }] });
        r.targets.push(Goal::below("dir cycle p50", 0.5, 1.0, "ms", false));
        let text = render(&r);
        let mut cells = None;
        for line in text.lines() {
            if line.starts_with("|---") {
                continue;
            }
            if line.starts_with('|') {
                let n = line.matches('|').count();
                assert!(cells.is_none_or(|c| c == n), "{line}");
                cells = Some(n);
            } else {
                cells = None;
            }
        }
        assert!(text.contains("| stage + publish + unpublish + unstage (dir) | 0.500 | 0.900 | 10 | - | 25.0x |"));
        assert!(text.contains("At scale / base: p50 1.00, p99 1.00"));
        assert!(text.contains("| NodeGetVolumeStats, published (dir) | 0.100 | 0.200 | 10 | 42 | 5.0x |"), "{text}");
        assert!(text.contains("| NodeGetVolumeStats, published, among them (dir) | 0.100 |"), "{text}");
        assert!(text.contains("| dir cycle p50 | 0.500 ms | 1 ms | yes |"));
        assert!(text.contains("not measured"));
    }

    #[test]
    fn programs_are_shown_by_their_last_components() {
        assert_eq!(short("/work/main/target/release/strata-flex"), "…/target/release/strata-flex");
        assert_eq!(short("/tmp/noop"), "/tmp/noop");
        assert_eq!(short("noop"), "noop");
    }

    #[test]
    fn a_missed_target_stands_out() {
        let text = goals(&[Goal::below("rss", 9.0, 8.0, "MiB", false)]);
        assert!(text.contains("| rss | 9.000 MiB | 8 MiB | **no** |"));
        assert!(Goal::below("r", 1.2, 1.2, "", true).met);
        assert!(!Goal::below("r", 1.2, 1.2, "", false).met);
    }
}
