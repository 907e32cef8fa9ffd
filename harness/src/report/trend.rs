//! `history trend`: a metric over time, each run's median with its 95% interval, as text and
//! as an SVG drawn like the report's plots ([`super::plots`]: `plotters`' SVG backend only,
//! its palette, text left to the viewer's `sans-serif`). One series per system class, backend
//! and division (runs on different machines, or a closed and an open method, are not one
//! line); runs with a planted slowdown are
//! drawn hollow and marked in the text. Pure functions of the points.

use std::collections::BTreeMap;
use std::fmt::Write;

use plotters::prelude::*;

use super::plots::PALETTE;
use crate::store::TrendPoint;

const SIZE: (u32, u32) = (760, 380);
const FONT: &str = "sans-serif";

/// One line per run, oldest first.
pub fn text(workload: &str, metric: &str, points: &[TrendPoint]) -> String {
    let mut s = format!("{workload}: {metric}, median and 95% interval per run (oldest first)\n");
    for p in points {
        let planted = p.planted_slowdown.filter(|x| *x > 0.0).map_or(String::new(), |x| format!("  [planted +{x}]"));
        let _ = writeln!(
            s,
            "{}  {}  {:>14.6}  [{:.6}, {:.6}]  n {}  {}{planted}",
            p.created_at.format("%Y-%m-%d %H:%M:%S"),
            p.run_id,
            p.median,
            p.ci95[0],
            p.ci95[1],
            p.n,
            label(p)
        );
    }
    s
}

/// A run's series: `class backend`, and its division for a training run.
fn label(p: &TrendPoint) -> String {
    match &p.division {
        Some(d) => format!("{} {} {d}", p.system_class, p.backend),
        None => format!("{} {}", p.system_class, p.backend),
    }
}

fn series(points: &[TrendPoint]) -> BTreeMap<String, Vec<&TrendPoint>> {
    let mut m: BTreeMap<String, Vec<&TrendPoint>> = BTreeMap::new();
    for p in points {
        m.entry(label(p)).or_default().push(p);
    }
    m
}

/// The SVG plot: x is days since the first run, y the metric; each run a point at its median
/// with a bar over its interval. An error when there is nothing finite to draw.
pub fn svg(workload: &str, metric: &str, points: &[TrendPoint]) -> Result<String, String> {
    let finite: Vec<&TrendPoint> =
        points.iter().filter(|p| p.median.is_finite() && p.ci95.iter().all(|v| v.is_finite())).collect();
    let first = finite.first().ok_or("no run has a finite value to draw")?.created_at;
    let day = |p: &TrendPoint| (p.created_at - first).num_milliseconds() as f64 / 86_400_000.0;
    let (mut x0, mut x1) = (0.0f64, finite.iter().map(|p| day(p)).fold(0.0, f64::max));
    let lo = finite.iter().map(|p| p.ci95[0].min(p.median)).fold(f64::INFINITY, f64::min);
    let hi = finite.iter().map(|p| p.ci95[1].max(p.median)).fold(f64::NEG_INFINITY, f64::max);
    let pad = |lo: f64, hi: f64| {
        let d = if hi > lo { (hi - lo) * 0.05 } else { lo.abs().max(1.0) * 0.05 };
        (lo - d, hi + d)
    };
    let (y0, y1) = pad(lo, hi);
    (x0, x1) = pad(x0, x1);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{workload}: {metric} over time"), (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(format!("days since {}", first.format("%Y-%m-%d %H:%M UTC")))
            .y_desc(format!("{metric} (median, 95% interval)"))
            .label_style((FONT, 12))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (name, pts)) in series(points).into_iter().enumerate() {
            let col = PALETTE[i % PALETTE.len()];
            let pts: Vec<&TrendPoint> =
                pts.into_iter().filter(|p| p.median.is_finite() && p.ci95.iter().all(|v| v.is_finite())).collect();
            chart
                .draw_series(LineSeries::new(pts.iter().map(|p| (day(p), p.median)), col.stroke_width(1)))
                .map_err(|e| e.to_string())?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, col.filled()));
            chart
                .draw_series(
                    pts.iter()
                        .map(|p| PathElement::new(vec![(day(p), p.ci95[0]), (day(p), p.ci95[1])], col.stroke_width(2))),
                )
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(pts.iter().map(|p| {
                    let planted = p.planted_slowdown.is_some_and(|x| x > 0.0);
                    Circle::new((day(p), p.median), 4, if planted { col.stroke_width(2) } else { col.filled() })
                }))
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((FONT, 12))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(day: i64, median: f64, planted: Option<f64>) -> TrendPoint {
        TrendPoint {
            run_id: format!("{day:012}"),
            created_at: chrono::DateTime::from_timestamp(1_770_000_000 + day * 86_400, 0).unwrap(),
            median,
            mean: median,
            ci95: [median - 1.0, median + 1.0],
            n: 5,
            backend: "cpu".into(),
            system_class: "cpu-amd-epyc-2t".into(),
            planted_slowdown: planted,
            division: None,
        }
    }

    #[test]
    fn every_run_is_drawn_with_its_interval() {
        let pts = [point(0, 10.0, None), point(1, 11.0, None), point(3, 13.0, Some(0.2))];
        let s = svg("w", "energy_j", &pts).unwrap();
        let doc = roxmltree::Document::parse(&s).expect("well-formed SVG");
        let circles = doc.descendants().filter(|n| n.has_tag_name("circle")).count();
        assert_eq!(circles, 3 + 1, "three runs and the legend's marker");
        assert!(s.contains("energy_j over time"));
        let t = text("w", "energy_j", &pts);
        assert_eq!(t.lines().count(), 4);
        assert!(t.lines().nth(3).unwrap().ends_with("[planted +0.2]"), "{t}");
        assert!(svg("w", "m", &[point(0, f64::NAN, None)]).is_err());
    }

    /// A closed and an open training run of one machine and backend are two series (two
    /// legend entries), and each text line names its division.
    #[test]
    fn divisions_are_separate_series() {
        let division = |day, d: &str| TrendPoint { division: Some(d.into()), ..point(day, 10.0 + day as f64, None) };
        let pts = [division(0, "closed"), division(1, "open"), division(2, "closed")];
        let s = svg("w", "samples_to_target", &pts).unwrap();
        let doc = roxmltree::Document::parse(&s).expect("well-formed SVG");
        let circles = doc.descendants().filter(|n| n.has_tag_name("circle")).count();
        assert_eq!(circles, 3 + 2, "three runs and two legend markers");
        assert!(s.contains("cpu-amd-epyc-2t cpu open") && s.contains("cpu-amd-epyc-2t cpu closed"));
        let t = text("w", "samples_to_target", &pts);
        assert!(t.lines().nth(2).unwrap().ends_with("cpu-amd-epyc-2t cpu open"), "{t}");
    }
}
