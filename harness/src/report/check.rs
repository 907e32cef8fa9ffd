//! `effbench check`'s report of a bundle ([`CheckReport`]): pure functions returning text (terminal,
//! JSON, Markdown).

use std::fmt::Write as _;

use crate::bundle::check::{CheckReport, Feedback, Status};

fn summary(r: &CheckReport) -> String {
    format!(
        "{}: {} pass, {} warn, {} fail",
        if r.valid() { "bundle valid" } else { "bundle INVALID" },
        r.count(Status::Pass),
        r.count(Status::Warn),
        r.count(Status::Fail)
    )
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.1}%", x * 100.0)
    } else {
        "n/a".into()
    }
}

/// One line per finding (`pass  check  subject: message`), a `fix:` line under each warn or
/// fail, the feedback per workload, then the summary.
pub fn render_text(r: &CheckReport) -> String {
    let mut s = format!("effbench check {}\n", r.bundle);
    if let Some(sub) = &r.submitter {
        let _ = writeln!(s, "submitter: {sub}");
    }
    let w = r.findings.iter().map(|f| f.check.len()).max().unwrap_or(0);
    for f in &r.findings {
        let _ = writeln!(s, "{:<4}  {:<w$}  {}: {}", f.status, f.check, f.subject, f.message);
        if let Some(fix) = &f.fix {
            let _ = writeln!(s, "{:<4}  {:<w$}  fix: {fix}", "", "");
        }
    }
    for fb in &r.feedback {
        let _ =
            writeln!(s, "verdict {}: {} (energy {}) against {}", fb.workload, fb.overall, fb.energy_label, fb.baseline);
        let _ = writeln!(s, "  {}", fb.energy_scope);
        for row in &fb.rows {
            let ([lo, hi], m, v) = (row.ci95, &row.metric, &row.verdict);
            let _ = writeln!(s, "  {m:<20} reduction {:>7} [{}, {}]  {v}", pct(row.reduction), pct(lo), pct(hi));
        }
    }
    s.push_str(&summary(r));
    s.push('\n');
    s
}

/// The report as pretty JSON (schema `effbench.check/1`).
pub fn render_json(r: &CheckReport) -> String {
    let mut s = serde_json::to_string_pretty(r).unwrap_or_default();
    s.push('\n');
    s
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn md_feedback(s: &mut String, fb: &Feedback) {
    let _ = writeln!(
        s,
        "\n### {}: {}\n\n{}. Baseline: `{}`.\n\n| metric | reduction | 95% interval | verdict |\n| --- | ---: | --- | --- |",
        fb.workload,
        fb.overall,
        md_cell(&fb.energy_scope).replacen("energy", "Energy", 1),
        md_cell(&fb.baseline)
    );
    for row in &fb.rows {
        let [lo, hi] = row.ci95;
        let (m, v) = (&row.metric, md_cell(&row.verdict));
        let _ = writeln!(s, "| {m} | {} | [{}, {}] | {v} |", pct(row.reduction), pct(lo), pct(hi));
    }
}

/// The feedback a vendor gets back: summary, every warn and fail with its fix, the verdicts,
/// and the passed checks last.
pub fn render_markdown(r: &CheckReport) -> String {
    let mut s = format!("# effbench check: `{}`\n\n", md_cell(&r.bundle));
    if let Some(sub) = &r.submitter {
        let _ = writeln!(s, "Submitter: {}\n", md_cell(sub));
    }
    let _ = writeln!(s, "**{}**", summary(r));
    let problems: Vec<_> = r.findings.iter().filter(|f| f.status != Status::Pass).collect();
    if !problems.is_empty() {
        s.push_str("\n## To fix\n\n| status | check | file | finding | fix |\n| --- | --- | --- | --- | --- |\n");
        for f in problems {
            let fix = f.fix.as_deref().unwrap_or("");
            let _ = writeln!(
                s,
                "| {} | {} | `{}` | {} | {} |",
                f.status,
                f.check,
                md_cell(&f.subject),
                md_cell(&f.message),
                md_cell(fix)
            );
        }
    }
    if !r.feedback.is_empty() {
        s.push_str("\n## Verdicts\n");
        for fb in &r.feedback {
            md_feedback(&mut s, fb);
        }
    }
    let passed: Vec<_> = r.findings.iter().filter(|f| f.status == Status::Pass).collect();
    if !passed.is_empty() {
        s.push_str("\n## Passed\n\n");
        for f in passed {
            let _ = writeln!(s, "- {} `{}`: {}", f.check, md_cell(&f.subject), md_cell(&f.message));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::check::{FeedbackRow, Finding, REPORT_SCHEMA};

    fn report() -> CheckReport {
        CheckReport {
            schema: REPORT_SCHEMA.into(),
            bundle: "b".into(),
            submitter: Some("acme".into()),
            valid: false,
            findings: vec![
                Finding::pass("files", "manifest.json", "3 files"),
                Finding::fail("energy", "a/w.json", "repeat 1 (seed 0): cpu energy 2 J, but 1 J", "re-run"),
            ],
            feedback: vec![Feedback {
                workload: "w".into(),
                result: "a/w.json".into(),
                baseline: "base/w.json".into(),
                energy_label: "measured".into(),
                energy_scope: "energy at device scope (measured): candidate cpu, baseline cpu".into(),
                overall: "met".into(),
                rows: vec![FeedbackRow {
                    metric: "energy_j".into(),
                    reduction: 0.6,
                    ci95: [0.55, 0.65],
                    verdict: "met".into(),
                }],
            }],
        }
    }

    #[test]
    fn text_snapshot() {
        let expected = "effbench check b\nsubmitter: acme\n\
            pass  files   manifest.json: 3 files\n\
            fail  energy  a/w.json: repeat 1 (seed 0): cpu energy 2 J, but 1 J\n\
            \x20     \x20       fix: re-run\n\
            verdict w: met (energy measured) against base/w.json\n\
            \x20 energy at device scope (measured): candidate cpu, baseline cpu\n\
            \x20 energy_j             reduction  +60.0% [+55.0%, +65.0%]  met\n\
            bundle INVALID: 1 pass, 0 warn, 1 fail\n";
        assert_eq!(render_text(&report()), expected);
    }

    #[test]
    fn markdown_snapshot() {
        let expected = "# effbench check: `b`\n\nSubmitter: acme\n\n**bundle INVALID: 1 pass, 0 warn, 1 fail**\n\n\
            ## To fix\n\n| status | check | file | finding | fix |\n| --- | --- | --- | --- | --- |\n\
            | fail | energy | `a/w.json` | repeat 1 (seed 0): cpu energy 2 J, but 1 J | re-run |\n\n\
            ## Verdicts\n\n### w: met\n\nEnergy at device scope (measured): candidate cpu, baseline cpu. Baseline: `base/w.json`.\n\n\
            | metric | reduction | 95% interval | verdict |\n| --- | ---: | --- | --- |\n\
            | energy_j | +60.0% | [+55.0%, +65.0%] | met |\n\n\
            ## Passed\n\n- files `manifest.json`: 3 files\n";
        assert_eq!(render_markdown(&report()), expected);
    }

    #[test]
    fn json_snapshot() {
        let j = render_json(&report());
        assert!(j.starts_with("{\n  \"schema\": \"effbench.check/1\",\n  \"bundle\": \"b\",\n"), "{j}");
        assert!(j.contains("\"submitter\": \"acme\",\n  \"valid\": false,\n"), "{j}");
        assert!(j.contains("\"status\": \"fail\",\n      \"check\": \"energy\""), "{j}");
        assert!(j.contains("\"fix\": \"re-run\""), "{j}");
        assert!(!j.contains("\"fix\": null"), "a pass has no fix field: {j}");
    }
}
