//! The interval plots: energy per unit of work per input, and the forest plot of the
//! reduction per resource against the baseline's target. Each row is a point with its 95%
//! interval (capped bar), its numbers or verdict beside it; rows that could not be computed say
//! so in the plot instead of vanishing.

use plotters::prelude::*;
use plotters::style::text_anchor::HPos;

use super::{pad, svg_sized, text_style, tick, titled, FONT, SIZE};
use crate::report::data::{provenance_label, BaselineOutcome, Figure, WorkloadReport};

/// Room right of an interval plot for each row's numbers or verdict.
const NOTE_W: u32 = 190;
/// Room left of an interval plot for its row labels.
const ROW_LABEL_W: u32 = 250;

/// One row of an interval plot.
pub struct Row {
    pub label: String,
    /// Point, lower and upper end; `None` when it could not be computed.
    pub value: Option<[f64; 3]>,
    /// Shown right of the plot: the numbers, or the row's verdict.
    pub note: String,
}

/// Rows of a point with its 95% interval (a forest plot), first row on top, with vertical
/// reference lines (the first dashed) and a line of text under the axis.
pub fn intervals(
    title: &str,
    x_desc: &str,
    rows: &[Row],
    refs: &[(f64, String)],
    footer: &str,
) -> Result<String, String> {
    let vals = rows.iter().filter_map(|r| r.value);
    if vals.clone().next().is_none() {
        return Err("nothing to plot".into());
    }
    let lo = vals.clone().map(|v| v[1]).chain(refs.iter().map(|r| r.0)).fold(f64::INFINITY, f64::min);
    let hi = vals.map(|v| v[2]).chain(refs.iter().map(|r| r.0)).fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = pad(lo, hi);
    let n = rows.len();
    let height = 130 + 36 * n as u32;
    let ytop = n as f64 - 0.2;
    svg_sized((SIZE.0, height), |root| {
        let mut c = ChartBuilder::on(root)
            .caption(title, (FONT, 16))
            .margin(12)
            .margin_right(NOTE_W)
            .margin_bottom(24)
            .x_label_area_size(40)
            .y_label_area_size(ROW_LABEL_W)
            .build_cartesian_2d(lo..hi, -0.6..ytop)?;
        c.configure_mesh()
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .x_desc(x_desc)
            .x_label_formatter(&tick)
            .y_labels(0)
            .disable_y_mesh()
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        for (i, (x, label)) in refs.iter().enumerate() {
            let pts = [(*x, -0.6), (*x, ytop)];
            if i == 0 {
                c.draw_series(DashedLineSeries::new(pts, 8, 5, RGBColor(90, 90, 90).stroke_width(2)))?;
            } else {
                c.draw_series([PathElement::new(pts, RGBColor(120, 120, 120))])?;
            }
            // One line of text per reference line, so two close lines' names never overlap.
            let dy = 8 + 14 * i as i32;
            let at = EmptyElement::at((*x, ytop)) + Text::new(label.clone(), (4, dy), text_style(11, HPos::Left));
            c.draw_series([at])?;
        }
        let (right, _) = c.backend_coord(&(hi, 0.0));
        let (left, _) = c.backend_coord(&(lo, 0.0));
        for (i, r) in rows.iter().enumerate() {
            let y = (n - 1 - i) as f64;
            let (_, py) = c.backend_coord(&(lo, y));
            root.draw(&Text::new(r.label.clone(), (left - 8, py), text_style(12, HPos::Right)))?;
            root.draw(&Text::new(r.note.clone(), (right + 8, py), text_style(12, HPos::Left)))?;
            let Some([m, a, b]) = r.value else {
                let mid = EmptyElement::at(((lo + hi) / 2.0, y))
                    + Text::new("not computed", (0, 0), text_style(12, HPos::Center));
                c.draw_series([mid])?;
                continue;
            };
            c.draw_series([PathElement::new([(a, y), (b, y)], BLACK.stroke_width(2))])?;
            for end in [a, b] {
                c.draw_series([
                    EmptyElement::at((end, y)) + PathElement::new([(0, -6), (0, 6)], BLACK.stroke_width(2))
                ])?;
            }
            c.draw_series([Circle::new((m, y), 5, BLACK.filled())])?;
        }
        root.draw(&Text::new(footer.to_string(), (left, height as i32 - 16), text_style(12, HPos::Left)))?;
        Ok(())
    })
}

/// A verdict's first word(s), before its reason (`incomparable: at device scope: ...`).
fn short(v: &impl std::fmt::Display) -> String {
    let s = v.to_string();
    s.split(':').next().unwrap_or(&s).to_string()
}

/// `s` cut to at most `n` characters, with an ellipsis when cut.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}

/// A value with the fewest decimals that still tell neighbours apart (3 significant digits).
fn sig3(v: f64) -> String {
    let digits = if v == 0.0 { 0 } else { (2 - v.abs().log10().floor() as i32).clamp(0, 6) as usize };
    format!("{v:.digits$}")
}

/// One input of a workload, as the energy-per-unit plot needs it (its figures are computed
/// before any result is rendered, so the plot of the first input shows all of them).
pub struct EnergyInput<'a> {
    /// The result's name in the report.
    pub name: &'a str,
    /// The workload's unit of work.
    pub unit: &'a str,
    pub figures: &'a [Figure],
}

/// Energy per unit of work per input of workload `id`, per scope, with 95% intervals.
pub fn energy_per_unit(inputs: &[EnergyInput], id: &str) -> Result<String, String> {
    let mut raw = Vec::new();
    let mut unit = String::new();
    let mut estimated = false;
    for w in inputs {
        unit = w.unit.to_string();
        for f in w.figures.iter().filter(|f| f.metric == "energy_per_unit_j") {
            let scope = f.scope.map_or("", |s| s.as_str());
            // The title names the workload: a row names only what tells the inputs apart.
            let input = w.name.strip_prefix(id).unwrap_or(w.name).trim_start_matches('-');
            // Cut the input's name, never the provenance (an ESTIMATED must stay visible).
            let label = format!("{} ({})", clip(format!("{input} {scope}").trim(), 26), provenance_label(f.provenance));
            estimated |= f.estimated();
            match &f.value {
                Ok(s) => raw.push((label, Some([s.median, s.ci95[0], s.ci95[1]]))),
                Err(_) => raw.push((label, None)),
            }
        }
    }
    if raw.iter().all(|r| r.1.is_none()) {
        return Err("no energy per unit could be computed (no valid repeat, or energy unresolved)".into());
    }
    // Ticks in the scale of the values: a µJ per sample is not "0.000 J".
    let top = raw.iter().filter_map(|r| r.1).map(|v| v[2].abs().max(v[0].abs())).fold(0.0, f64::max);
    let (k, name) = if top < 1e-3 {
        (1e6, "µJ")
    } else if top < 1.0 {
        (1e3, "mJ")
    } else {
        (1.0, "J")
    };
    let rows: Vec<Row> = raw
        .into_iter()
        .map(|(label, v)| {
            let v = v.map(|v| v.map(|x| x * k));
            let note =
                v.map_or("see the table".into(), |[m, a, b]| format!("{} [{}, {}] {name}", sig3(m), sig3(a), sig3(b)));
            Row { label, value: v, note }
        })
        .collect();
    let title = titled(format!("{id}: energy per {unit}, median and 95% interval"), estimated);
    let footer = "point: median over the valid repeats; bar: bootstrap 95% interval of the median";
    intervals(&title, &format!("energy per {unit} ({name})"), &rows, &[], footer)
}

/// The reduction per resource against the baseline with its 95% interval, the target line,
/// each row's verdict beside it and the overall verdict in words under the axis.
pub fn forest(w: &WorkloadReport) -> Result<String, String> {
    let c = match &w.baseline {
        None => return Err("no baseline given (--baseline)".into()),
        Some(BaselineOutcome::Missing(why)) => return Err(why.clone()),
        Some(BaselineOutcome::Compared { comparison, .. }) => comparison,
    };
    let estimated = c.energy_label == "estimated";
    let rows: Vec<Row> = c
        .rows
        .iter()
        .map(|r| {
            let est = r.resource == crate::verdict::Resource::Energy && estimated;
            let label = format!("{} {}{}", r.resource, r.metric, if est { " (ESTIMATED)" } else { "" });
            let ok = r.reduction.is_finite() && r.ci95.iter().all(|v| v.is_finite());
            let value = ok.then(|| [100.0 * r.reduction, 100.0 * r.ci95[0], 100.0 * r.ci95[1]]);
            Row { label, value, note: short(&r.verdict) }
        })
        .collect();
    if rows.iter().all(|r| r.value.is_none()) {
        return Err(format!("no reduction could be computed: {}", c.overall));
    }
    let target = 100.0 * c.target;
    let title = titled(format!("{}: reduction against the baseline, 95% interval", w.result.workload.id), estimated);
    let refs = [(target, format!("target {target:.0}%")), (0.0, "no change".to_string())];
    let per: Vec<String> = c.resources.iter().map(|(r, v)| format!("{r} {}", short(v))).collect();
    let footer = format!("verdict: {} ({}); the reasons are in the text", short(&c.overall), per.join(", "));
    intervals(&title, "reduction vs baseline (%), higher is better", &rows, &refs, &footer)
}
