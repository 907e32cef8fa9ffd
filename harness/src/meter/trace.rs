//! The power trace: rows of the meter's samples, and a CSV exporter (a pure function returning
//! text, plus an atomic write) with a label column so a run can tag idle / warm-up / repeat
//! ranges.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::fsutil::write_atomic;

/// One sample of the trace.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceRow {
    /// Seconds since the meter started.
    pub t_s: f64,
    /// Power per domain in watts at this sample: the reading for power sources, the average
    /// since the previous sample for counters. A domain is absent when one of its sources
    /// failed at this sample or has no previous counter reading yet.
    pub power_w: BTreeMap<String, f64>,
}

/// Renders labelled segments of trace rows as CSV: header `t_s,<label_column>,<domain>_w...`
/// with one column per domain found in any row (sorted), then each segment's rows tagged
/// with its label. Missing powers are empty cells. Fields are quoted when they contain a
/// comma, quote or line break.
///
/// ```
/// use effbench::meter::{trace_csv, TraceRow};
/// let rows = vec![TraceRow { t_s: 0.5, power_w: [("cpu".to_string(), 12.0)].into() }];
/// let csv = trace_csv("phase", &[("idle", rows.as_slice())]);
/// assert_eq!(csv, "t_s,phase,cpu_w\n0.500000,idle,12.0000\n");
/// ```
pub fn trace_csv(label_column: &str, segments: &[(&str, &[TraceRow])]) -> String {
    let domains = domains_of(segments);
    let mut out = header(label_column, &domains);
    for (label, rows) in segments {
        push_rows(&mut out, &domains, label, rows);
    }
    out
}

fn domains_of(segments: &[(&str, &[TraceRow])]) -> Vec<String> {
    let set: BTreeSet<&str> =
        segments.iter().flat_map(|(_, rows)| rows.iter()).flat_map(|r| r.power_w.keys().map(String::as_str)).collect();
    set.into_iter().map(str::to_string).collect()
}

fn header(label_column: &str, domains: &[String]) -> String {
    let mut out = String::new();
    out.push_str("t_s,");
    out.push_str(&escape(label_column));
    for d in domains {
        out.push(',');
        out.push_str(&escape(&format!("{d}_w")));
    }
    out.push('\n');
    out
}

fn push_rows(out: &mut String, domains: &[String], label: &str, rows: &[TraceRow]) {
    let label = escape(label);
    for row in rows {
        let _ = write!(out, "{:.6},{label}", row.t_s);
        for d in domains {
            out.push(',');
            if let Some(p) = row.power_w.get(d) {
                let _ = write!(out, "{p:.4}");
            }
        }
        out.push('\n');
    }
}

/// Writes [`trace_csv`] to `path` atomically.
pub fn write_trace_csv(path: &Path, label_column: &str, segments: &[(&str, &[TraceRow])]) -> io::Result<()> {
    write_atomic(path, trace_csv(label_column, segments).as_bytes())
}

/// A trace file that grows by segments: written whole (atomically) once, then each new
/// segment is appended, so a run of many repeats writes each row once instead of rewriting the
/// whole trace after every repeat (issue 11). The file always equals [`trace_csv`] of every
/// segment so far. Each append is one `write` of whole lines followed by an fsync, so a crash
/// loses at most the segment being appended.
pub struct TraceFile {
    path: PathBuf,
    domains: Vec<String>,
}

impl TraceFile {
    /// Writes `segments` to `path` atomically (replacing any earlier file); the domains they
    /// hold become the columns.
    pub fn create(path: &Path, label_column: &str, segments: &[(&str, &[TraceRow])]) -> io::Result<TraceFile> {
        write_trace_csv(path, label_column, segments)?;
        Ok(TraceFile { path: path.to_path_buf(), domains: domains_of(segments) })
    }

    /// Appends one segment. Returns `Ok(false)`, writing nothing, when a row has a domain the
    /// header lacks: the caller then rewrites the whole trace with [`TraceFile::create`].
    pub fn append(&mut self, label: &str, rows: &[TraceRow]) -> io::Result<bool> {
        if rows.iter().flat_map(|r| r.power_w.keys()).any(|d| !self.domains.contains(d)) {
            return Ok(false);
        }
        let mut text = String::new();
        push_rows(&mut text, &self.domains, label, rows);
        let _guard = crate::interrupt::writes();
        let mut f = OpenOptions::new().append(true).open(&self.path)?;
        f.write_all(text.as_bytes())?;
        f.sync_data()?;
        Ok(true)
    }
}

fn escape(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// Splits one line of a trace CSV into its fields, the reverse of the writer's quoting: a
/// field in double quotes may hold commas, and `""` inside quotes is one `"`. Shared by the
/// readers of traces (the bundle checker, the report).
///
/// ```
/// use effbench::meter::csv_fields;
/// assert_eq!(csv_fields(r#"1.5,"repeat-0, ""warm""",12.0"#), vec!["1.5", "repeat-0, \"warm\"", "12.0"]);
/// ```
pub fn csv_fields(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut chars) = (Vec::new(), String::new(), false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t_s: f64, power: &[(&str, f64)]) -> TraceRow {
        TraceRow { t_s, power_w: power.iter().map(|(d, p)| (d.to_string(), *p)).collect() }
    }

    #[test]
    fn segments_are_labelled_and_domains_united() {
        let idle = vec![row(0.0, &[("cpu", 10.0)]), row(0.1, &[("cpu", 11.0)])];
        let rep = vec![row(0.2, &[("cpu", 50.0), ("gpu:0", 300.0)]), row(0.3, &[])];
        let csv = trace_csv("phase", &[("idle", &idle), ("repeat-1", &rep)]);
        let expected = "t_s,phase,cpu_w,gpu:0_w\n\
                        0.000000,idle,10.0000,\n\
                        0.100000,idle,11.0000,\n\
                        0.200000,repeat-1,50.0000,300.0000\n\
                        0.300000,repeat-1,,\n";
        assert_eq!(csv, expected);
    }

    #[test]
    fn awkward_labels_are_quoted() {
        let rows = vec![row(1.0, &[("cpu", 1.0)])];
        let csv = trace_csv("phase", &[("a,\"b\"", &rows)]);
        assert_eq!(csv.lines().nth(1), Some("1.000000,\"a,\"\"b\"\"\",1.0000"));
    }

    #[test]
    fn write_is_atomic_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.csv");
        let rows = vec![row(0.0, &[("cpu", 2.0)])];
        write_trace_csv(&path, "phase", &[("idle", &rows)]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "t_s,phase,cpu_w\n0.000000,idle,2.0000\n");
    }

    #[test]
    fn an_appended_trace_equals_the_whole_trace_and_keeps_its_file() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.trace.csv");
        let idle = vec![row(0.0, &[("cpu", 10.0)])];
        let r0 = vec![row(0.1, &[("cpu", 50.0)]), row(0.2, &[])];
        let r1 = vec![row(0.3, &[("cpu", 51.0)])];
        let mut t = TraceFile::create(&path, "phase", &[("idle", &idle), ("repeat-0", &r0)]).unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        assert!(t.append("repeat-1", &r1).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode, "appended in place, not rewritten");
        let whole = trace_csv("phase", &[("idle", &idle), ("repeat-0", &r0), ("repeat-1", &r1)]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), whole);
        // A domain the header lacks cannot be appended: the caller rewrites.
        assert!(!t.append("repeat-2", &[row(0.4, &[("gpu:0", 1.0)])]).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), whole);
    }
}
