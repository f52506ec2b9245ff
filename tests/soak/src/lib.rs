//! What the soak test measures and how it judges: a process's resident
//! memory, open files and live tokio tasks sampled once a second, a
//! least-squares slope over the samples after warm-up, the verdict against
//! stated thresholds, and the CSV and SVG the run leaves behind.
//!
//! The load itself is in `tests/soak.rs`; the servers it calls run in a
//! process of their own (`soak-server`), so that each side's growth is
//! measured apart.

use std::{fmt::Write as _, path::Path};

use weft::{
    core::ConnectionMode,
    thrift::{Protocol, Transport},
};

/// The client shapes the churn load cycles through: every transport, both
/// protocols and both connection modes appear.
pub const CHURN_SHAPES: [(Transport, Protocol, ConnectionMode); 4] = [
    (
        Transport::Buffered,
        Protocol::Binary,
        ConnectionMode::Pooled,
    ),
    (
        Transport::THeader,
        Protocol::Compact,
        ConnectionMode::Pooled,
    ),
    (
        Transport::TTHeader,
        Protocol::Compact,
        ConnectionMode::Multiplexed,
    ),
    (Transport::Framed, Protocol::Binary, ConnectionMode::Pooled),
];

/// One second's reading of one process.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
    /// Tokio tasks alive on the process's runtime.
    pub tasks: u64,
}

impl Sample {
    /// This process now, with `tasks` read from its runtime by the caller
    /// (`Handle::metrics().num_alive_tasks()`).
    pub fn of_self(tasks: usize) -> Sample {
        Sample {
            rss_kib: rss_kib().unwrap_or(0),
            fds: open_fds().unwrap_or(0),
            tasks: tasks as u64,
        }
    }

    /// The line `soak-server` prints, `SAMPLE rss fds tasks`.
    pub fn to_line(&self) -> String {
        format!("SAMPLE {} {} {}", self.rss_kib, self.fds, self.tasks)
    }

    /// Parses [`Sample::to_line`]'s output.
    pub fn from_line(line: &str) -> Option<Sample> {
        let mut it = line.strip_prefix("SAMPLE ")?.split(' ');
        let mut next = || it.next()?.parse().ok();
        Some(Sample {
            rss_kib: next()?,
            fds: next()?,
            tasks: next()?,
        })
    }
}

/// Resident memory from `/proc/self/statm` (its second field, in pages).
fn rss_kib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // Linux pages are 4 KiB on every machine this runs on (x86-64, aarch64
    // with 4K pages); statm has no unit of its own.
    Some(pages * 4)
}

fn open_fds() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

/// Least-squares slope of `ys` against `xs`, per unit of `xs`.
pub fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len().min(ys.len());
    if n < 2 {
        return 0.0;
    }
    let (xs, ys) = (&xs[..n], &ys[..n]);
    let mx = xs.iter().sum::<f64>() / n as f64;
    let my = ys.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
    }
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

/// Most a series may grow after warm-up.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Resident memory, KiB per minute of fitted slope.
    pub rss_kib_per_min: f64,
    /// Open files: the fitted growth over the whole window, in descriptors.
    pub fds_over_window: f64,
    /// Live tasks: the fitted growth over the whole window.
    pub tasks_over_window: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        // Connection churn and in-flight calls make fds and tasks wobble by
        // a few around a level; a leak of one per call or per reconnect
        // crosses these within seconds. The memory bound sits well above
        // the allocator's drift over a healthy run and well below what
        // keeping even a few bytes per call (thousands of calls a second)
        // would show.
        Thresholds {
            rss_kib_per_min: 256.0,
            fds_over_window: 4.0,
            tasks_over_window: 8.0,
        }
    }
}

/// The fitted growth of one process after warm-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Growth {
    /// KiB per minute.
    pub rss_kib_per_min: f64,
    /// Descriptors per minute.
    pub fds_per_min: f64,
    /// Tasks per minute.
    pub tasks_per_min: f64,
    /// Minutes fitted.
    pub window_min: f64,
}

impl Growth {
    /// Fits the samples from index `warmup` on; sample `i` was taken at
    /// second `i`.
    pub fn fit(samples: &[Sample], warmup: usize) -> Growth {
        let tail = samples.get(warmup..).unwrap_or_default();
        let xs: Vec<f64> = (0..tail.len()).map(|i| i as f64 / 60.0).collect();
        let col = |f: fn(&Sample) -> u64| tail.iter().map(|s| f(s) as f64).collect::<Vec<_>>();
        Growth {
            rss_kib_per_min: slope(&xs, &col(|s| s.rss_kib)),
            fds_per_min: slope(&xs, &col(|s| s.fds)),
            tasks_per_min: slope(&xs, &col(|s| s.tasks)),
            window_min: tail.len().saturating_sub(1) as f64 / 60.0,
        }
    }

    /// What of this growth is over `t`, one line each; empty if none.
    pub fn violations(&self, side: &str, t: &Thresholds) -> Vec<String> {
        let mut out = Vec::new();
        if self.rss_kib_per_min > t.rss_kib_per_min {
            out.push(format!(
                "{side}: RSS grows {:.1} KiB/min (bound {})",
                self.rss_kib_per_min, t.rss_kib_per_min
            ));
        }
        let fds = self.fds_per_min * self.window_min;
        if fds > t.fds_over_window {
            out.push(format!(
                "{side}: open fds grow {:.2}/min, {fds:.1} over the {:.1}-minute window (bound {})",
                self.fds_per_min, self.window_min, t.fds_over_window
            ));
        }
        let tasks = self.tasks_per_min * self.window_min;
        if tasks > t.tasks_over_window {
            out.push(format!(
                "{side}: tasks grow {:.2}/min, {tasks:.1} over the {:.1}-minute window (bound {})",
                self.tasks_per_min, self.window_min, t.tasks_over_window
            ));
        }
        out
    }
}

/// One second of the run: both processes and the calls so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Row {
    /// The client (load generator) process.
    pub client: Sample,
    /// The server process.
    pub server: Sample,
    /// Calls that succeeded so far.
    pub ok: u64,
    /// Calls that failed so far, including the deadline expiries and
    /// cancellations the load makes on purpose.
    pub failed: u64,
}

/// The samples as CSV, one row a second.
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "second,client_rss_kib,client_fds,client_tasks,server_rss_kib,server_fds,server_tasks,calls_ok,calls_failed\n",
    );
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            out,
            "{i},{},{},{},{},{},{},{},{}",
            r.client.rss_kib,
            r.client.fds,
            r.client.tasks,
            r.server.rss_kib,
            r.server.fds,
            r.server.tasks,
            r.ok,
            r.failed
        );
    }
    out
}

// The palette and layout of benches/src/report.rs's charts.
const CLIENT: &str = "#1f77b4";
const SERVER: &str = "#d62728";
const WARMUP: &str = "#eeeeee";

/// Three stacked line charts (RSS, fds, tasks) of both processes over the
/// run, the warm-up shaded, each panel titled with the fitted slopes.
pub fn svg(rows: &[Row], warmup: usize, client: &Growth, server: &Growth) -> String {
    let (w, panel_h, left, right, top, gap) = (960.0, 200.0, 80.0, 20.0, 40.0, 60.0);
    let height = top + 3.0 * (panel_h + gap) + 10.0;
    let plot_w = w - left - right;
    let n = rows.len().max(2);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let minutes = (n - 1) as f64 / 60.0;
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="22" font-size="16" text-anchor="middle">Weft soak: {minutes:.1} minutes of mixed Thrift and gRPC load, sampled each second</text>"#,
        w / 2.0
    );
    type Panel = (
        &'static str,
        fn(&Sample) -> f64,
        fn(&Growth) -> f64,
        &'static str,
    );
    let panels: [Panel; 3] = [
        (
            "resident memory, MiB",
            |s| s.rss_kib as f64 / 1024.0,
            |g| g.rss_kib_per_min,
            "KiB/min",
        ),
        (
            "open file descriptors",
            |s| s.fds as f64,
            |g| g.fds_per_min,
            "/min",
        ),
        (
            "live tokio tasks",
            |s| s.tasks as f64,
            |g| g.tasks_per_min,
            "/min",
        ),
    ];
    for (p, (title, value, rate, unit)) in panels.iter().enumerate() {
        let y0 = top + p as f64 * (panel_h + gap) + 20.0;
        let max = rows
            .iter()
            .flat_map(|r| [value(&r.client), value(&r.server)])
            .fold(0.0f64, f64::max);
        let ymax = nice_ceiling(max * 1.1);
        let x = |i: usize| left + plot_w * i as f64 / (n - 1) as f64;
        let y = |v: f64| y0 + panel_h - panel_h * v / ymax;
        let _ = writeln!(
            out,
            r#"<text x="{left}" y="{}" font-size="13">{title} — fitted after warm-up: client {:+.2} {unit}, server {:+.2} {unit}</text>"#,
            y0 - 6.0,
            rate(client),
            rate(server)
        );
        let _ = writeln!(
            out,
            r#"<rect x="{left}" y="{y0}" width="{:.1}" height="{panel_h}" fill="{WARMUP}"/>"#,
            x(warmup.min(n - 1)) - left
        );
        for k in 0..=4 {
            let v = ymax * k as f64 / 4.0;
            let yy = y(v);
            let _ = writeln!(
                out,
                r##"<line x1="{left}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#dddddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                left + plot_w,
                left - 6.0,
                yy + 4.0,
                short_number(v)
            );
        }
        for (side, colour) in [(0, CLIENT), (1, SERVER)] {
            let mut pts = String::new();
            for (i, r) in rows.iter().enumerate() {
                let s = if side == 0 { &r.client } else { &r.server };
                let _ = write!(pts, "{:.1},{:.1} ", x(i), y(value(s)));
            }
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="1.2" points="{pts}"/>"#
            );
        }
        // Minute ticks (every five past ten minutes).
        let step = if minutes > 10.0 { 5 } else { 1 };
        let mut m = 0;
        while m as f64 <= minutes {
            let xx = x((m * 60).min(n - 1));
            let _ = writeln!(
                out,
                r#"<text x="{xx:.1}" y="{:.1}" text-anchor="middle">{m} min</text>"#,
                y0 + panel_h + 16.0
            );
            m += step;
        }
    }
    for (i, (name, colour)) in [
        ("client (load)", CLIENT),
        ("server", SERVER),
        ("warm-up", "#cccccc"),
    ]
    .iter()
    .enumerate()
    {
        let x = left + i as f64 * 140.0;
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{colour}"/><text x="{}" y="{}">{name}</text>"#,
            height - 24.0,
            x + 16.0,
            height - 14.0
        );
    }
    out.push_str("</svg>\n");
    out
}

fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * p)
}

fn short_number(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Writes `samples.csv`, `chart.svg` and `summary.txt` into `dir`.
pub fn write(dir: &Path, rows: &[Row], warmup: usize, summary: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let client = Growth::fit(&rows.iter().map(|r| r.client).collect::<Vec<_>>(), warmup);
    let server = Growth::fit(&rows.iter().map(|r| r.server).collect::<Vec<_>>(), warmup);
    std::fs::write(dir.join("samples.csv"), csv(rows))?;
    std::fs::write(dir.join("chart.svg"), svg(rows, warmup, &client, &server))?;
    std::fs::write(dir.join("summary.txt"), summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize, f: impl Fn(usize) -> Sample) -> Vec<Sample> {
        (0..n).map(f).collect()
    }

    #[test]
    fn slope_of_a_line_is_its_slope() {
        let xs: Vec<f64> = (0..10).map(f64::from).collect();
        let ys: Vec<f64> = xs.iter().map(|x| 3.0 * x + 7.0).collect();
        assert!((slope(&xs, &ys) - 3.0).abs() < 1e-9);
        assert_eq!(slope(&[1.0], &[2.0]), 0.0);
    }

    #[test]
    fn a_flat_noisy_run_passes_and_a_slow_leak_fails() {
        // ±2 fds and ±8 tasks of churn, ±2 MiB of allocator wobble around a
        // level: healthy.
        let wobble = |i: usize| (i * 7919 % 5) as u64;
        let flat = series(600, |i| Sample {
            rss_kib: 50_000 + wobble(i) * 512,
            fds: 20 + wobble(i) / 2,
            tasks: 40 + wobble(i) * 2,
        });
        let g = Growth::fit(&flat, 60);
        assert!(
            g.violations("flat", &Thresholds::default()).is_empty(),
            "{g:?}"
        );

        // One descriptor leaked a minute over nine minutes.
        let fd_leak = series(600, |i| Sample {
            fds: 20 + wobble(i) / 2 + (i / 60) as u64,
            ..flat[i]
        });
        let v = Growth::fit(&fd_leak, 60).violations("leak", &Thresholds::default());
        assert!(v.len() == 1 && v[0].contains("open fds"), "{v:?}");

        // One task leaked every ten seconds.
        let task_leak = series(600, |i| Sample {
            tasks: 40 + (i / 10) as u64,
            ..flat[i]
        });
        let v = Growth::fit(&task_leak, 60).violations("leak", &Thresholds::default());
        assert!(v.len() == 1 && v[0].contains("tasks"), "{v:?}");

        // 8 KiB a second.
        let mem_leak = series(600, |i| Sample {
            rss_kib: flat[i].rss_kib + 8 * i as u64,
            ..flat[i]
        });
        let v = Growth::fit(&mem_leak, 60).violations("leak", &Thresholds::default());
        assert!(v.len() == 1 && v[0].contains("RSS"), "{v:?}");
    }

    #[test]
    fn sample_lines_round_trip() {
        let s = Sample {
            rss_kib: 1,
            fds: 2,
            tasks: 3,
        };
        assert_eq!(Sample::from_line(&s.to_line()), Some(s));
        assert_eq!(Sample::from_line("SAMPLE 1 x 3"), None);
        assert!(Sample::of_self(0).rss_kib > 0);
        assert!(Sample::of_self(0).fds >= 3);
    }

    #[test]
    fn the_chart_has_a_line_per_process_and_panel() {
        let rows: Vec<Row> = (0..120)
            .map(|i| Row {
                client: Sample {
                    rss_kib: 1000 + i,
                    fds: 10,
                    tasks: 5,
                },
                server: Sample {
                    rss_kib: 2000,
                    fds: 12,
                    tasks: 9,
                },
                ok: i * 10,
                failed: i,
            })
            .collect();
        let g = Growth::fit(&rows.iter().map(|r| r.client).collect::<Vec<_>>(), 30);
        let s = svg(&rows, 30, &g, &g);
        assert_eq!(s.matches("<polyline").count(), 6);
        assert!(s.ends_with("</svg>\n"));
        assert_eq!(csv(&rows).lines().count(), 121);
    }
}
