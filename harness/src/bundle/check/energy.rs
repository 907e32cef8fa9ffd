//! Each repeat's energy re-integrated from its trace CSV, streamed (one pass, memory per
//! segment, not per row).
//!
//! How the trace relates to a repeat (meter/mod.rs, meter/sampler.rs, run/out.rs): the meter
//! samples every source on one clock; a repeat's window runs from its begin `Mark` to its end
//! `Mark`, each of which is itself a sample, and the trace segment labelled `repeat-<seed>`
//! holds exactly the samples from the begin mark to the end mark, both included. A row's
//! power is, per domain, the sum over its sources of the reading (power sources) or of the
//! counter's average since the previous sample (counters). So the window's energy is
//! - for counters: Σ over the segment's rows after the first of `p_i · (t_i − t_{i−1})`
//!   (the begin mark's own row averages the interval *before* the window);
//! - for power sources: the trapezoid Σ `(p_{i−1} + p_i) / 2 · (t_i − t_{i−1})`
//!   (`PowerIntegrator`).
//!
//! The CSV does not say which kind each source is, so a domain's figure passes when either
//! rule reproduces it within the trace's resolution. Resolution, from the writer
//! (meter/trace.rs): times are printed to 1e-6 s and powers to 1e-4 W, so each interval's
//! energy as read back can differ from the meter's by at most `5e-5 W · dt + |p| · 1e-6 s`;
//! the tolerance is the sum of that over the window's intervals (plus 1e-9 relative for
//! floating-point summation). A repeat of `passes` runs divides the window by `passes`.

use std::collections::BTreeMap;
use std::io::BufRead;

/// Per domain, the two integrals of one segment and their resolution.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DomainSum {
    /// Counter rule: Σ p_i · dt.
    pub rect: f64,
    /// Power rule: trapezoid.
    pub trap: f64,
    /// Σ (5e-5 · dt + |p| · 1e-6): what the printed digits can hide.
    pub tolerance: f64,
    /// Rows after the first with an empty cell for this domain.
    pub missing: usize,
    prev: Option<f64>,
}

/// One labelled run of consecutive rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Segment {
    pub label: String,
    pub rows: usize,
    pub t_first: f64,
    pub t_last: f64,
    pub domains: Vec<DomainSum>,
}

impl Segment {
    pub fn duration(&self) -> f64 {
        self.t_last - self.t_first
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    /// Domain names, from the `<domain>_w` columns.
    pub domains: Vec<String>,
    pub segments: Vec<Segment>,
    /// A label that appears in two separate runs of rows (an edited or spliced trace).
    pub split_labels: Vec<String>,
}

impl Trace {
    pub fn segment(&self, label: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.label == label)
    }

    /// The domain's sums in `seg`.
    pub fn sums<'a>(&self, seg: &'a Segment, domain: &str) -> Option<&'a DomainSum> {
        self.domains.iter().position(|d| d == domain).and_then(|i| seg.domains.get(i))
    }
}

/// Streams a trace CSV (`t_s,phase,<domain>_w...`), at most `max_rows` rows.
pub fn integrate(reader: impl BufRead, max_rows: usize) -> Result<Trace, String> {
    let mut lines = reader.lines();
    let header = lines.next().ok_or("it is empty")?.map_err(|e| e.to_string())?;
    let cols = crate::meter::csv_fields(&header);
    if cols.len() < 2 || cols[0] != "t_s" {
        return Err(format!("its header {header:?} is not `t_s,<label>,<domain>_w...`"));
    }
    let mut domains = Vec::new();
    for c in &cols[2..] {
        domains.push(c.strip_suffix("_w").ok_or_else(|| format!("column {c:?} is not `<domain>_w`"))?.to_string());
    }
    let mut trace = Trace { domains, ..Trace::default() };
    let mut seen = std::collections::BTreeSet::new();
    for (n, line) in lines.enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        if n >= max_rows {
            return Err(format!("it has more than {max_rows} rows"));
        }
        let f = crate::meter::csv_fields(&line);
        let row = n + 2;
        if f.len() != cols.len() {
            return Err(format!("line {row} has {} fields, the header {}", f.len(), cols.len()));
        }
        let t: f64 = f[0].parse().map_err(|_| format!("line {row}: time {:?} is not a number", f[0]))?;
        let mut power = Vec::with_capacity(trace.domains.len());
        for cell in &f[2..] {
            power.push(match cell.as_str() {
                "" => None,
                s => Some(
                    s.parse::<f64>()
                        .ok()
                        .filter(|p| p.is_finite())
                        .ok_or(format!("line {row}: power {s:?} is not a number"))?,
                ),
            });
        }
        let new = trace.segments.last().is_none_or(|s| s.label != f[1]);
        if new {
            if !seen.insert(f[1].clone()) {
                trace.split_labels.push(f[1].clone());
            }
            let domains = power.iter().map(|&p| DomainSum { prev: p, ..DomainSum::default() }).collect();
            trace.segments.push(Segment { label: f[1].clone(), rows: 1, t_first: t, t_last: t, domains });
            continue;
        }
        let seg = trace.segments.last_mut().ok_or("no segment")?;
        let dt = t - seg.t_last;
        if dt.is_nan() || dt < 0.0 {
            return Err(format!("line {row}: time {t} goes back from {}", seg.t_last));
        }
        for (d, p) in seg.domains.iter_mut().zip(power) {
            match p {
                Some(p) => {
                    d.rect += p * dt;
                    if let Some(p0) = d.prev {
                        d.trap += (p0 + p) * 0.5 * dt;
                    }
                    d.tolerance += 5e-5 * dt + p.abs().max(d.prev.unwrap_or(0.0).abs()) * 1e-6;
                }
                None => d.missing += 1,
            }
            d.prev = p;
        }
        seg.rows += 1;
        seg.t_last = t;
    }
    Ok(trace)
}

/// Whether `claimed` joules match `sums` (over `passes` runs) by either rule. `Ok` names the
/// rule; `Err` gives both integrals and the tolerance.
pub fn matches(claimed: f64, sums: &DomainSum, passes: u32) -> Result<&'static str, String> {
    let k = f64::from(passes.max(1));
    let tol = sums.tolerance / k + 1e-9 * claimed.abs() + 1e-12;
    if (claimed - sums.rect / k).abs() <= tol {
        return Ok("counter rule");
    }
    if (claimed - sums.trap / k).abs() <= tol {
        return Ok("trapezoid rule");
    }
    Err(format!(
        "its trace integrates to {:.6} J (counter rule) or {:.6} J (trapezoid), ±{tol:.2e} J (the trace's resolution: 1e-6 s, 1e-4 W)",
        sums.rect / k,
        sums.trap / k
    ))
}

/// Idle power per domain re-derived from the `idle` segment: energy / duration by either
/// rule, with the tolerance as power.
pub fn idle_power(trace: &Trace) -> BTreeMap<String, (f64, f64, f64)> {
    let Some(seg) = trace.segment("idle") else { return BTreeMap::new() };
    let d = seg.duration();
    if d.is_nan() || d <= 0.0 {
        return BTreeMap::new();
    }
    trace
        .domains
        .iter()
        .zip(&seg.domains)
        .filter(|(_, s)| s.missing == 0)
        .map(|(name, s)| (name.clone(), (s.rect / d, s.trap / d, s.tolerance / d)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "t_s,phase,cpu_w\n\
        0.000000,idle,1.0000\n0.500000,idle,1.0000\n\
        1.000000,repeat-0,2.0000\n2.000000,repeat-0,4.0000\n3.000000,repeat-0,4.0000\n";

    #[test]
    fn both_rules_and_the_window_are_derived_from_the_rows() {
        let t = integrate(CSV.as_bytes(), 100).unwrap();
        let s = t.segment("repeat-0").unwrap();
        assert_eq!((s.rows, s.duration()), (3, 2.0));
        let d = t.sums(s, "cpu").unwrap();
        assert_eq!((d.rect, d.trap), (8.0, 7.0), "rect: 4+4, trapezoid: 3+4");
        assert_eq!(matches(8.0, d, 1), Ok("counter rule"));
        assert_eq!(matches(3.5, d, 2), Ok("trapezoid rule"));
        assert!(matches(7.5, d, 1).unwrap_err().contains("integrates to 8.000000 J"));
    }

    #[test]
    fn spliced_labels_gaps_and_row_limits_are_reported() {
        let csv = format!("{CSV}4.000000,idle,\n");
        let t = integrate(csv.as_bytes(), 100).unwrap();
        assert_eq!(t.split_labels, vec!["idle"]);
        assert!(integrate(CSV.as_bytes(), 3).unwrap_err().contains("more than 3 rows"));
        let gap = "t_s,phase,cpu_w\n0.0,r,1.0\n1.0,r,\n";
        assert_eq!(integrate(gap.as_bytes(), 9).unwrap().segments[0].domains[0].missing, 1);
        assert!(integrate("t_s,phase,cpu_w\n0.0,r,x\n".as_bytes(), 9).unwrap_err().contains("not a number"));
    }
}
