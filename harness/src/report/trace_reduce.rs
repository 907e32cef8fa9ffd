//! Reading a power trace (`<workload>.trace.csv`, see [`crate::meter::trace_csv`]) for a plot,
//! in one pass and bounded memory: rows fall into between [`COLUMNS`] and twice as many time
//! columns, each keeping every domain's minimum and maximum, so no peak is ever dropped
//! however long the trace. When the columns fill, neighbours merge and each spans twice the
//! time. The label column's runs become the windows (`idle`, `repeat-0`, ...).

use std::io::BufRead;

/// The fewest columns a reduced trace keeps (about one per pixel of a plot).
pub const COLUMNS: usize = 600;

/// The most windows (runs of one label) a trace may have. effbench writes an idle window and
/// one per repeat (`--repeat` is capped at 1,000), with gaps between: a trace with more is
/// not one of ours, and refusing it keeps memory bounded whatever a file holds.
pub const MAX_WINDOWS: usize = 4096;

/// A reduced trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// Rows read.
    pub rows: u64,
    /// Domain names (the `<domain>_w` columns, suffix removed), in the file's order.
    pub domains: Vec<String>,
    /// Per domain, in `domains` order.
    pub bands: Vec<Band>,
    pub windows: Vec<Window>,
}

/// One domain's power envelope: per time column `[t_s, min_w, max_w]`, columns without a
/// reading left out.
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    pub points: Vec<[f64; 3]>,
}

/// A run of rows with one label: its first and last time.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub label: String,
    pub t0: f64,
    pub t1: f64,
}

struct Reducer {
    t0: Option<f64>,
    width: f64,
    /// Per column, per domain: (min, max); NaN where no reading fell.
    cols: Vec<Vec<(f64, f64)>>,
    n: usize,
}

impl Reducer {
    fn add(&mut self, t: f64, powers: &[Option<f64>]) {
        let t0 = *self.t0.get_or_insert(t);
        let mut i = ((t - t0).max(0.0) / self.width) as usize;
        while i >= 2 * COLUMNS {
            self.merge();
            i = ((t - t0).max(0.0) / self.width) as usize;
        }
        while self.cols.len() <= i {
            self.cols.push(vec![(f64::NAN, f64::NAN); self.n]);
        }
        for (slot, p) in self.cols[i].iter_mut().zip(powers) {
            if let Some(p) = p {
                slot.0 = if slot.0.is_nan() { *p } else { slot.0.min(*p) };
                slot.1 = if slot.1.is_nan() { *p } else { slot.1.max(*p) };
            }
        }
    }

    /// Halves the resolution: column pairs become one column of twice the width.
    fn merge(&mut self) {
        let old = std::mem::take(&mut self.cols);
        for pair in old.chunks(2) {
            let mut m = pair[0].clone();
            if let Some(b) = pair.get(1) {
                for (a, b) in m.iter_mut().zip(b) {
                    a.0 = a.0.min(b.0); // f64::min ignores a NaN side
                    a.1 = a.1.max(b.1);
                }
            }
            self.cols.push(m);
        }
        self.width *= 2.0;
    }
}

/// Reads a trace. `name` is used in messages only. Errors say what is wrong with the file.
pub fn read(mut reader: impl BufRead, name: &str) -> Result<Trace, String> {
    let mut first = String::new();
    let header = match reader.read_line(&mut first) {
        Ok(0) => return Err(format!("{name} is empty")),
        Ok(_) => crate::meter::csv_fields(first.trim_end_matches(['\n', '\r'])),
        Err(e) => return Err(format!("cannot read {name}: {e}")),
    };
    if header.len() < 2 || header[0] != "t_s" {
        return Err(format!("{name} is not an effbench trace (its header does not start with t_s,<label>)"));
    }
    let domains: Vec<String> = header[2..].iter().map(|h| h.strip_suffix("_w").unwrap_or(h).to_string()).collect();
    // A first column width of 1 ms; it doubles as the trace grows.
    let mut red = Reducer { t0: None, width: 1e-3, cols: Vec::new(), n: domains.len() };
    let (mut windows, mut rows): (Vec<Window>, u64) = (Vec::new(), 0);
    let mut powers: Vec<Option<f64>> = vec![None; domains.len()];
    let (mut line, mut n) = (String::new(), 1usize);
    loop {
        line.clear();
        n += 1;
        if reader.read_line(&mut line).map_err(|e| format!("cannot read {name}: {e}"))? == 0 {
            break;
        }
        let row = line.trim_end_matches(['\n', '\r']);
        if row.is_empty() {
            continue;
        }
        // The common row has no quotes: split it in place; a quoted label takes the slow path.
        let quoted;
        let f: Vec<&str> = if row.contains('"') {
            quoted = crate::meter::csv_fields(row);
            quoted.iter().map(String::as_str).collect()
        } else {
            row.split(',').collect()
        };
        let bad = || format!("{name} line {n}: not a trace row");
        let t: f64 = f.first().and_then(|t| t.parse().ok()).filter(|t: &f64| t.is_finite()).ok_or_else(bad)?;
        for (k, slot) in powers.iter_mut().enumerate() {
            *slot = f.get(k + 2).and_then(|v| v.parse().ok()).filter(|v: &f64| v.is_finite());
        }
        red.add(t, &powers);
        let label = f.get(1).copied().unwrap_or("");
        let full = windows.len() >= MAX_WINDOWS;
        match windows.last_mut() {
            Some(w) if w.label == label => w.t1 = t,
            _ if full => {
                return Err(format!(
                    "{name} line {n}: more than {MAX_WINDOWS} windows (label runs); not an effbench trace"
                ))
            }
            _ => windows.push(Window { label: label.to_string(), t0: t, t1: t }),
        }
        rows += 1;
    }
    let t0 = red.t0.unwrap_or(0.0);
    let bands = (0..domains.len())
        .map(|d| Band {
            points: red
                .cols
                .iter()
                .enumerate()
                .filter(|(_, c)| !c[d].0.is_nan())
                .map(|(i, c)| [t0 + (i as f64 + 0.5) * red.width, c[d].0, c[d].1])
                .collect(),
        })
        .collect();
    Ok(Trace { rows, domains, bands, windows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_trace_keeps_its_peak_and_stays_small() {
        let mut csv = String::from("t_s,phase,cpu_w,gpu:0_w\n");
        for i in 0..100_000 {
            let t = i as f64 * 1e-3;
            let cpu = if i == 54_321 { 999.0 } else { 10.0 };
            let label = if i < 1000 { "idle" } else { "repeat-0" };
            csv += &format!("{t:.6},{label},{cpu},{}\n", if i % 2 == 0 { "" } else { "5" });
        }
        let t = read(csv.as_bytes(), "x").unwrap();
        assert_eq!(t.rows, 100_000);
        assert_eq!(t.domains, ["cpu", "gpu:0"]);
        let cpu = &t.bands[0].points;
        assert!(cpu.len() >= COLUMNS && cpu.len() <= 2 * COLUMNS, "{}", cpu.len());
        assert_eq!(cpu.iter().map(|p| p[2]).fold(0.0, f64::max), 999.0, "the peak survives");
        assert_eq!(cpu.iter().map(|p| p[1]).fold(f64::INFINITY, f64::min), 10.0);
        assert_eq!(t.windows.len(), 2);
        assert_eq!((t.windows[0].label.as_str(), t.windows[0].t0, t.windows[0].t1), ("idle", 0.0, 0.999));
        assert!((t.windows[1].t1 - 99.999).abs() < 1e-9);
    }

    #[test]
    fn quoted_labels_and_bad_rows() {
        let t = read("t_s,phase,cpu_w\n0.0,\"a,\"\"b\",1\n".as_bytes(), "x").unwrap();
        assert_eq!(t.windows[0].label, "a,\"b");
        let e = read("t_s,phase,cpu_w\nzero,idle,1\n".as_bytes(), "w.trace.csv").unwrap_err();
        assert!(e.contains("w.trace.csv line 2"), "{e}");
        assert!(read("hello\n".as_bytes(), "x").unwrap_err().contains("not an effbench trace"));
        let mut many = String::from("t_s,phase,cpu_w\n");
        for i in 0..=MAX_WINDOWS {
            many += &format!("{i},w{},1\n", i % 2);
        }
        let e = read(many.as_bytes(), "m.trace.csv").unwrap_err();
        assert!(e.contains(&format!("m.trace.csv line {}: more than {MAX_WINDOWS} windows", MAX_WINDOWS + 2)), "{e}");
    }
}
