//! `effbench report` end to end. Each export is checked by the tool it is for, not by our own
//! reader: the `.prom` file by the `prometheus-parse` crate (a Prometheus text-format parser),
//! `repeats.csv` by Python's `csv` module, `bmf.json` by Python's `jsonschema` (the reference
//! implementation) against tests/fixtures/report/bmf.schema.json, the schema Bencher publishes
//! for BMF. The HTML must load nothing from anywhere and every plot must have marks.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use util::{both, run, tempdir};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report")
}

/// A full report of the fixtures, with the baseline, into `<tmp>/r`.
fn full_report(tmp: &Path) -> PathBuf {
    let out = tmp.join("r");
    let (results, baselines) = (fixtures().join("results"), fixtures().join("baselines"));
    let o = run(&[
        "report",
        results.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--baseline",
        baselines.to_str().unwrap(),
        "--format",
        "html,md,bmf,prometheus,csv",
    ]);
    assert!(o.status.success(), "{}", both(&o));
    out
}

fn python(script: &str, args: &[&Path]) -> String {
    let o = Command::new(util::venv_python()).arg("-c").arg(script).args(args).output().unwrap();
    assert!(o.status.success(), "python3 failed:\n{}", both(&o));
    util::text(&o.stdout)
}

#[test]
fn prometheus_file_parses_with_a_prometheus_parser() {
    let tmp = tempdir("report-prom");
    let text = std::fs::read_to_string(full_report(tmp.path()).join("effbench.prom")).unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    // The parser skips lines it cannot read, so every sample line must come back as a sample.
    let sample_lines = text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).count();
    assert_eq!(scrape.samples.len(), sample_lines, "every sample line parses");
    assert!(sample_lines > 20, "{sample_lines}");
    for s in &scrape.samples {
        assert!(s.metric.starts_with("effbench_"), "{}", s.metric);
        assert!(matches!(s.value, prometheus_parse::Value::Gauge(_)), "{} is typed gauge: {:?}", s.metric, s.value);
        for l in ["run", "workload", "recipe", "backend", "host_class", "stat"] {
            assert!(s.labels.get(l).is_some(), "{} has label {l}", s.metric);
        }
    }
    let energy: Vec<_> = scrape.samples.iter().filter(|s| s.metric == "effbench_energy_joules").collect();
    assert!(!energy.is_empty());
    for s in energy {
        assert_eq!(s.labels.get("scope"), Some("device"));
        assert_eq!(s.labels.get("provenance"), Some("estimated"), "an estimate is labelled as one");
    }
    assert!(scrape.docs.contains_key("effbench_wall_seconds"), "every family has HELP");
}

#[test]
fn csv_reads_with_pythons_csv_module() {
    let tmp = tempdir("report-csv");
    let csv = full_report(tmp.path()).join("repeats.csv");
    let script = r#"
import csv, sys
with open(sys.argv[1], newline="") as f:
    rows = list(csv.DictReader(f))
need = ["workload", "recipe", "backend", "host_class", "seed", "valid", "wall_s", "energy_j",
        "energy_provenance", "device_energy_j", "device_provenance", "samples_to_target", "energy_cpu_j"]
missing = [c for c in need if c not in rows[0]]
assert not missing, missing
assert all(len(r) == len(rows[0]) and None not in r for r in rows), "ragged rows"
print(len(rows), sorted({r["workload"] for r in rows}), float(rows[0]["wall_s"]) > 0)
"#;
    let out = python(script, &[&csv]);
    assert_eq!(out.trim(), "10 ['digits-mlp-train', 'fmnist-mlp-infer'] True", "5 repeats each");
}

#[test]
fn bmf_validates_against_bencher_schema() {
    let tmp = tempdir("report-bmf");
    let bmf = full_report(tmp.path()).join("bmf.json");
    let script = r#"
import json, sys, jsonschema
doc, schema = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
jsonschema.Draft7Validator.check_schema(schema)
jsonschema.validate(doc, schema, cls=jsonschema.Draft7Validator)
print(sorted(doc), sorted(doc["digits-mlp-train"]))
"#;
    let out = python(script, &[&bmf, &fixtures().join("bmf.schema.json")]);
    assert!(out.contains("['digits-mlp-train', 'fmnist-mlp-infer']"), "{out}");
    assert!(out.contains("'energy-per-unit-device-estimated'") && out.contains("'samples-to-target'"), "{out}");
    // The schema is not vacuous: a measure without `value` fails it.
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, r#"{"w": {"energy": {"lower_value": 1.0}}}"#).unwrap();
    let o = Command::new(util::venv_python())
        .args(["-c", "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))"])
        .arg(&bad)
        .arg(fixtures().join("bmf.schema.json"))
        .output()
        .unwrap();
    assert!(!o.status.success(), "a measure without value must fail the schema");
}

#[test]
fn html_is_self_contained_and_every_plot_has_marks() {
    let tmp = tempdir("report-html");
    let dir = full_report(tmp.path());
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    for banned in ["http", "src=", "<script", "<link", "@import", "url("] {
        assert!(!html.contains(banned), "index.html contains {banned:?}");
    }
    let svgs: Vec<&str> = html.split("<svg").skip(1).map(|s| s.split("</svg>").next().unwrap()).collect();
    assert_eq!(svgs.len(), 5, "quality, power, energy and reduction of one workload, energy of the other");
    for s in &svgs {
        assert!(s.contains("<polyline") || s.contains("<circle"), "a plot without marks: {}", &s[..200.min(s.len())]);
    }
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for f in ["digits-mlp-train-quality.svg", "digits-mlp-train-power.svg", "digits-mlp-train-reduction.svg"] {
        assert!(md.contains(&format!("]({f})")), "report.md links {f}");
        assert!(dir.join(f).is_file(), "{f} is beside report.md");
    }
}

#[test]
fn a_file_that_is_not_a_result_is_named_and_nothing_is_written() {
    let tmp = tempdir("report-bad");
    let inputs = tmp.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    std::fs::copy(fixtures().join("results/fmnist-mlp-infer.json"), inputs.join("a.json")).unwrap();
    std::fs::write(inputs.join("notes.json"), r#"{"hello": 1}"#).unwrap();
    let out = tmp.path().join("r");
    let o = run(&["report", inputs.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(both(&o).contains("notes.json"), "{}", both(&o));
    assert!(!out.exists(), "no half-written report");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["in"], "no temporary directory is left behind");
}

#[test]
fn an_out_dir_holding_other_files_is_refused_and_an_old_report_replaced() {
    let tmp = tempdir("report-out");
    let out = tmp.path().join("r");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("thesis.tex"), "keep me").unwrap();
    let input = fixtures().join("results/fmnist-mlp-infer.json");
    let o = run(&["report", input.to_str().unwrap(), "--out", out.to_str().unwrap(), "--format", "csv"]);
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(both(&o).contains("thesis.tex"), "{}", both(&o));
    assert_eq!(std::fs::read_to_string(out.join("thesis.tex")).unwrap(), "keep me");
    std::fs::remove_file(out.join("thesis.tex")).unwrap();
    std::fs::write(out.join("report.md"), "old").unwrap();
    let o = run(&["report", input.to_str().unwrap(), "--out", out.to_str().unwrap(), "--format", "csv"]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(!out.join("report.md").exists(), "the old report is replaced whole");
    assert!(out.join("repeats.csv").is_file());
}
