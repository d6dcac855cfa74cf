//! The throughput plot, `bench/throughput.svg`: two panels over concurrency (log scale) —
//! throughput (calls/s, log scale) and efficiency (ideal / measured time) — for ours,
//! the ideal, and each peer. Written by hand: a few primitives (lines, markers, text)
//! are all it needs, and it keeps plotting libraries out of the library's dependencies.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::report::{thousands, Report};

const W: f64 = 1160.0;
const H: f64 = 560.0;
const TOP: f64 = 92.0;
const BOTTOM: f64 = 70.0;
const PANEL_W: f64 = 470.0;
const LEFT: [f64; 2] = [90.0, 660.0];
/// Lowest efficiency the right panel's axis goes down to.
const EFF_FLOOR: f64 = 0.5;

/// One line on the plot.
struct Series {
    label: String,
    color: &'static str,
    dashed: bool,
    /// (concurrency, throughput calls/s, efficiency)
    points: Vec<(f64, f64, f64)>,
}

/// Where a value lands on an axis.
#[derive(Clone, Copy)]
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    /// Pixel range: `from` is where `lo` lands.
    from: f64,
    to: f64,
}

impl Axis {
    fn at(&self, v: f64) -> f64 {
        let t = if self.log {
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        self.from + t * (self.to - self.from)
    }
}

fn style(imp: &str) -> Option<(&'static str, &'static str)> {
    Some(match imp {
        "ours" => ("parallel-agents (Rust API)", "#d62728"),
        "asyncio" => ("Python asyncio + Semaphore", "#1f77b4"),
        "threads" => ("Python ThreadPoolExecutor", "#2ca02c"),
        "dspy" => ("DSPy ParallelExecutor", "#9467bd"),
        "raw_tokio" => ("raw tokio JoinSet + Semaphore", "#8c564b"),
        _ => return None,
    })
}

fn series(report: &Report) -> Vec<Series> {
    let mut by_impl: BTreeMap<usize, Series> = BTreeMap::new();
    let mut ideal: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for l in report
        .lines
        .iter()
        .filter(|l| l.get("bench") == Some("latency_sweep"))
    {
        let imp = l.get("impl").unwrap_or("");
        let (Some((label, color)), Some(n), Some(c), Some(m), Some(i)) = (
            style(imp),
            l.num("n"),
            l.num("c"),
            l.num("measured_s"),
            l.num("ideal_s"),
        ) else {
            continue;
        };
        let order = ["ours", "raw_tokio", "asyncio", "threads", "dspy"]
            .iter()
            .position(|x| *x == imp)
            .unwrap_or(9);
        by_impl
            .entry(order)
            .or_insert_with(|| Series {
                label: label.into(),
                color,
                dashed: false,
                points: Vec::new(),
            })
            .points
            .push((c, n / m, i / m));
        ideal.entry(c as u64).or_insert((c, n / i));
    }
    let mut out = Vec::new();
    if !ideal.is_empty() {
        out.push(Series {
            label: "ideal: N / (ceil(N/C) × latency)".into(),
            color: "#222222",
            dashed: true,
            points: ideal.values().map(|(c, t)| (*c, *t, 1.0)).collect(),
        });
    }
    for mut s in by_impl.into_values() {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
        out.push(s);
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn si(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{}M", v / 1e6),
        v if v >= 1e3 => format!("{}k", v / 1e3),
        v => format!("{v}"),
    }
}

fn decades(lo: f64, hi: f64) -> (f64, f64) {
    (
        10f64.powf(lo.log10().floor()),
        10f64.powf(hi.log10().ceil()),
    )
}

/// The SVG, or `None` if the report has no latency-bound runs to plot.
pub fn throughput_plot(report: &Report, subtitle: &str) -> Option<String> {
    let all = series(report);
    let pts = || all.iter().flat_map(|s| s.points.iter());
    pts().next()?; // nothing to plot
    let fold = |f: fn(&(f64, f64, f64)) -> f64| {
        pts()
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            })
    };
    let (cx0, cx1) = decades(fold(|p| p.0).0, fold(|p| p.0).1);
    let (cx0, cx1) = (cx0, if cx1 <= cx0 { cx0 * 10.0 } else { cx1 });
    let (ty0, ty1) = decades(fold(|p| p.1).0, fold(|p| p.1).1);
    // Efficiencies below EFF_FLOOR are drawn on the bottom edge with their value, so one
    // collapsing peer does not squash the differences near 1.0.
    let e_min = pts()
        .map(|p| p.2)
        .filter(|e| *e >= EFF_FLOOR)
        .fold(1.0, f64::min);
    let e_lo = (((e_min.min(0.9) - 0.02) * 20.0).floor() / 20.0).max(EFF_FLOOR);
    let (y_from, y_to) = (H - BOTTOM, TOP);

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="30" font-size="20" font-weight="bold" text-anchor="middle">Throughput against concurrency: mock agent, fixed latency</text>"#,
        W / 2.0
    );
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="54" font-size="13" fill="#444" text-anchor="middle">{}</text>"##,
        W / 2.0,
        esc(subtitle)
    );

    for (panel, left) in LEFT.iter().enumerate() {
        let x = Axis {
            lo: cx0,
            hi: cx1,
            log: true,
            from: *left,
            to: left + PANEL_W,
        };
        let y = if panel == 0 {
            Axis {
                lo: ty0,
                hi: ty1,
                log: true,
                from: y_from,
                to: y_to,
            }
        } else {
            Axis {
                lo: e_lo,
                hi: 1.02,
                log: false,
                from: y_from,
                to: y_to,
            }
        };
        frame(&mut svg, &x, &y, panel);
        if panel == 1 {
            // The target line.
            let yy = y.at(0.97);
            let _ = writeln!(
                svg,
                r##"<line x1="{}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#ff7f0e" stroke-width="1.5" stroke-dasharray="2,3"/><text x="{}" y="{:.1}" font-size="12" fill="#ff7f0e">target 0.97</text>"##,
                x.from,
                x.to,
                x.from + 6.0,
                yy + 14.0
            );
        }
        // Ours last but the ideal, so it is drawn on top of the peers.
        for s in all.iter().rev() {
            let coords: Vec<(f64, f64)> = s
                .points
                .iter()
                .map(|p| {
                    (
                        x.at(p.0),
                        y.at(if panel == 0 { p.1 } else { p.2.max(y.lo) }),
                    )
                })
                .collect();
            let path: Vec<String> = coords
                .iter()
                .map(|(a, b)| format!("{a:.1},{b:.1}"))
                .collect();
            let dash = if s.dashed {
                r#" stroke-dasharray="7,5""#
            } else {
                ""
            };
            let width = if s.label.starts_with("parallel") {
                3.0
            } else {
                2.0
            };
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="{width}"{dash}/>"#,
                path.join(" "),
                s.color
            );
            if !s.dashed {
                for ((a, b), p) in coords.into_iter().zip(&s.points) {
                    let _ = writeln!(
                        svg,
                        r#"<circle cx="{a:.1}" cy="{b:.1}" r="4" fill="{}" stroke="white" stroke-width="1"/>"#,
                        s.color
                    );
                    if panel == 1 && p.2 < y.lo {
                        let _ = writeln!(
                            svg,
                            r#"<text x="{:.1}" y="{:.1}" font-size="12" fill="{}" text-anchor="end">{:.2} (below the axis)</text>"#,
                            a - 8.0,
                            b - 6.0,
                            s.color,
                            p.2
                        );
                    }
                }
            }
        }
    }
    legend(&mut svg, &all, LEFT[0] + 14.0, TOP + 14.0);
    svg.push_str("</svg>\n");
    Some(svg)
}

fn frame(svg: &mut String, x: &Axis, y: &Axis, panel: usize) {
    let (x0, x1, y0, y1) = (x.from, x.to, y.from, y.to);
    let grid = |svg: &mut String, major: bool, horizontal: bool, at: f64| {
        let (c, w) = if major {
            ("#cccccc", 1.0)
        } else {
            ("#eeeeee", 1.0)
        };
        let _ = if horizontal {
            writeln!(
                svg,
                r#"<line x1="{x0}" y1="{at:.1}" x2="{x1}" y2="{at:.1}" stroke="{c}" stroke-width="{w}"/>"#
            )
        } else {
            writeln!(
                svg,
                r#"<line x1="{at:.1}" y1="{y0}" x2="{at:.1}" y2="{y1}" stroke="{c}" stroke-width="{w}"/>"#
            )
        };
    };
    // Vertical grid: decades of concurrency, with 2..9 as minor lines.
    let mut d = x.lo;
    while d <= x.hi * 1.0001 {
        let px = x.at(d);
        grid(svg, true, false, px);
        let _ = writeln!(
            svg,
            r#"<text x="{px:.1}" y="{}" font-size="13" text-anchor="middle">{}</text>"#,
            y0 + 20.0,
            si(d)
        );
        for k in 2..10 {
            let v = d * f64::from(k);
            if v < x.hi {
                grid(svg, false, false, x.at(v));
            }
        }
        d *= 10.0;
    }
    if y.log {
        let mut d = y.lo;
        while d <= y.hi * 1.0001 {
            let py = y.at(d);
            grid(svg, true, true, py);
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{:.1}" font-size="13" text-anchor="end">{}</text>"#,
                x0 - 8.0,
                py + 4.0,
                si(d)
            );
            for k in 2..10 {
                let v = d * f64::from(k);
                if v < y.hi {
                    grid(svg, false, true, y.at(v));
                }
            }
            d *= 10.0;
        }
    } else {
        let steps = ((y.hi - y.lo) / 0.05).round() as i32;
        for k in 0..=steps {
            let v = y.lo + f64::from(k) * 0.05;
            if v > y.hi + 1e-9 {
                break;
            }
            let py = y.at(v);
            grid(svg, k % 2 == 0, true, py);
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{:.1}" font-size="13" text-anchor="end">{v:.2}</text>"#,
                x0 - 8.0,
                py + 4.0
            );
        }
        let py = y.at(1.0);
        let _ = writeln!(
            svg,
            r##"<line x1="{x0}" y1="{py:.1}" x2="{x1}" y2="{py:.1}" stroke="#222" stroke-width="1.5" stroke-dasharray="7,5"/>"##
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{x0}" y="{y1}" width="{}" height="{}" fill="none" stroke="#333" stroke-width="1"/>"##,
        x1 - x0,
        y0 - y1
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" font-size="14" text-anchor="middle">concurrency C (max calls in flight, log scale)</text>"#,
        (x0 + x1) / 2.0,
        y0 + 44.0
    );
    let (title, ylabel) = if panel == 0 {
        (
            "Throughput (calls/s)",
            "calls per second (log scale)".to_owned(),
        )
    } else {
        (
            "Efficiency = ideal time / measured time",
            "efficiency (1.0 = no overhead)".to_owned(),
        )
    };
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" font-size="15" font-weight="bold" text-anchor="middle">{title}</text>"#,
        (x0 + x1) / 2.0,
        y1 - 10.0
    );
    let (lx, ly) = (x0 - 62.0, (y0 + y1) / 2.0);
    let _ = writeln!(
        svg,
        r#"<text x="{lx}" y="{ly}" font-size="14" text-anchor="middle" transform="rotate(-90 {lx} {ly})">{ylabel}</text>"#
    );
}

fn legend(svg: &mut String, all: &[Series], x: f64, y: f64) {
    let h = 22.0 * all.len() as f64 + 10.0;
    let _ = writeln!(
        svg,
        r##"<rect x="{x}" y="{y}" width="262" height="{h}" fill="white" fill-opacity="0.92" stroke="#999"/>"##
    );
    for (k, s) in all.iter().enumerate() {
        let yy = y + 18.0 + 22.0 * k as f64;
        let dash = if s.dashed {
            r#" stroke-dasharray="7,5""#
        } else {
            ""
        };
        let _ = writeln!(
            svg,
            r#"<line x1="{}" y1="{yy}" x2="{}" y2="{yy}" stroke="{}" stroke-width="2.5"{dash}/>"#,
            x + 8.0,
            x + 36.0,
            s.color
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" font-size="13">{}</text>"#,
            x + 44.0,
            yy + 4.5,
            esc(&s.label)
        );
    }
}

/// "N = 32 at C = 2..16; N = 10,000 at C = 1,000; ..." from our latency runs.
pub fn workload_summary(report: &Report) -> String {
    let mut by_n: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for l in report.find("latency_sweep", "ours") {
        if let (Some(n), Some(c)) = (l.num("n"), l.num("c")) {
            by_n.entry(n as u64).or_default().push(c as u64);
        }
    }
    by_n.iter()
        .map(|(n, cs)| {
            let cs: Vec<String> = cs.iter().map(|c| thousands(*c as f64)).collect();
            format!("N = {} at C = {}", thousands(*n as f64), cs.join("/"))
        })
        .collect::<Vec<_>>()
        .join("; ")
}
