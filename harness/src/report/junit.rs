//! JUnit XML for the gate: one `<testsuite>` per workload, one `<testcase>` per workload and
//! metric (`classname` `effbench.<workload>`, `name` `<resource>: <metric>`), a `<failure>` for
//! a regression or an invalid run, `<skipped>` for what could not be compared. The message
//! carries the change and its interval, so a CI UI shows them without opening the log.

use std::fmt::Write;

use crate::gate::{GateCase, GateReport, Outcome, WorkloadGate};
use crate::report::compare::pct;

/// Escapes text for XML content and attribute values; drops characters XML 1.0 cannot hold.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

fn message(c: &GateCase, threshold: f64) -> String {
    let numbers = if c.change.is_finite() {
        format!(
            "change {} (95% interval [{}, {}]; means {:.4e} -> {:.4e}, n = {} / {}), threshold {}",
            pct(c.change),
            pct(c.ci95[0]),
            pct(c.ci95[1]),
            c.baseline_mean,
            c.candidate_mean,
            c.n_baseline,
            c.n_candidate,
            pct(threshold)
        )
    } else {
        String::new()
    };
    match &c.outcome {
        Outcome::Regression => format!("regression: {numbers}"),
        Outcome::Improved => format!("improved: {numbers}"),
        Outcome::NoChange => format!("no change: {numbers}"),
        Outcome::Invalid { reason } => format!("invalid: {reason}"),
        Outcome::Skipped { reason } => format!("skipped: {reason}"),
        Outcome::Undecided { reason } => format!("cannot decide: {reason}"),
    }
}

fn suite(out: &mut String, w: &WorkloadGate, threshold: f64) {
    let count = |f: &dyn Fn(&Outcome) -> bool| w.cases.iter().filter(|c| f(&c.outcome)).count();
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\">",
        escape(&w.workload),
        w.cases.len(),
        count(&|o| o.fails()),
        count(&|o| matches!(o, Outcome::Skipped { .. })),
    );
    let _ = writeln!(out, "    <properties>");
    let mut props: Vec<(&str, String)> = vec![
        ("candidate", w.candidate.display().to_string()),
        ("baseline", w.baseline.as_ref().map_or(String::new(), |p| p.display().to_string())),
        ("energy", w.energy_label.clone()),
    ];
    if let Some(p) = &w.energy_scope {
        props.push(("energy_scope", p.scope.to_string()));
    }
    props.extend(w.warnings.iter().map(|x| ("warning", x.clone())));
    for (k, v) in props {
        let _ = writeln!(out, "      <property name=\"{k}\" value=\"{}\"/>", escape(&v));
    }
    let _ = writeln!(out, "    </properties>");
    for c in &w.cases {
        let classname = format!("effbench.{}", w.workload);
        let name = format!("{}: {}", c.resource, c.metric);
        let msg = message(c, threshold);
        let open = format!("    <testcase classname=\"{}\" name=\"{}\" time=\"0\"", escape(&classname), escape(&name));
        match &c.outcome {
            Outcome::Regression | Outcome::Invalid { .. } | Outcome::Undecided { .. } => {
                let kind = match c.outcome {
                    Outcome::Regression => "regression",
                    Outcome::Undecided { .. } => "undecided",
                    _ => "invalid",
                };
                let _ = writeln!(out, "{open}>");
                let _ = writeln!(
                    out,
                    "      <failure type=\"{kind}\" message=\"{}\">{}</failure>",
                    escape(&msg),
                    escape(&msg)
                );
                let _ = writeln!(out, "    </testcase>");
            }
            Outcome::Skipped { .. } => {
                let _ = writeln!(out, "{open}>");
                let _ = writeln!(out, "      <skipped message=\"{}\"/>", escape(&msg));
                let _ = writeln!(out, "    </testcase>");
            }
            Outcome::Improved | Outcome::NoChange => {
                let _ = writeln!(out, "{open}>");
                let _ = writeln!(out, "      <system-out>{}</system-out>", escape(&msg));
                let _ = writeln!(out, "    </testcase>");
            }
        }
    }
    let _ = writeln!(out, "  </testsuite>");
}

/// The whole report as a JUnit XML document. `<testsuites>` carries only the attributes
/// Jenkins' junit-10.xsd allows there (`name`, `time`, `tests`, `failures`, `errors`; the
/// xunit-plugin's `types/model/xsd/junit-10.xsd`): the skipped count lives on each
/// `<testsuite>`, where the schema has it.
pub fn render(r: &GateReport) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"effbench gate\" tests=\"{}\" failures=\"{}\" errors=\"0\">",
        r.cases().count(),
        r.count(|o| o.fails()),
    );
    for w in &r.workloads {
        suite(&mut out, w, r.max_regression);
    }
    out.push_str("</testsuites>\n");
    out
}
