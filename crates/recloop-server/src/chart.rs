//! Charts as SVG, drawn on the server from numbers (no fonts, no scripts): a line of the
//! production metric over iterations, with a marker on every KEEP.

use std::fmt::Write;

/// One point of a line chart.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Point {
    /// Horizontal position (iteration).
    pub x: f64,
    /// Value.
    pub y: f64,
    /// Whether a KEEP produced this point (drawn as a marker).
    pub keep: bool,
    /// Tooltip text.
    pub label: String,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Short number for an axis label.
fn tick(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(0.001..1e6).contains(&a) {
        format!("{v:.2e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// An SVG step line of `points` (sorted by x), KEEP markers as circles with tooltips, y axis
/// labelled with `metric`. Non-finite values are skipped; no points gives a plain note.
pub fn line_chart(points: &[Point], metric: &str, width: u32, height: u32) -> String {
    let pts: Vec<&Point> = points
        .iter()
        .filter(|p| p.x.is_finite() && p.y.is_finite())
        .collect();
    let (w, h) = (f64::from(width), f64::from(height));
    let (left, right, top, bottom) = (64.0, 12.0, 14.0, 30.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" aria-label="{} over iterations">"#,
        esc(metric)
    );
    if pts.is_empty() {
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" text-anchor="middle" font-size="13" fill="#666">no production values of {} yet</text></svg>"##,
            w / 2.0,
            h / 2.0,
            esc(metric)
        );
        return s;
    }
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in &pts {
        x0 = x0.min(p.x);
        x1 = x1.max(p.x);
        y0 = y0.min(p.y);
        y1 = y1.max(p.y);
    }
    if x1 - x0 < 1.0 {
        x1 = x0 + 1.0;
    }
    if (y1 - y0).abs() < 1e-12 {
        let pad = if y0 == 0.0 { 1.0 } else { y0.abs() * 0.01 };
        y0 -= pad;
        y1 += pad;
    } else {
        let pad = (y1 - y0) * 0.08;
        y0 -= pad;
        y1 += pad;
    }
    let px = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - right);
    let py = |y: f64| top + (y1 - y) / (y1 - y0) * (h - top - bottom);
    // axes and grid
    let _ = write!(
        s,
        r##"<g font-size="11" fill="#555"><line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#999"/><line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="#999"/>"##,
        h - bottom,
        w - right,
        h - bottom,
        h - bottom
    );
    for i in 0..=4 {
        let v = y0 + (y1 - y0) * f64::from(i) / 4.0;
        let y = py(v);
        let _ = write!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            w - right,
            left - 4.0,
            y + 4.0,
            tick(v)
        );
    }
    // whole iterations only: every one on a short axis, five evenly spaced otherwise
    let xs: Vec<f64> = if x1 - x0 <= 8.0 {
        (0..=((x1 - x0).round() as u32))
            .map(|i| x0 + f64::from(i))
            .collect()
    } else {
        (0..=4)
            .map(|i| (x0 + (x1 - x0) * f64::from(i) / 4.0).round())
            .collect()
    };
    for v in xs {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{:.0}</text>"#,
            px(v),
            h - bottom + 14.0,
            v
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">iteration</text></g>"#,
        (left + w - right) / 2.0,
        h - 2.0
    );
    // the production value holds until the next KEEP: a step line
    let mut d = String::new();
    let mut prev: Option<(f64, f64)> = None;
    for p in &pts {
        let (x, y) = (px(p.x), py(p.y));
        match prev {
            None => {
                let _ = write!(d, "M{x:.1},{y:.1}");
            }
            Some((_, py0)) => {
                let _ = write!(d, " L{x:.1},{py0:.1} L{x:.1},{y:.1}");
            }
        }
        prev = Some((x, y));
    }
    if let Some((x, y)) = prev {
        let _ = write!(d, " L{:.1},{y:.1}", px(x1).max(x));
    }
    let _ = write!(
        s,
        r##"<path d="{d}" fill="none" stroke="#2a6fdb" stroke-width="1.8"/>"##
    );
    // markers: at most 400 drawn (evenly thinned) so a long run stays light
    let keeps: Vec<&&Point> = pts.iter().filter(|p| p.keep).collect();
    let stride = keeps.len().div_ceil(400).max(1);
    for p in keeps.iter().step_by(stride) {
        let _ = write!(
            s,
            r##"<circle class="keep" cx="{:.1}" cy="{:.1}" r="3.5" fill="#1a9d49"><title>{}</title></circle>"##,
            px(p.x),
            py(p.y),
            esc(&p.label)
        );
    }
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" font-size="11" fill="#333">{} (production; ● = KEEP)</text></svg>"##,
        left + 6.0,
        top + 10.0,
        esc(metric)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_line_and_keep_markers_and_escapes_labels() {
        let pts = vec![
            Point {
                x: 0.0,
                y: 0.30,
                keep: false,
                label: "start".into(),
            },
            Point {
                x: 3.0,
                y: 0.32,
                keep: true,
                label: "<b>p-1</b>".into(),
            },
            Point {
                x: 5.0,
                y: f64::NAN,
                keep: true,
                label: "skipped".into(),
            },
        ];
        let svg = line_chart(&pts, "ndcg@10", 600, 200);
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(svg.contains("&lt;b&gt;p-1"));
        assert!(!svg.contains("NaN"));
        assert!(line_chart(&[], "m", 100, 50).contains("no production values"));
    }
}
