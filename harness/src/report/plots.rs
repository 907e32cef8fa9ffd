//! The report's plots, drawn with `plotters`' SVG backend only (no font library: text is
//! left to the viewer's `sans-serif`). Each plot is a pure function of the report data that
//! returns the SVG text, or why it cannot be drawn (a result without evaluations or trace):
//! the report says so instead of showing an empty plot. Axes carry units; the colours differ
//! in lightness as well as hue, and series also differ in marker shape, so the plots stay
//! readable printed in grey.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::data::{provenance_label, BaselineOutcome, ReportData, WorkloadReport};
use crate::result::WorkloadKind;
use crate::sensor::Provenance;

const SIZE: (u32, u32) = (760, 380);
const FONT: &str = "sans-serif";

/// Okabe–Ito colours ordered so neighbours differ in lightness: black, blue, vermilion,
/// orange, bluish green, reddish purple.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 0, 0),
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
];

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// One plot of one workload.
#[derive(Clone, Debug)]
pub struct Plot {
    /// The `WorkloadReport::name` it belongs to.
    pub workload: String,
    pub title: String,
    /// `<workload>-<kind>.svg`, where report.md links it.
    pub file: String,
    /// The SVG, or what is missing.
    pub svg: Result<String, String>,
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

fn svg(draw: impl FnOnce(DrawingArea<SVGBackend, plotters::coord::Shift>) -> Drawn) -> Result<String, String> {
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(root).map_err(|e| format!("drawing failed: {e}"))?;
    }
    Ok(s)
}

/// An axis tick: at most three decimals, trailing zeros dropped.
fn tick(v: &f64) -> String {
    let s = format!("{v:.3}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// `[lo, hi]` widened by 5% (or by 1 when flat), for an axis.
fn pad(lo: f64, hi: f64) -> (f64, f64) {
    let d = if hi > lo { (hi - lo) * 0.05 } else { lo.abs().max(1.0) * 0.05 };
    (lo - d, hi + d)
}

/// Quality against samples consumed, per repeat, with the target line and each repeat's
/// samples-to-target marked.
pub fn quality(w: &WorkloadReport) -> Result<String, String> {
    let r = &w.result;
    if r.workload.kind != WorkloadKind::Train {
        return Err("an inference workload has no training curve".into());
    }
    let curves: Vec<_> = r.repeats.iter().filter_map(|x| x.evaluations.as_ref().map(|e| (x, e))).collect();
    if curves.iter().all(|(_, e)| e.is_empty()) {
        return Err("no evaluations recorded (repeats[].evaluations is absent or empty)".into());
    }
    let pts = curves.iter().flat_map(|(_, e)| e.iter());
    let xmax = pts.clone().map(|e| e.samples as f64).fold(1.0, f64::max);
    let target = r.workload.quality_target;
    let (ylo, yhi) = pts.fold((target, target), |(a, b), e| (a.min(e.quality), b.max(e.quality)));
    let (ylo, yhi) = pad(ylo, yhi);
    let metric = r.workload.quality_metric.clone();
    svg(|root| {
        let mut c = ChartBuilder::on(&root)
            .caption(format!("{}: {metric} against samples consumed", r.workload.id), (FONT, 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..xmax * 1.05, ylo..yhi)?;
        c.configure_mesh()
            .x_desc("training samples consumed (samples)")
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .y_desc(format!("{metric} (held-out)"))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        let t = ShapeStyle::from(&RGBColor(90, 90, 90)).stroke_width(2);
        c.draw_series(DashedLineSeries::new([(0.0, target), (xmax * 1.05, target)], 8, 5, t))?
            .label(format!("target {target}"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], t));
        for (i, (rep, evals)) in curves.iter().enumerate() {
            let col = colour(i);
            let line: Vec<(f64, f64)> = evals.iter().map(|e| (e.samples as f64, e.quality)).collect();
            c.draw_series(LineSeries::new(line.clone(), col.stroke_width(2)))?
                .label(format!("repeat {i} (seed {})", rep.seed))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], col.stroke_width(2)));
            c.draw_series(line.iter().map(|p| marker(i, *p, col, 3)))?;
            if let Some(s) = rep.samples_to_target {
                let q = evals.iter().find(|e| e.samples >= s).map_or(target, |e| e.quality);
                c.draw_series([Circle::new((s as f64, q), 7, col.stroke_width(2))])?;
            }
        }
        c.configure_series_labels().position(SeriesLabelPosition::LowerRight).border_style(BLACK).draw()?;
        root.present()?;
        Ok(())
    })
}

/// A marker whose shape depends on the series, so series differ without colour.
fn marker<'a>(i: usize, p: (f64, f64), col: RGBColor, size: i32) -> DynElement<'static, SVGBackend<'a>, (f64, f64)> {
    match i % 3 {
        0 => Circle::new(p, size, col.filled()).into_dyn(),
        1 => TriangleMarker::new(p, size + 1, col.filled()).into_dyn(),
        _ => Cross::new(p, size + 1, col.stroke_width(2)).into_dyn(),
    }
}

/// Power over time per domain: each reduced column drawn from its minimum to its maximum, so
/// every peak shows; the window edges as grey verticals and each domain's idle level dashed.
pub fn power(w: &WorkloadReport) -> Result<String, String> {
    let t = w.trace.as_ref().map_err(Clone::clone)?;
    let all = t.bands.iter().flat_map(|b| b.points.iter());
    if all.clone().next().is_none() {
        return Err(format!("the power trace has {} rows but no power reading", t.rows));
    }
    let (t0, t1) = all.clone().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p[0]), b.max(p[0])));
    let t0 = t.windows.first().map_or(t0, |x| x.t0.min(t0));
    let t1 = t.windows.last().map_or(t1, |x| x.t1.max(t1));
    let idle = &w.result.idle_power_w;
    let ymax = all.map(|p| p[2]).chain(idle.values().map(|v| v.0)).fold(0.0, f64::max);
    let (x0, x1) = pad(t0, t1);
    svg(|root| {
        let mut c = ChartBuilder::on(&root)
            .caption(format!("{}: power by domain", w.result.workload.id), (FONT, 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, 0.0..ymax.max(1e-9) * 1.1)?;
        c.configure_mesh()
            .x_desc("time since the meter started (s)")
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .y_desc("power (W)")
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        let edge = RGBColor(160, 160, 160);
        for win in &t.windows {
            for x in [win.t0, win.t1] {
                c.draw_series([PathElement::new([(x, 0.0), (x, ymax * 1.1)], edge)])?;
            }
            c.draw_series([Text::new(win.label.clone(), (win.t0, ymax * 1.08), (FONT, 11).into_font())])?;
        }
        for (i, (d, band)) in t.domains.iter().zip(&t.bands).enumerate() {
            let col = colour(i);
            let env: Vec<(f64, f64)> = band.points.iter().flat_map(|p| [(p[0], p[1]), (p[0], p[2])]).collect();
            // An estimated domain says so in the legend, as every estimate does.
            let est = w.result.energy_sources.iter().any(|s| &s.domain == d && s.provenance == Provenance::Estimated);
            let tag = if est { ", ESTIMATED" } else { "" };
            c.draw_series(LineSeries::new(env, col.stroke_width(1)))?
                .label(format!("{d} (min-max per column{tag})"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], col.stroke_width(2)));
            if let Some(p) = idle.get(d) {
                let s = col.stroke_width(2);
                c.draw_series(DashedLineSeries::new([(x0, p.0), (x1, p.0)], 6, 4, s))?
                    .label(format!("{d} idle {:.2} W{tag}", p.0))
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], s));
            }
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// One row of an interval plot: label, point, lower, upper.
pub type Row = (String, f64, f64, f64);

/// Rows of a point with its interval (a forest plot), with vertical reference lines.
pub fn intervals(title: &str, x_desc: &str, rows: &[Row], refs: &[(f64, String)]) -> Result<String, String> {
    if rows.is_empty() {
        return Err("nothing to plot".into());
    }
    let lo = rows.iter().map(|r| r.2).chain(refs.iter().map(|r| r.0)).fold(f64::INFINITY, f64::min);
    let hi = rows.iter().map(|r| r.3).chain(refs.iter().map(|r| r.0)).fold(f64::NEG_INFINITY, f64::max);
    // Room on the right for the reference lines' labels.
    let (lo, hi) = pad(lo, hi + (hi - lo) * 0.1);
    let n = rows.len();
    let height = (90 + 34 * n as u32).max(200);
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (SIZE.0, height)).into_drawing_area();
        let draw = || -> Drawn {
            root.fill(&WHITE)?;
            let mut c = ChartBuilder::on(&root)
                .caption(title, (FONT, 16))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(230)
                .build_cartesian_2d(lo..hi, (0..n).into_segmented())?;
            c.configure_mesh()
                .x_desc(x_desc)
                .x_label_formatter(&tick)
                .y_labels(n)
                .y_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                        rows.get(*i).map_or(String::new(), |r| r.0.clone())
                    }
                    SegmentValue::Last => String::new(),
                })
                .disable_y_mesh()
                .light_line_style(RGBColor(235, 235, 235))
                .draw()?;
            for (i, (x, label)) in refs.iter().enumerate() {
                let s = ShapeStyle::from(&RGBColor(90, 90, 90)).stroke_width(2);
                let pts = [(*x, SegmentValue::Exact(0)), (*x, SegmentValue::Last)];
                if i == 0 {
                    c.draw_series(DashedLineSeries::new(pts, 8, 5, s))?;
                } else {
                    c.draw_series([PathElement::new(pts, RGBColor(160, 160, 160))])?;
                }
                // The target's label at the top, the others at the bottom, so they never overlap.
                let at = if i == 0 { SegmentValue::Last } else { SegmentValue::Exact(0) };
                c.draw_series([Text::new(label.clone(), (*x, at), (FONT, 11).into_font())])?;
            }
            for (i, r) in rows.iter().enumerate() {
                let y = || SegmentValue::CenterOf(i);
                c.draw_series([PathElement::new([(r.2, y()), (r.3, y())], BLACK.stroke_width(2))])?;
                c.draw_series([Circle::new((r.1, SegmentValue::CenterOf(i)), 5, BLACK.filled())])?;
            }
            root.present()?;
            Ok(())
        };
        draw().map_err(|e| format!("drawing failed: {e}"))?;
    }
    Ok(s)
}

/// Energy per unit of work per input holding workload `id`, per scope, with 95% intervals.
pub fn energy_per_unit(data: &ReportData, id: &str) -> Result<String, String> {
    let mut rows = Vec::new();
    let mut unit = String::new();
    for w in data.workloads.iter().filter(|w| w.result.workload.id == id) {
        unit = w.result.workload.unit.clone();
        for f in w.figures.iter().filter(|f| f.metric == "energy_per_unit_j") {
            let scope = f.scope.map_or("", |s| s.as_str());
            let label = format!("{} {scope} ({})", w.name, provenance_label(f.provenance));
            match &f.value {
                Ok(s) => rows.push((label, s.median, s.ci95[0], s.ci95[1])),
                Err(why) => rows.push((format!("{label}: {why}"), f64::NAN, f64::NAN, f64::NAN)),
            }
        }
    }
    rows.retain(|r| r.1.is_finite());
    if rows.is_empty() {
        return Err("no energy per unit could be computed (no valid repeat, or energy unresolved)".into());
    }
    // Ticks in the scale of the values: a µJ per sample is not "0.000 J".
    let top = rows.iter().map(|r| r.3.abs().max(r.1.abs())).fold(0.0, f64::max);
    let (k, name) = if top < 1e-3 {
        (1e6, "µJ")
    } else if top < 1.0 {
        (1e3, "mJ")
    } else {
        (1.0, "J")
    };
    let rows: Vec<Row> = rows.into_iter().map(|(l, a, b, c)| (l, a * k, b * k, c * k)).collect();
    let title = format!("{id}: energy per {unit}, median and 95% interval");
    intervals(&title, &format!("energy per {unit} ({name})"), &rows, &[])
}

/// The reduction per resource against the baseline with its 95% interval and the target line.
pub fn forest(w: &WorkloadReport) -> Result<String, String> {
    let c = match &w.baseline {
        None => return Err("no baseline given (--baseline)".into()),
        Some(BaselineOutcome::Missing(why)) => return Err(why.clone()),
        Some(BaselineOutcome::Compared { comparison, .. }) => comparison,
    };
    let rows: Vec<Row> = c
        .rows
        .iter()
        .filter(|r| r.reduction.is_finite() && r.ci95.iter().all(|v| v.is_finite()))
        .map(|r| {
            let est = r.resource == crate::verdict::Resource::Energy && c.energy_label == "estimated";
            let label = format!("{} {}{}", r.resource, r.metric, if est { " (ESTIMATED)" } else { "" });
            (label, 100.0 * r.reduction, 100.0 * r.ci95[0], 100.0 * r.ci95[1])
        })
        .collect();
    if rows.is_empty() {
        return Err(format!("no reduction could be computed: {}", c.overall));
    }
    let target = 100.0 * c.target;
    let title = format!("{}: reduction against the baseline, 95% interval", w.result.workload.id);
    let refs = [(target, format!("target {target:.0}%")), (0.0, "no change".to_string())];
    intervals(&title, "reduction vs baseline (%), higher is better", &rows, &refs)
}

/// Every plot of the report, in workload order: quality, power, energy per unit (once per
/// workload id), and with a baseline the forest plot.
pub fn all(data: &ReportData) -> Vec<Plot> {
    let mut out = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for w in &data.workloads {
        let mut add = |kind: &str, title: &str, svg| {
            out.push(Plot {
                workload: w.name.clone(),
                title: title.into(),
                file: format!("{}-{kind}.svg", w.name),
                svg,
            })
        };
        if w.result.workload.kind == WorkloadKind::Train {
            add("quality", "quality against samples consumed", quality(w));
        }
        add("power", "power trace", power(w));
        let id = w.result.workload.id.as_str();
        if !seen.contains(&id) {
            seen.push(id);
            add("energy", "energy per unit of work", energy_per_unit(data, id));
        }
        if w.baseline.is_some() {
            add("reduction", "reduction against the baseline", forest(w));
        }
    }
    out
}
