//! The analyses as CSV files and one static HTML page: per analysis its question, a bar chart of
//! its first numeric column by its text columns (plotters, as the load report), and its table.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use snowflake::Value;

use super::Analysis;
use crate::load::html::escape;

/// Bars drawn per chart; the table below it has every row.
const MAX_BARS: usize = 24;

/// A cell as CSV and the page show it: NULL as empty, timestamps without a zone suffix.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Int(n) => Some(*n as f64),
        Value::Decimal(d) => d.to_string().parse().ok(),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled.
pub fn csv(analysis: &Analysis) -> String {
    let field = |text: &str| {
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_owned()
        }
    };
    let mut out = String::new();
    let header: Vec<String> = analysis.columns.iter().map(|c| field(c)).collect();
    out.push_str(&header.join(","));
    out.push('\n');
    for row in &analysis.rows {
        let cells: Vec<String> = row.iter().map(|v| field(&cell(v))).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// The column charted (the first whose every non-null cell is a number) and the bars' labels
/// (the other non-numeric columns, joined).
fn chart_data(analysis: &Analysis) -> Option<(String, Vec<(String, f64)>)> {
    let numeric = |i: usize| {
        analysis
            .rows
            .iter()
            .all(|r| matches!(r[i], Value::Null) || number(&r[i]).is_some())
            && analysis.rows.iter().any(|r| number(&r[i]).is_some())
    };
    let value_col = (0..analysis.columns.len()).find(|&i| numeric(i))?;
    let label_cols: Vec<usize> = (0..analysis.columns.len())
        .filter(|&i| !numeric(i))
        .collect();
    let bars = analysis
        .rows
        .iter()
        .take(MAX_BARS)
        .map(|row| {
            let label: Vec<String> = label_cols.iter().map(|&i| cell(&row[i])).collect();
            (label.join(" / "), number(&row[value_col]).unwrap_or(0.0))
        })
        .collect();
    Some((analysis.columns[value_col].clone(), bars))
}

/// A horizontal bar chart as an SVG element: one bar per row, its label on the left.
fn bar_chart(value_name: &str, bars: &[(String, f64)]) -> String {
    let mut svg = String::new();
    let top = bars.iter().map(|(_, v)| *v).fold(0.0f64, f64::max);
    let top = if top <= 0.0 { 1.0 } else { top * 1.1 };
    let labels: Vec<String> = bars.iter().map(|(l, _)| l.clone()).collect();
    let height = 70 + 22 * bars.len() as u32;
    {
        let root = SVGBackend::with_string(&mut svg, (960, height)).into_drawing_area();
        let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let n = bars.len();
            let mut chart = ChartBuilder::on(&root)
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(260)
                .build_cartesian_2d(0.0..top, 0.0..n as f64)?;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(0)
                .x_desc(value_name)
                .label_style(("sans-serif", 12))
                .draw()?;
            // Row 0 at the top, as in the table; each label beside its bar, in the label area.
            let row_y = |i: usize| (n - 1 - i) as f64;
            chart.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                Rectangle::new(
                    [(0.0, row_y(i) + 0.15), (*v, row_y(i) + 0.85)],
                    RGBColor(60, 110, 180).mix(0.85).filled(),
                )
            }))?;
            let style = TextStyle::from(("sans-serif", 12).into_font())
                .pos(Pos::new(HPos::Right, VPos::Center));
            for (i, label) in labels.iter().enumerate() {
                let (x, y) = chart.backend_coord(&(0.0, row_y(i) + 0.5));
                root.draw(&Text::new(label.clone(), (x - 8, y), style.clone()))?;
            }
            root.present()?;
            Ok(())
        })();
        if let Err(e) = drawn {
            drop(root);
            return format!(
                "<p>the chart could not be drawn: {}</p>",
                escape(&e.to_string())
            );
        }
    }
    svg
}

fn table(analysis: &Analysis) -> String {
    let mut out = String::from("<table>\n<thead><tr>");
    for column in &analysis.columns {
        out.push_str(&format!("<th>{}</th>", escape(column)));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &analysis.rows {
        out.push_str("<tr>");
        for value in row {
            let class = if number(value).is_some() {
                " class=\"n\""
            } else {
                ""
            };
            out.push_str(&format!("<td{class}>{}</td>", escape(&cell(value))));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// The whole page: a section per analysis, each with its question, chart, table and CSV link.
pub fn html(stack: &str, analyses: &[Analysis]) -> String {
    let mut out = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Sluice marts: {stack}</title>\n<style>\n\
         body {{ font-family: sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }}\n\
         table {{ border-collapse: collapse; margin: 0.5em 0 2em; font-size: 14px; }}\n\
         th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}\n\
         td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}\n\
         th {{ background: #f0f0f0; }}\n\
         </style>\n</head>\n<body>\n<h1>What the marts say: stack {}</h1>\n\
         <p>The example queries of <code>infra/dbt/analyses</code> (dbt exposures \
         <code>sales_overview</code>, <code>manufacturing_quality</code>, \
         <code>stock_check</code>), run against the stack's warehouse. Each chart shows the \
         query's first numeric column by its text columns (at most {MAX_BARS} bars); the table \
         has every row.</p>\n<ul>\n",
        escape(stack)
    );
    for a in analyses {
        out.push_str(&format!(
            "<li><a href=\"#{0}\">{1}</a> ({2} rows)</li>\n",
            escape(&a.name),
            escape(&a.title),
            a.rows.len()
        ));
    }
    out.push_str("</ul>\n");
    for a in analyses {
        out.push_str(&format!(
            "<section id=\"{0}\">\n<h2>{1}</h2>\n<p>{3}</p>\n<p><code>analyses/{0}.sql</code>, \
             {2} rows, <a href=\"{0}.csv\">{0}.csv</a></p>\n",
            escape(&a.name),
            escape(&a.title),
            a.rows.len(),
            escape(&a.description)
        ));
        match chart_data(a) {
            Some((value_name, bars)) if !bars.is_empty() => {
                out.push_str(&bar_chart(&value_name, &bars));
            }
            _ => out.push_str("<p>(no numeric column, or no rows: nothing to chart)</p>\n"),
        }
        out.push_str(&table(a));
        out.push_str("</section>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis() -> Analysis {
        Analysis {
            name: "orders_per_channel_and_day".into(),
            title: "Orders per channel and day".into(),
            description: "Orders per channel and day: open orders.".into(),
            columns: vec!["ordered_date".into(), "channel".into(), "orders".into()],
            rows: vec![
                vec![
                    Value::Date(chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()),
                    Value::Text("web, \"direct\"".into()),
                    Value::Int(7),
                ],
                vec![
                    Value::Date(chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()),
                    Value::Null,
                    Value::Int(3),
                ],
            ],
        }
    }

    #[test]
    fn csv_quotes_what_needs_quoting_and_leaves_null_empty() {
        assert_eq!(
            csv(&analysis()),
            "ordered_date,channel,orders\n2026-03-01,\"web, \"\"direct\"\"\",7\n2026-03-02,,3\n"
        );
    }

    #[test]
    fn the_first_numeric_column_is_charted_by_the_others() {
        let (value, bars) = chart_data(&analysis()).unwrap();
        assert_eq!(value, "orders");
        assert_eq!(bars[0], ("2026-03-01 / web, \"direct\"".to_owned(), 7.0));
        assert_eq!(bars[1], ("2026-03-02 / ".to_owned(), 3.0));
    }

    #[test]
    fn the_page_has_a_chart_and_a_table_per_analysis_and_escapes_text() {
        let page = html("t1", &[analysis()]);
        assert_eq!(page.matches("<svg").count(), 1);
        assert_eq!(page.matches("<table>").count(), 1);
        assert!(page.contains("web, &quot;direct&quot;"));
        assert!(page.contains("href=\"orders_per_channel_and_day.csv\""));
    }
}
