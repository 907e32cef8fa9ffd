//! The summary table printed after a run: one row per workload, medians over the valid
//! repeats, energy with its provenance (ESTIMATED in capitals where it is an estimate).

use crate::result::RunResult;
use crate::stats::median;

fn med(r: &RunResult, f: impl Fn(&crate::result::Repeat) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = r.repeats.iter().filter(|x| x.valid).filter_map(f).collect();
    median(&v)
}

/// Human scale for joules: J, kJ, MJ; below 1 J: mJ, µJ.
pub fn joules(j: f64) -> String {
    let a = j.abs();
    if a >= 1e6 {
        format!("{:.2} MJ", j / 1e6)
    } else if a >= 1e3 {
        format!("{:.2} kJ", j / 1e3)
    } else if a >= 1.0 {
        format!("{j:.2} J")
    } else if a >= 1e-3 {
        format!("{:.2} mJ", j * 1e3)
    } else {
        format!("{:.2} µJ", j * 1e6)
    }
}

pub fn render(results: &[&RunResult]) -> String {
    let header =
        ["workload", "recipe", "valid", "quality", "samples to target", "time", "energy", "source", "energy/unit"];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for r in results {
        let valid = r.repeats.iter().filter(|x| x.valid).count();
        let dash = || "-".to_string();
        // The weakest provenance of the run's sources; `measured` when it has none, as before.
        let label = super::data::overall_provenance(r).map_or("measured".to_string(), |p| p.to_string());
        // Energy that a repeat could not resolve is never shown as a (small) number.
        let unresolved = r.repeats.iter().any(|x| !x.unresolved_energy.is_empty());
        let energy = |v: Option<f64>, f: &dyn Fn(f64) -> String| match v {
            _ if unresolved => "UNRESOLVED".to_string(),
            Some(v) => f(v),
            None => dash(),
        };
        rows.push(vec![
            r.workload.id.clone(),
            r.recipe.name.clone(),
            format!("{valid}/{}", r.repeats.len()),
            med(r, |x| x.quality).map_or_else(dash, |q| format!("{q:.4}")),
            med(r, |x| x.samples_to_target.map(|s| s as f64)).map_or_else(dash, |s| format!("{s:.0}")),
            med(r, |x| Some(x.wall_s.0)).map_or_else(dash, |t| format!("{t:.2} s")),
            energy(med(r, |x| Some(x.energy_j.total.0)), &joules),
            if label == "estimated" { "ESTIMATED".into() } else { label.clone() },
            energy(med(r, |x| Some(x.energy_per_unit_j.0)), &|j| format!("{}/{}", joules(j), r.workload.unit)),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).chain([header[c].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<String>| -> String {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            // text columns left-aligned, numbers right-aligned
            if i <= 1 || i == 7 {
                s += &format!("{cell}{}  ", " ".repeat(pad));
            } else {
                s += &format!("{}{cell}  ", " ".repeat(pad));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    out += &line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for r in rows {
        out += &line(r);
    }
    out
}

/// `header` and `rows` as left-aligned columns two spaces apart, trailing spaces trimmed: the
/// plain tables of `compare` and `gate`.
pub fn columns<R: AsRef<[String]>>(header: &[&str], rows: &[R]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter().map(|r| r.as_ref()[i].chars().count()).chain([header[i].chars().count()]).max().unwrap_or(0)
        })
        .collect();
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        cells.zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    for r in rows {
        out += &line(&mut r.as_ref().iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joules_scale() {
        assert_eq!(joules(1234.0), "1.23 kJ");
        assert_eq!(joules(0.0123), "12.30 mJ");
        assert_eq!(joules(5e-6), "5.00 µJ");
    }
}
