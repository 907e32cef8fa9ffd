//! The report's plots, drawn with `plotters`' SVG backend only (no font library: text is
//! left to the viewer's `sans-serif`). Each plot is a pure function of the report data that
//! returns the SVG text, or why it cannot be drawn (a result without evaluations or trace):
//! the report says so instead of showing an empty plot. Axes carry units; the colours differ
//! in lightness as well as hue, and series also differ in marker shape, so the plots stay
//! readable printed in grey.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

mod intervals;

pub use intervals::{energy_per_unit, forest, intervals, EnergyInput, Row};

use super::data::WorkloadReport;
use crate::result::WorkloadKind;
use crate::sensor::Provenance;

const SIZE: (u32, u32) = (900, 400);
/// Room right of a line plot for its legend.
const LEGEND_W: u32 = 230;
/// The shade of a measured repeat's window in the power trace.
const SHADE: RGBColor = RGBColor(228, 228, 228);

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
    /// `quality`, `power`, `energy` or `reduction`.
    pub kind: &'static str,
    pub title: String,
    /// `<workload>-<kind>.svg`, where report.md links it.
    pub file: String,
    /// The SVG, or what is missing.
    pub svg: Result<String, String>,
}

type Drawn = Result<(), Box<dyn std::error::Error>>;
type Root<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn svg_sized(size: (u32, u32), draw: impl FnOnce(&Root) -> Drawn) -> Result<String, String> {
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root).map_err(|e| format!("drawing failed: {e}"))?;
        root.present().map_err(|e| e.to_string())?;
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

/// A title, with `ESTIMATED` when the figure holds an estimate (never left to the legend).
fn titled(title: String, estimated: bool) -> String {
    if estimated {
        format!("{title} (ESTIMATED)")
    } else {
        title
    }
}

fn text_style(size: u32, h: HPos) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).pos(Pos::new(h, VPos::Center))
}

type Chart<'a> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Series `i`'s markers at `pts`: one of six shapes, so series differ without colour.
fn markers(c: &mut Chart, i: usize, pts: &[(f64, f64)], col: RGBColor) -> Drawn {
    let (fill, line) = (col.filled(), col.stroke_width(2));
    let at = |p: &(f64, f64)| EmptyElement::at(*p);
    match i % 6 {
        0 => c.draw_series(pts.iter().map(|p| Circle::new(*p, 3, fill)))?,
        1 => c.draw_series(pts.iter().map(|p| TriangleMarker::new(*p, 4, fill)))?,
        2 => c.draw_series(pts.iter().map(|p| Cross::new(*p, 4, line)))?,
        3 => c.draw_series(pts.iter().map(|p| at(p) + Rectangle::new([(-3, -3), (3, 3)], line)))?,
        4 => c.draw_series(pts.iter().map(|p| at(p) + Polygon::new(vec![(0, -5), (5, 0), (0, 5), (-5, 0)], fill)))?,
        _ => c.draw_series(pts.iter().map(|p| Circle::new(*p, 4, line)))?,
    };
    Ok(())
}

/// The same marker as [`markers`] at pixel `(x, y)` of `root`, for the legend.
fn legend_marker(root: &Root, i: usize, (x, y): (i32, i32), col: RGBColor) -> Drawn {
    let (fill, line) = (col.filled(), col.stroke_width(2));
    match i % 6 {
        0 => root.draw(&Circle::new((x, y), 3, fill))?,
        1 => root.draw(&TriangleMarker::new((x, y), 4, fill))?,
        2 => root.draw(&Cross::new((x, y), 4, line))?,
        3 => root.draw(&Rectangle::new([(x - 3, y - 3), (x + 3, y + 3)], line))?,
        4 => root.draw(&Polygon::new(vec![(x, y - 5), (x + 5, y), (x, y + 5), (x - 5, y)], fill))?,
        _ => root.draw(&Circle::new((x, y), 4, line))?,
    }
    Ok(())
}

/// One entry of a legend drawn beside the plot (never over the data).
struct Key {
    label: String,
    style: ShapeStyle,
    /// Solid line, dashed line, or none (marker only).
    line: Option<bool>,
    marker: Option<usize>,
    /// The open ring that marks samples-to-target.
    ring: bool,
    /// A filled patch behind the line (a shaded window).
    shade: Option<RGBColor>,
}

impl Key {
    fn line(label: String, style: ShapeStyle, dashed: bool) -> Key {
        Key { label, style, line: Some(dashed), marker: None, ring: false, shade: None }
    }
}

/// The legend, top-left at pixel `(x, y)` of `root`.
fn legend(root: &Root, (x, y): (i32, i32), keys: &[Key]) -> Drawn {
    for (k, key) in keys.iter().enumerate() {
        let y = y + 20 * k as i32;
        if let Some(fill) = key.shade {
            root.draw(&Rectangle::new([(x, y - 7), (x + 24, y + 7)], fill.filled()))?;
        }
        match key.line {
            Some(false) => root.draw(&PathElement::new([(x, y), (x + 24, y)], key.style))?,
            Some(true) => {
                for a in [0, 10, 20] {
                    root.draw(&PathElement::new([(x + a, y), (x + a + 5, y)], key.style))?;
                }
            }
            None => {}
        }
        if let Some(i) = key.marker {
            let RGBAColor(r, g, b, _) = key.style.color;
            legend_marker(root, i, (x + 12, y), RGBColor(r, g, b))?;
        }
        if key.ring {
            root.draw(&Circle::new((x + 12, y), 7, key.style))?;
        }
        root.draw(&Text::new(key.label.clone(), (x + 32, y), text_style(12, HPos::Left)))?;
    }
    Ok(())
}

/// Quality against samples consumed, per repeat (colour and marker shape), with the target
/// line and each repeat's samples-to-target ringed.
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
    let xmax = pts.clone().map(|e| e.samples as f64).fold(1.0, f64::max) * 1.05;
    let target = r.workload.quality_target;
    let (ylo, yhi) = pts.fold((target, target), |(a, b), e| (a.min(e.quality), b.max(e.quality)));
    let (ylo, yhi) = pad(ylo, yhi);
    let metric = r.workload.quality_metric.clone();
    svg_sized(SIZE, |root| {
        let mut c = ChartBuilder::on(root)
            .caption(format!("{}: {metric} against samples consumed", r.workload.id), (FONT, 16))
            .margin(12)
            .margin_right(LEGEND_W)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..xmax, ylo..yhi)?;
        c.configure_mesh()
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .x_desc("training samples consumed (samples)")
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .y_desc(format!("{metric} (held-out, fraction)"))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        let t = ShapeStyle::from(&RGBColor(90, 90, 90)).stroke_width(2);
        c.draw_series(DashedLineSeries::new([(0.0, target), (xmax, target)], 8, 5, t))?;
        let mut keys = vec![Key::line(format!("target {target}"), t, true)];
        for (i, (rep, evals)) in curves.iter().enumerate() {
            let col = colour(i);
            let line: Vec<(f64, f64)> = evals.iter().map(|e| (e.samples as f64, e.quality)).collect();
            c.draw_series(LineSeries::new(line.clone(), col.stroke_width(2)))?;
            markers(&mut c, i, &line, col)?;
            if let Some(s) = rep.samples_to_target {
                let q = evals.iter().find(|e| e.samples >= s).map_or(target, |e| e.quality);
                c.draw_series([Circle::new((s as f64, q), 8, col.stroke_width(2))])?;
            }
            let label = format!("repeat {i} (seed {})", rep.seed);
            keys.push(Key { marker: Some(i), ..Key::line(label, col.stroke_width(2), false) });
        }
        let ring = BLACK.stroke_width(2);
        keys.push(Key { line: None, ring: true, ..Key::line("samples to target".into(), ring, false) });
        legend(root, (SIZE.0 as i32 - LEGEND_W as i32 + 8, 50), &keys)
    })
}

/// Power over time per domain: each reduced column drawn from its minimum to its maximum, so
/// every peak shows; measured windows shaded, their edges dashed and named; each domain's idle
/// level dotted. Domains differ in colour, line width and legend order.
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
    let ymax = all.map(|p| p[2]).chain(idle.values().map(|v| v.0)).fold(0.0, f64::max).max(1e-9);
    let top = ymax * 1.12;
    let (x0, x1) = pad(t0, t1);
    let est =
        |d: &String| w.result.energy_sources.iter().any(|s| &s.domain == d && s.provenance == Provenance::Estimated);
    let title = titled(format!("{}: power by domain", w.result.workload.id), t.domains.iter().any(est));
    svg_sized(SIZE, |root| {
        let mut c = ChartBuilder::on(root)
            .caption(title, (FONT, 16))
            .margin(12)
            .margin_right(LEGEND_W)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, 0.0..top)?;
        c.configure_mesh()
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .x_desc("time since the meter started (s)")
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .y_desc("power (W)")
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        let edge = ShapeStyle::from(&RGBColor(110, 110, 110)).stroke_width(1);
        for win in &t.windows {
            if win.label != "idle" {
                c.draw_series([Rectangle::new([(win.t0, 0.0), (win.t1, top)], SHADE.filled())])?;
            }
            for x in [win.t0, win.t1] {
                c.draw_series(DashedLineSeries::new([(x, 0.0), (x, top)], 4, 3, edge))?;
            }
        }
        // Names after every shade (a later window's shade would cover an earlier name), each
        // only where it does not run into the previous one.
        let mut free_from = i32::MIN;
        for win in &t.windows {
            let (px, _) = c.backend_coord(&(win.t0, ymax));
            if px + 4 >= free_from {
                free_from = px + 4 + label_width(&win.label, 11) + 4;
                let at = EmptyElement::at((win.t0, ymax * 1.06))
                    + Text::new(win.label.clone(), (4, 0), text_style(11, HPos::Left));
                c.draw_series([at])?;
            }
        }
        let (mut keys, mut named) = (Vec::new(), Vec::new());
        for (i, (d, band)) in t.domains.iter().zip(&t.bands).enumerate() {
            let col = colour(i);
            // Domains differ in width and dash as well as colour: solid 2 px, solid 1 px, dashed.
            let style = col.stroke_width(if i == 0 { 2 } else { 1 });
            let env: Vec<(f64, f64)> = band.points.iter().flat_map(|p| [(p[0], p[1]), (p[0], p[2])]).collect();
            let tag = if est(d) { ", ESTIMATED" } else { "" };
            // A stretch with no reading is left blank, never bridged by a line.
            for part in split_at_gaps(&env, x1 - x0) {
                if i < 2 {
                    c.draw_series(LineSeries::new(part.iter().copied(), style))?;
                } else {
                    c.draw_series(DashedLineSeries::new(part.iter().copied(), 6, 3, style))?;
                }
            }
            keys.push(Key::line(format!("{d}{tag}"), style, i >= 2));
            if let Some(p) = idle.get(d) {
                let s = col.stroke_width(2);
                c.draw_series(DashedLineSeries::new([(x0, p.0), (x1, p.0)], 2, 4, s))?;
                // Named on the line too, so two idle levels are told apart in grey (where two
                // lie too close for both names, the legend alone tells them apart).
                if !named.iter().any(|y: &f64| (y - p.0).abs() < 0.06 * top) {
                    named.push(p.0);
                    let name = Text::new(format!("{d} idle"), (-4, -8), text_style(11, HPos::Right));
                    c.draw_series([EmptyElement::at((x1, p.0)) + name])?;
                }
                keys.push(Key::line(format!("{d} idle {:.2} W", p.0), s, true));
            }
        }
        keys.push(Key { shade: Some(SHADE), ..Key::line("measured repeat window".into(), edge, true) });
        legend(root, (SIZE.0 as i32 - LEGEND_W as i32 + 8, 50), &keys)?;
        let y = 60 + 20 * keys.len() as i32;
        for (k, note) in ["each pixel column is drawn", "from its lowest to its highest", "reading, so no peak is lost"]
            .iter()
            .enumerate()
        {
            root.draw(&Text::new(
                *note,
                (SIZE.0 as i32 - LEGEND_W as i32 + 8, y + 14 * k as i32),
                text_style(11, HPos::Left),
            ))?;
        }
        Ok(())
    })
}

/// The plots of one result, in order: quality (training), power, energy per unit (`energy`:
/// drawn by the caller from every input of the workload, given to the first of them only), and
/// with a baseline the forest plot. Drawn one result at a time, written and dropped: a report
/// of 10,000 results never holds more than one result's plots.
pub fn for_workload(w: &WorkloadReport, energy: Option<Result<String, String>>) -> Vec<Plot> {
    let mut out = Vec::new();
    let mut add = |kind: &'static str, title: &str, svg| {
        out.push(Plot {
            workload: w.name.clone(),
            kind,
            title: title.into(),
            file: format!("{}-{kind}.svg", w.name),
            svg,
        })
    };
    if w.result.workload.kind == WorkloadKind::Train {
        add("quality", "quality against samples consumed", quality(w));
    }
    add("power", "power trace", power(w));
    if let Some(svg) = energy {
        add("energy", "energy per unit of work", svg);
    }
    if w.baseline.is_some() {
        add("reduction", "reduction against the baseline", forest(w));
    }
    out
}

/// Width in pixels of `text` at font size `size` (a sans-serif's average advance, ~0.6 em).
fn label_width(text: &str, size: u32) -> i32 {
    (text.chars().count() as f64 * size as f64 * 0.6).ceil() as i32
}

/// `points` (in time order) cut where two neighbours lie further apart than 20 times the
/// median spacing and 2% of the plotted `span`: no reading was taken there (another workload
/// ran, or the meter paused), so no line may suggest one.
fn split_at_gaps(points: &[(f64, f64)], span: f64) -> Vec<&[(f64, f64)]> {
    let mut dts: Vec<f64> = points.windows(2).map(|w| w[1].0 - w[0].0).filter(|d| *d > 0.0).collect();
    if dts.is_empty() {
        return vec![points];
    }
    dts.sort_by(f64::total_cmp);
    let gap = (20.0 * dts[dts.len() / 2]).max(0.02 * span);
    let mut parts = Vec::new();
    let mut start = 0;
    for i in 1..points.len() {
        if points[i].0 - points[i - 1].0 > gap {
            parts.push(&points[start..i]);
            start = i;
        }
    }
    parts.push(&points[start..]);
    parts
}

#[cfg(test)]
mod gap_tests {
    use super::split_at_gaps;

    #[test]
    fn a_stretch_without_readings_splits_the_line_and_even_readings_do_not() {
        let mut pts: Vec<(f64, f64)> = (0..50).map(|i| (i as f64 * 0.1, 1.0)).collect();
        assert_eq!(split_at_gaps(&pts, 5.0).len(), 1);
        pts.extend((0..50).map(|i| (80.0 + i as f64 * 0.1, 2.0)));
        let parts = split_at_gaps(&pts, 85.0);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].last().unwrap().0, 4.9);
        assert_eq!(parts[1][0].0, 80.0);
    }
}
