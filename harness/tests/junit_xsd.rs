//! `effbench gate --junit FILE` against junit-10.xsd (issue 12, item 2): the JUnit schema of
//! Jenkins' xunit plugin, which pytest ships as testing/example_scripts/junit-10.xsd and says
//! its own output conforms to. The schema is pytest's file, so it is not committed:
//! `bash runners/reference/setup.sh` extracts it from the pinned pytest sdist on PyPI (checked
//! by sha256) into the test venv, with the XSD 1.0 validator `xmlschema` (pinned in
//! requirements.txt). Real gates write the files (passing, failing, skipped, invalid cases,
//! from the report fixtures as gate_cli.rs edits them); a deliberately wrong file must fail
//! validation, so the test can fail. Without the venv or schema the test is skipped with a
//! message, except under CI (`CI` set), where it fails.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use util::*;

/// Validates each file against the schema; prints `FILE: valid` or `FILE: INVALID: reasons`.
const VALIDATE: &str = r#"
import sys, xmlschema
schema = xmlschema.XMLSchema10(sys.argv[1])
for f in sys.argv[2:]:
    errors = [e.reason for e in schema.iter_errors(f)]
    print(f + (": valid" if not errors else ": INVALID: " + " / ".join(map(str, errors[:5]))))
"#;

fn schema() -> Option<(PathBuf, PathBuf)> {
    let venv = repo().join("runners/reference/.venv");
    let (python, xsd) = (venv.join("bin/python"), venv.join("share/junit-10.xsd"));
    let found = python.exists() && xsd.exists();
    tool_present(
        "the junit-10.xsd validator (xmlschema, and the schema in the venv)",
        found,
        "run `bash runners/reference/setup.sh`",
    )
    .then_some((python, xsd))
}

/// Each file's verdict from the real validator, in order.
fn validate(python: &Path, xsd: &Path, files: &[PathBuf]) -> Vec<String> {
    let o = output_within(
        Command::new(python).arg("-c").arg(VALIDATE).arg(xsd).args(files),
        60,
        "the XSD validator did not finish in 60 s",
    );
    assert!(o.status.success(), "the validator failed: {}", both(&o));
    let lines: Vec<String> = text(&o.stdout).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), files.len(), "{}", both(&o));
    lines
}

/// Runs `gate CANDIDATE --baseline BASELINE --junit OUT`, expecting exit `code`; returns the
/// JUnit file after checking it holds `holds`.
fn gate(candidate: &Path, baseline: &Path, out: PathBuf, code: i32, holds: &str) -> PathBuf {
    let o = effbench()
        .arg("gate")
        .arg(candidate)
        .arg("--baseline")
        .arg(baseline)
        .arg("--junit")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(code), "{}", both(&o));
    let xml = std::fs::read_to_string(&out).unwrap();
    assert!(xml.contains(holds), "{} lacks {holds}: {xml}", out.display());
    out
}

#[test]
fn every_gate_junit_file_validates_against_junit_10_xsd() {
    let Some((python, xsd)) = schema() else { return };
    let tmp = tempdir("junit-xsd");
    let dir = tmp.path();
    let fixtures = repo().join("harness/tests/fixtures/report");
    let (results, baselines) = (fixtures.join("results"), fixtures.join("baselines"));
    let base = baselines.join("digits-mlp-train.json");

    let mut files = Vec::new();
    // Passing, with skipped cases: energy too short to resolve, and a workload (fmnist) that
    // has no baseline.
    files.push(gate(&results, &baselines, dir.join("pass.xml"), 0, "<skipped"));
    // Failing: 30% more time on every repeat is a regression.
    let slow = scaled_copy(&base, &dir.join("slow"), 1.3, |_| {});
    files.push(gate(&slow, &base, dir.join("regression.xml"), 1, "type=\"regression\""));
    // Invalid: a candidate repeat that missed the quality target (exit 4).
    let invalid = scaled_copy(&base, &dir.join("invalid"), 0.5, |v| {
        let r = &mut v["repeats"][2];
        r["valid"] = false.into();
        r["invalid_reason"] = "quality target >= 0.95 not reached".into();
        r["quality"] = 0.10.into();
        r["evaluations"].as_array_mut().unwrap().last_mut().unwrap()["quality"] = 0.10.into();
    });
    files.push(gate(&invalid, &base, dir.join("invalid.xml"), 4, "type=\"invalid\""));
    // Text that needs escaping in every attribute and body: a hostile workload directory name
    // ends up in the properties.
    let odd_dir = dir.join("a&b <\"c\"> 'd'");
    let odd = scaled_copy(&base, &odd_dir, 1.0, |_| {});
    files.push(gate(&odd, &base, dir.join("escaped.xml"), 0, "a&amp;b &lt;&quot;c&quot;&gt; &apos;d&apos;"));

    // The negative control: what junit.rs wrote before issue 12 (`skipped` on <testsuites>),
    // and a <testsuite> without the required `errors`.
    let wrong = dir.join("wrong.xml");
    let pass = std::fs::read_to_string(&files[0]).unwrap();
    std::fs::write(&wrong, pass.replacen("<testsuites ", "<testsuites skipped=\"1\" ", 1)).unwrap();
    let no_errors = dir.join("no-errors.xml");
    std::fs::write(&no_errors, pass.replace(" errors=\"0\" skipped=", " skipped=")).unwrap();
    files.extend([wrong, no_errors]);

    let verdicts = validate(&python, &xsd, &files);
    for v in &verdicts[..4] {
        assert!(v.ends_with(": valid"), "{v}");
    }
    for v in &verdicts[4..] {
        assert!(v.contains(": INVALID: "), "the schema accepted a wrong file: {v}");
    }
    assert!(verdicts[4].contains("skipped"), "{}", verdicts[4]);
    assert!(verdicts[5].contains("errors"), "{}", verdicts[5]);
}
