//! Medians, ratios and targets of a run, written as a terminal table,
//! Markdown (also spliced into `benches/README.md`), JSON and an SVG chart.

use std::{collections::BTreeMap, fmt::Write as _, process::Command};

use serde::{Deserialize, Serialize};

use crate::{Impl, Options, Run};

// ===== the machine =====

/// What the run was measured on, and when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    date_utc: String,
    command: String,
    cpu: String,
    cores: usize,
    kernel: String,
    rustc: String,
    load_before: String,
    load_after: String,
    wall_s: f64,
    options: Options,
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".into())
}

impl Meta {
    pub(crate) fn collect(o: &Options, load_before: String, wall_s: f64) -> Meta {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(|| "?".into(), |s| s.trim().to_owned());
        let args: Vec<String> = std::env::args().skip(1).collect();
        Meta {
            date_utc: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            command: format!("cargo run --release -p weft-benches -- {}", args.join(" "))
                .trim_end()
                .to_owned(),
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "?".into(), |s| s.trim().to_owned()),
            rustc: command_output("rustc", &["--version"]),
            load_before,
            load_after: loadavg(),
            wall_s,
            options: o.clone(),
        }
    }
}

// ===== medians =====

/// The medians over rounds of one implementation in one cell.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    imp: Impl,
    concurrency: usize,
    payload: usize,
    rounds: usize,
    errors: u64,
    qps: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    client_cpu_us: f64,
    server_cpu_us: f64,
    client_allocs: f64,
    server_allocs: f64,
    client_alloc_bytes: f64,
    server_alloc_bytes: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

type Key = (usize, usize, Impl);

fn summarise(runs: &[Run]) -> BTreeMap<Key, Summary> {
    let mut groups: BTreeMap<Key, Vec<&Run>> = BTreeMap::new();
    for r in runs {
        groups
            .entry((r.concurrency, r.payload, r.imp))
            .or_default()
            .push(r);
    }
    groups
        .into_iter()
        .map(|(k, rs)| {
            let m = |f: &dyn Fn(&Run) -> f64| median(rs.iter().map(|r| f(r)).collect());
            let s = Summary {
                imp: k.2,
                concurrency: k.0,
                payload: k.1,
                rounds: rs.len(),
                errors: rs.iter().map(|r| r.client.errors).sum(),
                qps: m(&|r| r.client.qps),
                p50_us: m(&|r| r.client.p50_us),
                p99_us: m(&|r| r.client.p99_us),
                p999_us: m(&|r| r.client.p999_us),
                client_cpu_us: m(&|r| r.client.cost.cpu_us),
                server_cpu_us: m(&|r| r.server.cpu_us),
                client_allocs: m(&|r| r.client.cost.allocs),
                server_allocs: m(&|r| r.server.allocs),
                client_alloc_bytes: m(&|r| r.client.cost.alloc_bytes),
                server_alloc_bytes: m(&|r| r.server.alloc_bytes),
            };
            (k, s)
        })
        .collect()
}

// ===== targets =====

/// One target of issue 9 in one cell.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    cell: String,
    what: String,
    value: f64,
    target: String,
    met: bool,
    /// How far off, in percent of the target, when missed.
    short_by_pct: f64,
}

fn at_least(cell: &str, what: String, value: f64, min: f64, target: String) -> Check {
    Check {
        cell: cell.into(),
        what,
        value,
        target,
        met: value >= min,
        short_by_pct: if value >= min {
            0.0
        } else {
            (min - value) / min * 100.0
        },
    }
}

fn at_most(cell: &str, what: String, value: f64, max: f64, target: String) -> Check {
    Check {
        cell: cell.into(),
        what,
        value,
        target,
        met: value <= max,
        short_by_pct: if value <= max {
            0.0
        } else {
            (value - max) / max * 100.0
        },
    }
}

fn hundredths(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Issue 9's targets: QPS >= 0.9x raw in every cell, multiplexed >= pooled
/// in every cell, <= 2 allocations per call on each side, p99 <= 1.3x raw's
/// at c = 16.
fn checks(o: &Options, s: &BTreeMap<Key, Summary>) -> Vec<Check> {
    let mut out = Vec::new();
    for &c in &o.concurrency {
        for &p in &o.payload {
            let cell = format!("c={c} {}", size(p));
            let get = |i| s.get(&(c, p, i));
            // Issue 12: Weft's gRPC against tonic.
            if let (Some(w), Some(t)) = (get(Impl::WeftGrpc), get(Impl::Tonic)) {
                let min = if c == 1 { 1.1 } else { 1.3 };
                out.push(at_least(
                    &cell,
                    "weft-grpc QPS / tonic".into(),
                    w.qps / t.qps,
                    min,
                    format!(">= {min}x"),
                ));
                out.push(at_most(
                    &cell,
                    "weft-grpc p99 / tonic p99".into(),
                    w.p99_us / t.p99_us,
                    1.0,
                    "<= 1.0x".into(),
                ));
            }
            // Issue 14: Weft ahead of Kitex <-> Kitex at c = 16 and 128.
            for (weft, kitex) in [
                (Impl::WeftPooled, Impl::KitexPooled),
                (Impl::WeftMux, Impl::KitexMux),
            ] {
                let (Some(w), Some(k)) = (get(weft), get(kitex)) else {
                    continue;
                };
                if c != 16 && c != 128 {
                    continue;
                }
                out.push(at_least(
                    &cell,
                    format!("{} QPS / {}", weft.name(), kitex.name()),
                    w.qps / k.qps,
                    1.0,
                    ">= 1.0x".into(),
                ));
                out.push(at_most(
                    &cell,
                    format!("{} p99 / {} p99", weft.name(), kitex.name()),
                    w.p99_us / k.p99_us,
                    1.0,
                    "<= 1.0x".into(),
                ));
            }
            let raw = get(Impl::Raw);
            for weft in [Impl::WeftPooled, Impl::WeftMux] {
                let Some(w) = get(weft) else { continue };
                let name = weft.name();
                if let Some(r) = raw {
                    out.push(at_least(
                        &cell,
                        format!("{name} QPS / raw"),
                        w.qps / r.qps,
                        0.9,
                        ">= 0.9x".into(),
                    ));
                    if c == 16 {
                        out.push(at_most(
                            &cell,
                            format!("{name} p99 / raw p99"),
                            w.p99_us / r.p99_us,
                            1.3,
                            "<= 1.3x".into(),
                        ));
                    }
                }
                // Allocations are compared as the table shows them, to
                // hundredths: the process-wide count also holds the
                // load generator's own housekeeping (its SNAP lines, the
                // runtime), about 0.0001 per call, as the raw rows show.
                out.push(at_most(
                    &cell,
                    format!("{name} server allocs/call"),
                    hundredths(w.server_allocs),
                    2.0,
                    "<= 2".into(),
                ));
                out.push(at_most(
                    &cell,
                    format!("{name} client allocs/call"),
                    hundredths(w.client_allocs),
                    2.0,
                    "<= 2".into(),
                ));
            }
            if let (Some(m), Some(pl)) = (get(Impl::WeftMux), get(Impl::WeftPooled)) {
                out.push(at_least(
                    &cell,
                    "weft-mux QPS / weft-pooled".into(),
                    m.qps / pl.qps,
                    1.0,
                    ">= 1.0x".into(),
                ));
            }
        }
    }
    out
}

// ===== output =====

fn size(p: usize) -> String {
    if p >= 1024 && p.is_multiple_of(1024) {
        format!("{} KiB", p / 1024)
    } else {
        format!("{p} B")
    }
}

fn ratio(a: Option<&Summary>, b: Option<&Summary>, f: Metric) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}", f(a) / f(b)),
        _ => "–".into(),
    }
}

fn markdown(o: &Options, meta: &Meta, s: &BTreeMap<Key, Summary>, checks: &[Check]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Measured {} on {} ({} cores), Linux {}, {}.\n\
         Load average (1, 5, 15 min) before: {}, after: {}. Wall time {:.0} s.\n\n\
         Command: `{}`\n\n\
         Medians of {} interleaved rounds; {} s warm-up and {} s measured per run; \
         server and client each a separate process with {} tokio worker threads, \
         sharing the machine's cores. CPU is user+system time of the whole process \
         per call (10 ms resolution, so ±{:.1} µs at these call counts); allocations \
         count every allocation of the process per call.\n",
        meta.date_utc,
        meta.cpu,
        meta.cores,
        meta.kernel,
        meta.rustc,
        meta.load_before,
        meta.load_after,
        meta.wall_s,
        meta.command.trim_end_matches(" --"),
        o.rounds,
        o.warmup_s,
        o.duration_s,
        o.threads,
        resolution_us(s, o),
    );
    let _ = writeln!(
        md,
        "| cell | impl | QPS | p50 µs | p99 µs | p999 µs | client CPU µs/call | server CPU µs/call | client allocs/call | server allocs/call | client B/call | server B/call |\n\
         |---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    for &c in &o.concurrency {
        for &p in &o.payload {
            for &imp in &o.impls {
                let Some(x) = s.get(&(c, p, imp)) else {
                    continue;
                };
                let _ = writeln!(
                    md,
                    "| c={c} {} | {}{} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.2} | {:.2} | {:.0} | {:.0} |",
                    size(p),
                    imp.name(),
                    if x.errors > 0 {
                        format!(" ({} errors)", x.errors)
                    } else {
                        String::new()
                    },
                    x.qps,
                    x.p50_us,
                    x.p99_us,
                    x.p999_us,
                    x.client_cpu_us,
                    x.server_cpu_us,
                    x.client_allocs,
                    x.server_allocs,
                    x.client_alloc_bytes,
                    x.server_alloc_bytes,
                );
            }
        }
    }
    let qps: Metric = |x| x.qps;
    let p99: Metric = |x| x.p99_us;
    ratio_table(
        &mut md,
        o,
        s,
        "Ratios of QPS (p99 where named):",
        &[
            ("weft-pooled / raw", Impl::WeftPooled, Impl::Raw, qps),
            ("weft-mux / raw", Impl::WeftMux, Impl::Raw, qps),
            (
                "weft-mux / weft-pooled",
                Impl::WeftMux,
                Impl::WeftPooled,
                qps,
            ),
            ("weft-mux-bare / raw", Impl::WeftMuxBare, Impl::Raw, qps),
            (
                "weft-mux-observe / weft-mux",
                Impl::WeftMuxObserve,
                Impl::WeftMux,
                qps,
            ),
            (
                "weft-pooled / volo-pooled",
                Impl::WeftPooled,
                Impl::VoloPooled,
                qps,
            ),
            ("weft-mux / volo-mux", Impl::WeftMux, Impl::VoloMux, qps),
            ("volo-pooled / raw", Impl::VoloPooled, Impl::Raw, qps),
            ("volo-mux / raw", Impl::VoloMux, Impl::Raw, qps),
            ("p99 weft-pooled / raw", Impl::WeftPooled, Impl::Raw, p99),
            ("p99 weft-mux / raw", Impl::WeftMux, Impl::Raw, p99),
        ],
    );
    if o.impls.contains(&Impl::WeftGrpc) && o.impls.contains(&Impl::Tonic) {
        ratio_table(
            &mut md,
            o,
            s,
            "gRPC, QPS and p99:",
            &[
                ("weft-grpc / tonic", Impl::WeftGrpc, Impl::Tonic, qps),
                ("p99 weft-grpc / tonic", Impl::WeftGrpc, Impl::Tonic, p99),
            ],
        );
    }
    if o.impls
        .iter()
        .any(|i| matches!(i, Impl::KitexPooled | Impl::KitexMux))
    {
        ratio_table(
            &mut md,
            o,
            s,
            "Kitex, QPS and p99 (kitex-weft: Kitex's client, Weft's server; weft-kitex: the reverse):",
            &[
                ("weft-pooled / kitex-pooled", Impl::WeftPooled, Impl::KitexPooled, qps),
                ("weft-mux / kitex-mux", Impl::WeftMux, Impl::KitexMux, qps),
                ("kitex-weft-pooled / kitex-pooled", Impl::KitexWeftPooled, Impl::KitexPooled, qps),
                ("kitex-weft-mux / kitex-mux", Impl::KitexWeftMux, Impl::KitexMux, qps),
                ("weft-kitex-pooled / kitex-pooled", Impl::WeftKitexPooled, Impl::KitexPooled, qps),
                ("weft-kitex-mux / kitex-mux", Impl::WeftKitexMux, Impl::KitexMux, qps),
                ("p99 weft-pooled / kitex-pooled", Impl::WeftPooled, Impl::KitexPooled, p99),
                ("p99 weft-mux / kitex-mux", Impl::WeftMux, Impl::KitexMux, p99),
            ],
        );
    }
    let met = checks.iter().filter(|c| c.met).count();
    let _ = writeln!(
        md,
        "\nTargets: {met} of {} met.\n\n| cell | check | value | target | |\n|---|---|--:|---|---|",
        checks.len()
    );
    for c in checks {
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} | {} | {} |",
            c.cell,
            c.what,
            c.value,
            c.target,
            if c.met {
                "met".to_owned()
            } else {
                format!("**missed by {:.0}%**", c.short_by_pct)
            }
        );
    }
    md
}

/// The CPU-per-call uncertainty of one tick over the fewest calls measured.
fn resolution_us(s: &BTreeMap<Key, Summary>, o: &Options) -> f64 {
    let fewest = s
        .values()
        .map(|x| x.qps * o.duration_s)
        .fold(f64::INFINITY, f64::min);
    10_000.0 / fewest.max(1.0)
}

/// One number of a summary.
type Metric = fn(&Summary) -> f64;

/// One table of ratios `a / b` of `metric`, a row per cell: each column is
/// (heading, a, b, metric).
fn ratio_table(
    md: &mut String,
    o: &Options,
    s: &BTreeMap<Key, Summary>,
    title: &str,
    columns: &[(&str, Impl, Impl, Metric)],
) {
    let heads: Vec<&str> = columns.iter().map(|c| c.0).collect();
    let _ = writeln!(
        md,
        "\n{title}\n\n| cell | {} |\n|---|{}",
        heads.join(" | "),
        "--:|".repeat(columns.len())
    );
    for &c in &o.concurrency {
        for &p in &o.payload {
            let g = |i| s.get(&(c, p, i));
            let cells: Vec<String> = columns
                .iter()
                .map(|&(_, a, b, metric)| ratio(g(a), g(b), metric))
                .collect();
            let _ = writeln!(md, "| c={c} {} | {} |", size(p), cells.join(" | "));
        }
    }
}

const COLOURS: [&str; 16] = [
    "#7f7f7f", "#1f77b4", "#17becf", "#d62728", "#ff9896", "#9467bd", "#2ca02c", "#ff7f0e",
    "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#bcbd22", "#dbdb8d", "#aec7e8", "#98df8a",
];

/// The bar colour of `imp`. Cycles when there are more impls than colours:
/// a chart with two impls sharing a colour still reads (bars are in legend
/// order and titled), a panic loses the whole report.
fn colour(imp: Impl) -> &'static str {
    COLOURS[imp as usize % COLOURS.len()]
}

/// Two grouped bar charts, QPS and p99, one group per cell.
fn svg(o: &Options, s: &BTreeMap<Key, Summary>) -> String {
    let cells: Vec<(usize, usize)> = o
        .concurrency
        .iter()
        .flat_map(|&c| o.payload.iter().map(move |&p| (c, p)))
        .collect();
    let (w, panel_h, left, top) = (960.0, 300.0, 80.0, 40.0);
    // Seven legend entries a row.
    let legend_rows = o.impls.len().div_ceil(7).max(1) as f64;
    let height = top + 2.0 * (panel_h + 70.0) + 30.0 + (legend_rows - 1.0) * 18.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="22" font-size="16" text-anchor="middle">Weft vs volo-thrift, tonic, Kitex and a raw TCP echo (medians of {} rounds)</text>"#,
        w / 2.0,
        o.rounds
    );
    // Legend.
    for (i, imp) in o.impls.iter().enumerate() {
        let x = left + (i % 7) as f64 * 125.0;
        let y = height - 24.0 - (legend_rows - 1.0 - (i / 7) as f64) * 18.0;
        let colour = colour(*imp);
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{y}" width="12" height="12" fill="{colour}"/><text x="{}" y="{}">{}</text>"#,
            x + 16.0,
            y + 10.0,
            imp.name()
        );
    }
    let panels: [(&str, Metric, bool); 2] = [
        ("QPS (higher is better)", |x| x.qps, false),
        (
            "p99 latency, µs, log scale (lower is better)",
            |x| x.p99_us,
            true,
        ),
    ];
    for (pi, (title, f, log)) in panels.iter().enumerate() {
        let y0 = top + pi as f64 * (panel_h + 70.0) + 20.0;
        let values = || s.values().map(f).filter(|v| v.is_finite() && *v > 0.0);
        let max = values().fold(1.0, f64::max);
        // Linear from 0, or log between the decades around the values.
        let (lo, hi) = if *log {
            let min = values().fold(f64::INFINITY, f64::min).min(max);
            (
                min.log10().floor(),
                max.log10().ceil().max(min.log10().floor() + 1.0),
            )
        } else {
            (0.0, nice_ceiling(max))
        };
        let scale = |v: f64| -> f64 {
            if *log {
                ((v.max(1e-9).log10() - lo) / (hi - lo)).clamp(0.0, 1.0)
            } else {
                v / hi
            }
        };
        let _ = writeln!(
            out,
            r#"<text x="{left}" y="{}" font-size="14">{title}</text>"#,
            y0 - 6.0
        );
        let ticks: Vec<f64> = if *log {
            (lo as i32..=hi as i32).map(|e| 10f64.powi(e)).collect()
        } else {
            (0..=4).map(|t| hi * t as f64 / 4.0).collect()
        };
        for v in ticks {
            let y = y0 + panel_h - panel_h * scale(v);
            let _ = writeln!(
                out,
                r##"<line x1="{left}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
                w - 20.0,
                left - 6.0,
                y + 4.0,
                short_number(v)
            );
        }
        let group_w = (w - left - 20.0) / cells.len() as f64;
        let bar_w = group_w * 0.8 / o.impls.len() as f64;
        for (ci, &(c, p)) in cells.iter().enumerate() {
            let gx = left + ci as f64 * group_w + group_w * 0.1;
            for (ii, imp) in o.impls.iter().enumerate() {
                let Some(x) = s.get(&(c, p, *imp)) else {
                    continue;
                };
                let v = f(x);
                let h = panel_h * scale(v);
                let _ = writeln!(
                    out,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} c={c} {}: {}</title></rect>"#,
                    gx + ii as f64 * bar_w,
                    y0 + panel_h - h,
                    bar_w * 0.9,
                    h,
                    colour(*imp),
                    imp.name(),
                    size(p),
                    short_number(v)
                );
            }
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">c={c}, {}</text>"#,
                gx + group_w * 0.4,
                y0 + panel_h + 16.0,
                size(p)
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

fn nice_ceiling(v: f64) -> f64 {
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 1.2, 1.6, 2.0, 2.4, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

fn short_number(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

const BEGIN: &str = "<!-- results:begin (written by the load generator) -->";
const END: &str = "<!-- results:end -->";

/// Rewrites the outputs of a run from its `results.json`.
pub(crate) fn rewrite(json: &str) -> anyhow::Result<()> {
    #[derive(Deserialize)]
    struct Saved {
        meta: Meta,
        runs: Vec<Run>,
    }
    let saved: Saved = serde_json::from_str(json)?;
    write(&saved.meta.options, &saved.meta, &saved.runs)
}

/// Prints the Markdown and writes `results.json`, `results.md`,
/// `chart.svg` under `--out`, and the Markdown between the markers of
/// `benches/README.md` when there are any.
pub(crate) fn write(o: &Options, meta: &Meta, runs: &[Run]) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct Json<'a> {
        meta: &'a Meta,
        medians: Vec<&'a Summary>,
        checks: &'a [Check],
        runs: &'a [Run],
    }
    let s = summarise(runs);
    let checks = checks(o, &s);
    let md = markdown(o, meta, &s, &checks);
    println!("{md}");
    let dir = std::path::Path::new(&o.out);
    std::fs::create_dir_all(dir)?;
    let json = Json {
        meta,
        medians: s.values().collect(),
        checks: &checks,
        runs,
    };
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    std::fs::write(dir.join("results.md"), &md)?;
    std::fs::write(dir.join("chart.svg"), svg(o, &s))?;
    eprintln!(
        "wrote {}/results.json, results.md, chart.svg",
        dir.display()
    );
    let readme = std::path::Path::new("benches/README.md");
    if let Ok(text) = std::fs::read_to_string(readme) {
        if let (Some(a), Some(b)) = (text.find(BEGIN), text.find(END)) {
            let new = format!("{}{BEGIN}\n{md}{}", &text[..a], &text[b..]);
            std::fs::write(readme, new)?;
            eprintln!("updated the results in {}", readme.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ALL_IMPLS;

    #[test]
    fn every_impl_has_its_own_colour_and_the_chart_draws_them_all() {
        let colours: std::collections::BTreeSet<_> = ALL_IMPLS.iter().map(|&i| colour(i)).collect();
        assert_eq!(colours.len(), ALL_IMPLS.len());
        let o = Options {
            concurrency: vec![16],
            payload: vec![128],
            impls: ALL_IMPLS.to_vec(),
            ..Options::default()
        };
        let chart = svg(&o, &BTreeMap::new());
        for imp in ALL_IMPLS {
            assert!(chart.contains(imp.name()), "{} missing", imp.name());
        }
    }
}
