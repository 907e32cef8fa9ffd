//! `effbench report` on bad input (issue 12, "Bad input"): a file that is not a result is
//! named (exit 2) and leaves nothing half-written, an earlier report in `--out` survives a
//! failing one untouched, and a result with no trace and no evaluations still reports.

mod util;

use std::path::{Path, PathBuf};

use util::{both, edit_json, run, tempdir};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report/results").join(name)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn a_failing_report_keeps_the_earlier_one_whole() {
    let tmp = tempdir("report-keep");
    let out = tmp.path().join("r");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("report.md"), "the earlier report").unwrap();
    std::fs::write(out.join("a.svg"), "<svg/>").unwrap();
    let inputs = tmp.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    std::fs::copy(fixture("digits-mlp-train.json"), inputs.join("a.json")).unwrap();
    // Not JSON at all: the error names the file and the line.
    std::fs::write(inputs.join("b.json"), "{\n  \"schema\": \"effbench.result/1\",\n  oops\n").unwrap();
    let o = run(&["report", inputs.to_str().unwrap(), "--out", out.to_str().unwrap(), "--format", "html,md,csv"]);
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    let msg = both(&o);
    assert!(msg.contains("b.json") && msg.contains("line 3"), "names the file and the line: {msg}");
    assert_eq!(names(&out), ["a.svg", "report.md"], "the earlier report is untouched");
    assert_eq!(std::fs::read_to_string(out.join("report.md")).unwrap(), "the earlier report");
    assert_eq!(names(tmp.path()), ["in", "r"], "no temporary directory is left beside --out");
}

#[test]
fn a_result_of_another_schema_or_truncated_is_named() {
    let tmp = tempdir("report-schema");
    let other = tmp.path().join("other.json");
    std::fs::write(&other, r#"{"schema": "effbench.result/99"}"#).unwrap();
    let truncated = tmp.path().join("cut.json");
    let full = std::fs::read_to_string(fixture("fmnist-mlp-infer.json")).unwrap();
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    for bad in [&other, &truncated] {
        let out = tmp.path().join("r");
        let o = run(&["report", bad.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{}", both(&o));
        assert!(both(&o).contains(bad.file_name().unwrap().to_str().unwrap()), "{}", both(&o));
        assert!(!out.exists(), "no report for bad input");
    }
}

#[test]
fn a_result_without_trace_or_evaluations_still_reports() {
    let tmp = tempdir("report-bare");
    let inputs = tmp.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    // The training fixture without its trace (not copied) and without any evaluation: a run
    // stopped before its first one, so no repeat is valid (a valid repeat without evaluations
    // contradicts itself and is refused, exit 4); and an inference result, which has none.
    let r = inputs.join("digits-mlp-train.json");
    std::fs::copy(fixture("digits-mlp-train.json"), &r).unwrap();
    std::fs::copy(fixture("fmnist-mlp-infer.json"), inputs.join("fmnist-mlp-infer.json")).unwrap();
    edit_json(&r, |v| {
        for rep in v["repeats"].as_array_mut().unwrap() {
            rep["evaluations"] = serde_json::json!([]);
            rep["valid"] = false.into();
            rep["invalid_reason"] = "stopped before its first evaluation".into();
            for k in ["samples_to_target", "bytes_to_target", "quality"] {
                rep[k] = serde_json::Value::Null;
            }
        }
    });
    let out = tmp.path().join("r");
    let o = run(&[
        "report",
        inputs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--format",
        "html,md,bmf,prometheus,csv",
    ]);
    assert!(o.status.success(), "{}", both(&o));
    for f in ["index.html", "report.md", "bmf.json", "effbench.prom", "repeats.csv"] {
        let len = std::fs::metadata(out.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{f} written and not empty");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("digits-mlp-train.trace.csv does not exist"), "says the trace is missing: {md}");
    assert!(!out.join("digits-mlp-train-power.svg").exists(), "no empty power plot");
    assert!(!out.join("digits-mlp-train-quality.svg").exists(), "no empty quality plot");
    let csv = std::fs::read_to_string(out.join("repeats.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 10, "a header and every repeat of both results: {csv}");
}
