//! `report.html`: the report as one self-contained page (no scripts, no fonts, no network) with
//! an SVG chart per section, drawn with plotters: rates per hop, queue depths, the oldest
//! waiting event per hop, freshness percentiles, CPU and RSS per process over time, the cdc
//! slot's WAL (with an `[oltp]` workload), and the rate-vs-freshness curve of `--find-max`. The warm-up (and any marked window, such as a
//! fault) is shaded on every time chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use plotters::prelude::*;

use super::report::Report;
use crate::rig::sampler::Sample;

/// A shaded interval of the time axis, e.g. the warm-up or a fault.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Band {
    pub from_s: f64,
    pub to_s: f64,
    pub label: String,
}

struct Line {
    label: String,
    points: Vec<(f64, f64)>,
}

/// Text for HTML: `&`, `<`, `>` and `"` escaped (the consumers' report page uses it too).
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `**bold**` and `` `code` `` of one escaped line of the report's Markdown.
fn inline(text: &str) -> String {
    let mut out = String::new();
    let (mut bold, mut code) = (false, false);
    let mut rest = escape(text);
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("**") {
            out.push_str(if bold { "</strong>" } else { "<strong>" });
            bold = !bold;
            rest = after.to_owned();
        } else if let Some(after) = rest.strip_prefix('`') {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
            rest = after.to_owned();
        } else {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = rest[c.len_utf8()..].to_owned();
        }
    }
    out
}

/// The report's Markdown (headings, pipe tables with their alignment row, lists, paragraphs)
/// as HTML: the page shows the same facts as `report.md`, as tables.
fn markdown_to_html(md: &str) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = md.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        if line.is_empty() {
            i += 1;
        } else if let Some(h) = line.strip_prefix("## ") {
            let _ = writeln!(out, "<h3>{}</h3>", inline(h));
            i += 1;
        } else if let Some(h) = line.strip_prefix("# ") {
            let _ = writeln!(out, "<h2>{}</h2>", inline(h));
            i += 1;
        } else if line.starts_with('|') {
            let cells = |l: &str| -> Vec<String> {
                l.trim()
                    .trim_start_matches('|')
                    .trim_end_matches('|')
                    .split('|')
                    .map(|c| c.trim().to_owned())
                    .collect()
            };
            let head = cells(line);
            let right: Vec<bool> = lines
                .get(i + 1)
                .map(|l| cells(l).iter().map(|c| c.ends_with(':')).collect())
                .unwrap_or_default();
            out.push_str("<table>\n<tr>");
            for c in &head {
                let _ = write!(out, "<th>{}</th>", inline(c));
            }
            out.push_str("</tr>\n");
            i += 2;
            while i < lines.len() && lines[i].starts_with('|') {
                out.push_str("<tr>");
                for (k, c) in cells(lines[i]).iter().enumerate() {
                    let align = if right.get(k).copied().unwrap_or(false) {
                        " class=\"num\""
                    } else {
                        ""
                    };
                    let _ = write!(out, "<td{align}>{}</td>", inline(c));
                }
                out.push_str("</tr>\n");
                i += 1;
            }
            out.push_str("</table>\n");
        } else if line.starts_with("- ") {
            out.push_str("<ul>\n");
            while i < lines.len() && lines[i].starts_with("- ") {
                let _ = writeln!(out, "<li>{}</li>", inline(&lines[i][2..]));
                i += 1;
            }
            out.push_str("</ul>\n");
        } else {
            let _ = writeln!(out, "<p>{}</p>", inline(line));
            i += 1;
        }
    }
    out
}

/// One line chart as an SVG element. Empty input gives a chart that says so.
fn chart(title: &str, x_desc: &str, y_desc: &str, lines: &[Line], bands: &[Band]) -> String {
    let mut svg = String::new();
    let points = lines.iter().flat_map(|l| l.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0f64);
    for (x, y) in points {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y1 = y1.max(*y);
    }
    if x0 > x1 {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    let y1 = if y1 <= 0.0 { 1.0 } else { y1 * 1.08 };
    {
        let root = SVGBackend::with_string(&mut svg, (960, 340)).into_drawing_area();
        let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(38)
                .y_label_area_size(70)
                .build_cartesian_2d(x0..x1, 0.0..y1)?;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .light_line_style(WHITE.mix(0.0))
                .draw()?;
            for band in bands {
                let (a, b) = (band.from_s.max(x0), band.to_s.min(x1));
                if a < b {
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(a, 0.0), (b, y1)],
                        RGBColor(230, 120, 60).mix(0.12).filled(),
                    )))?;
                    // The band's tag on top: a fault's number as in the faults table, or a
                    // letter the page's legend explains.
                    let tag = band.label.split(':').next().unwrap_or_default().to_owned();
                    chart.draw_series(std::iter::once(Text::new(
                        tag,
                        (a, y1 * 0.99),
                        ("sans-serif", 12).into_font().color(&RGBColor(160, 70, 20)),
                    )))?;
                }
            }
            for (i, line) in lines.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                chart
                    .draw_series(LineSeries::new(
                        line.points.iter().copied(),
                        color.stroke_width(2),
                    ))?
                    .label(line.label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
            }
            if !lines.is_empty() {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK.mix(0.3))
                    .draw()?;
            }
            root.present()?;
            Ok(())
        })();
        if let Err(e) = drawn {
            drop(root);
            return format!(
                "<p>chart {title:?} could not be drawn: {}</p>",
                escape(&e.to_string())
            );
        }
    }
    match svg.find("<svg") {
        Some(start) => svg[start..].to_owned(),
        None => svg,
    }
}

/// Per-second rates from a cumulative counter.
fn rates(samples: &[Sample], counter: impl Fn(&Sample) -> u64) -> Vec<(f64, f64)> {
    samples
        .windows(2)
        .filter(|w| w[1].t > w[0].t)
        .map(|w| {
            let d = counter(&w[1]).saturating_sub(counter(&w[0])) as f64;
            (w[1].t, d / (w[1].t - w[0].t))
        })
        .collect()
}

/// The age of the oldest event waiting before a hop, estimated from the counters as a FIFO:
/// when the hop has passed `n` events, the next one waiting is the `(n + 1)`-th published, and
/// it was published when the published counter passed `n`.
pub fn oldest_waiting(samples: &[Sample], counter: impl Fn(&Sample) -> u64) -> Vec<(f64, f64)> {
    samples
        .iter()
        .map(|s| {
            let done = counter(s);
            if done >= s.published {
                return (s.t, 0.0);
            }
            // The first sample at which the published counter exceeded `done`.
            let since = samples
                .iter()
                .find(|p| p.published > done)
                .map_or(s.t, |p| p.t);
            (s.t, (s.t - since).max(0.0))
        })
        .collect()
}

fn per_process(samples: &[Sample], value: impl Fn(&crate::rig::procfs::Usage) -> f64) -> Vec<Line> {
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for s in samples {
        for (name, usage) in &s.usage {
            series
                .entry(name.clone())
                .or_default()
                .push((s.t, value(usage)));
        }
    }
    series
        .into_iter()
        .map(|(label, points)| Line { label, points })
        .collect()
}

/// One chart per section: `(id, heading, svg)`.
fn charts(report: &Report, bands: &[Band]) -> Vec<(&'static str, &'static str, String)> {
    let samples = &report.series;
    let mut sections: Vec<(&'static str, &'static str, String)> = Vec::new();
    let hop = |label: &str, f: fn(&Sample) -> u64| Line {
        label: label.into(),
        points: rates(samples, f),
    };
    sections.push((
        "rates",
        "Rates per hop",
        chart(
            "Events per second through each hop",
            "seconds",
            "events/s",
            &[
                hop("published", |s| s.published),
                hop("forwarded (relay)", |s| s.forwarded),
                hop("written (batcher)", |s| s.written),
                hop("loaded (pipe)", |s| s.loaded),
            ],
            bands,
        ),
    ));
    let mut depths: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for s in samples {
        for (queue, depth) in &s.queues {
            depths
                .entry(queue.clone())
                .or_default()
                .push((s.t, *depth as f64));
        }
    }
    sections.push((
        "queues",
        "Queue depths",
        chart(
            "Messages waiting per queue",
            "seconds",
            "messages",
            &depths
                .into_iter()
                .map(|(label, points)| Line { label, points })
                .collect::<Vec<_>>(),
            bands,
        ),
    ));
    let age = |label: &str, f: fn(&Sample) -> u64| Line {
        label: label.into(),
        points: oldest_waiting(samples, f),
    };
    sections.push((
        "backlog-age",
        "Oldest waiting event per hop",
        chart(
            "Age of the oldest event not yet through each hop (estimated, FIFO)",
            "seconds",
            "seconds waiting",
            &[
                age("before relay", |s| s.forwarded),
                age("before batcher", |s| s.written),
                age("before pipe", |s| s.loaded),
            ],
            bands,
        ),
    ));
    let fresh = &report.freshness.series;
    // A second of the schedule on the series' clock, which started before the baselines.
    let at = |second| report.run_started_at_s + second as f64;
    sections.push((
        "freshness",
        "Freshness over time",
        chart(
            "Freshness of the events meant for each second (intended publish to visible in RAW)",
            "seconds (intended publish, on the run's clock like every chart)",
            "milliseconds",
            &[
                Line {
                    label: "p50".into(),
                    points: fresh.iter().map(|p| (at(p.second), p.p50_ms)).collect(),
                },
                Line {
                    label: "p99".into(),
                    points: fresh.iter().map(|p| (at(p.second), p.p99_ms)).collect(),
                },
                Line {
                    label: "max".into(),
                    points: fresh.iter().map(|p| (at(p.second), p.max_ms)).collect(),
                },
            ],
            bands,
        ),
    ));
    sections.push((
        "cpu",
        "CPU per process",
        chart(
            "CPU per process (cores)",
            "seconds",
            "cores",
            &per_process(samples, |u| u.cpu_cores),
            bands,
        ),
    ));
    sections.push((
        "memory",
        "Memory per process",
        chart(
            "Resident memory per process (MiB)",
            "seconds",
            "MiB",
            &per_process(samples, |u| u.rss_bytes as f64 / (1024.0 * 1024.0)),
            bands,
        ),
    ));
    cdc_and_search_charts(report, bands, &mut sections);
    sections
}

/// The change log's chart and the rate search's, when the run has them.
fn cdc_and_search_charts(
    report: &Report,
    bands: &[Band],
    sections: &mut Vec<(&'static str, &'static str, String)>,
) {
    if let Some(cdc) = &report.cdc {
        let kib = |b: u64| b as f64 / 1024.0;
        sections.push((
            "cdc-wal",
            "The cdc slot's WAL",
            chart(
                "WAL the cdc's slot holds back (KiB): retained and not yet confirmed",
                "seconds",
                "KiB",
                &[
                    Line {
                        label: "retained".into(),
                        points: cdc
                            .wal
                            .iter()
                            .map(|p| (p.t, kib(p.retained_bytes)))
                            .collect(),
                    },
                    Line {
                        label: "unconfirmed".into(),
                        points: cdc
                            .wal
                            .iter()
                            .map(|p| (p.t, kib(p.unconfirmed_bytes)))
                            .collect(),
                    },
                ],
                bands,
            ),
        ));
    }
    if let Some(search) = &report.find_max {
        let mut steps: Vec<_> = search.steps.iter().collect();
        steps.sort_by(|a, b| a.offered.total_cmp(&b.offered));
        sections.push((
            "find-max",
            "Rate against freshness",
            chart(
                "Freshness at each offered rate (--find-max)",
                "offered events/s",
                "milliseconds",
                &[
                    Line {
                        label: "p50".into(),
                        points: steps
                            .iter()
                            .map(|s| (s.offered, s.freshness_p50_ms))
                            .collect(),
                    },
                    Line {
                        label: "p99".into(),
                        points: steps
                            .iter()
                            .map(|s| (s.offered, s.freshness_p99_ms))
                            .collect(),
                    },
                ],
                &[],
            ),
        ));
    }
}

/// The page: the markdown summary's facts as tables, and one chart per section.
pub fn render(report: &Report, bands: &[Band]) -> String {
    let sections = charts(report, bands);
    let mut page = String::new();
    let verdict = if report.passed() { "PASS" } else { "FAIL" };
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>Sluice load test {} ({verdict})</title>\n\
         <style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse;margin:0.5em 0}}td,th{{border:1px solid #ccc;padding:2px 8px}}\
         td,th{{text-align:left}}td.num{{text-align:right}}.fail{{color:#b00}}.pass{{color:#070}}</style>\n</head>\n<body>\n",
        escape(&report.scenario)
    );
    let _ = writeln!(
        page,
        "<h1>Load test <code>{}</code> (seed {}): <span class=\"{}\">{verdict}</span></h1>",
        escape(&report.scenario),
        report.seed,
        verdict.to_lowercase()
    );
    // What failed first: problems, then the gates that failed.
    for problem in &report.problems {
        let _ = writeln!(page, "<p class=\"fail\">{}</p>", escape(problem));
    }
    let failed: Vec<String> = report
        .gates
        .iter()
        .filter(|g| !g.passed)
        .map(|g| format!("<li class=\"fail\">{}</li>", escape(&g.to_string())))
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(
            page,
            "<h2>Failed gates</h2>\n<ul>\n{}\n</ul>",
            failed.join("\n")
        );
    }
    let _ = writeln!(page, "<table>\n<tr><th>figure</th><th>value</th></tr>");
    for f in report.headline() {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td class=\"num\">{:.3} {}</td></tr>",
            escape(&f.name),
            f.value,
            escape(&f.unit)
        );
    }
    let _ = writeln!(page, "</table>");
    // The summary without its title, which the page's heading already is.
    let markdown = report.markdown();
    let summary = markdown
        .split_once('\n')
        .filter(|(first, _)| first.starts_with("# "))
        .map_or(markdown.as_str(), |(_, rest)| rest);
    page.push_str(&markdown_to_html(summary));
    let _ = writeln!(
        page,
        "<h2>Charts</h2>\n<p>Every chart's time axis is seconds since the load test started \
         (baselines first). Shaded, with the tag drawn on the chart: {}.</p>",
        escape(
            &bands
                .iter()
                .map(|b| b.label.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        )
    );
    for (id, heading, svg) in sections {
        let _ = writeln!(
            page,
            "<section id=\"{id}\">\n<h2>{heading}</h2>\n{svg}\n</section>"
        );
    }
    page.push_str("</body>\n</html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, published: u64, loaded: u64) -> Sample {
        Sample {
            t,
            published,
            forwarded: loaded,
            written: loaded,
            loaded,
            ..Sample::default()
        }
    }

    #[test]
    fn the_oldest_waiting_event_is_the_next_one_published() {
        let samples = [
            sample(0.0, 0, 0),
            sample(1.0, 100, 0),
            sample(2.0, 200, 100),
            sample(3.0, 200, 200),
        ];
        let age = oldest_waiting(&samples, |s| s.loaded);
        // At 2 s the pipe has 100: the 101st was published between 1 s and 2 s (seen at 2 s),
        // at 1 s nothing was through and the first was seen published at 1 s.
        assert_eq!(age, [(0.0, 0.0), (1.0, 0.0), (2.0, 0.0), (3.0, 0.0)]);
        let samples = [
            sample(0.0, 10, 0),
            sample(1.0, 100, 0),
            sample(5.0, 200, 50),
        ];
        assert_eq!(
            oldest_waiting(&samples, |s| s.loaded),
            [(0.0, 0.0), (1.0, 1.0), (5.0, 4.0)]
        );
        assert_eq!(rates(&samples, |s| s.published), [(1.0, 90.0), (5.0, 25.0)]);
    }

    /// The page as XML (it must be well-formed).
    fn parse(page: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse_with_options(
            page,
            roxmltree::ParsingOptions {
                allow_dtd: true,
                ..Default::default()
            },
        )
        .expect("well-formed")
    }

    #[test]
    fn every_section_has_one_svg_and_the_page_is_well_formed() {
        let report = Report {
            scenario: "t<&>".into(),
            series: (0..10u32)
                .map(|i| sample(f64::from(i), u64::from(i) * 100, u64::from(i) * 90))
                .collect(),
            ..Report::default()
        };
        let page = render(
            &report,
            &[Band {
                from_s: 0.0,
                to_s: 2.0,
                label: "warm-up".into(),
            }],
        );
        let doc = parse(&page);
        let sections: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("section"))
            .collect();
        assert_eq!(sections.len(), 6);
        for s in sections {
            let svgs = s
                .descendants()
                .filter(|n| n.tag_name().name() == "svg")
                .count();
            assert_eq!(svgs, 1, "section {:?}", s.attribute("id"));
        }
        assert!(page.contains("t&lt;&amp;&gt;"));
    }

    /// The summary's tables are HTML tables, nothing of the Markdown shows, and what failed
    /// comes before the figures.
    #[test]
    fn the_summary_is_html_tables_and_failures_come_first() {
        let report = Report {
            scenario: "s".into(),
            gates: vec![crate::load::gates::GateResult {
                gate: "freshness_p99".into(),
                limit: "<= 1.0 ms".into(),
                measured: "12.0 ms".into(),
                passed: false,
            }],
            ..Report::default()
        };
        let page = render(&report, &[]);
        assert!(
            !page.contains("|---") && !page.contains("| "),
            "raw Markdown in the page"
        );
        assert!(!page.contains("**") && !page.contains("<pre>"));
        let doc = parse(&page);
        let tables = doc
            .descendants()
            .filter(|n| n.has_tag_name("table"))
            .count();
        assert!(tables >= 5, "{tables} tables");
        let throughput = doc
            .descendants()
            .find(|n| n.has_tag_name("h3") && n.text() == Some("Throughput"))
            .expect("a Throughput heading");
        let rows = throughput
            .next_siblings()
            .find(|n| n.has_tag_name("table"))
            .unwrap()
            .children()
            .filter(|n| n.has_tag_name("tr"))
            .count();
        assert_eq!(rows, 9, "a header and a row per rate");
        let failed = page.find("Failed gates").expect("the failed gate is shown");
        assert!(failed < page.find("<table>").unwrap(), "failures first");
    }

    #[test]
    fn markdown_tables_lists_and_inline_marks_convert() {
        let html = markdown_to_html(
            "# T `x`\n\n| a | b |\n|---|---:|\n| **c** | 1 |\n\n- one\n- two\n\ntext <&>\n",
        );
        assert_eq!(
            html,
            "<h2>T <code>x</code></h2>\n<table>\n<tr><th>a</th><th>b</th></tr>\n\
             <tr><td><strong>c</strong></td><td class=\"num\">1</td></tr>\n</table>\n\
             <ul>\n<li>one</li>\n<li>two</li>\n</ul>\n<p>text &lt;&amp;&gt;</p>\n"
        );
    }
}
