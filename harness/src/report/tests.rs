//! Unit tests of `effbench report`'s pieces on the fixture results (tests/fixtures/report/).

use std::path::Path;

use super::data::{figures, unique_names, Figure, NameKey, Unit};
use crate::result::RunResult;
use crate::sensor::Provenance;

fn fixture(name: &str) -> RunResult {
    RunResult::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report/results").join(name)).unwrap()
}

#[test]
fn label_values_and_csv_fields_are_escaped() {
    assert_eq!(super::prom::escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    assert_eq!(super::csv::field("a,b"), "\"a,b\"");
    assert_eq!(super::csv::field("x\"y"), "\"x\"\"y\"");
    assert_eq!(super::csv::field("plain"), "plain");
}

#[test]
fn the_same_workload_from_two_inputs_gets_two_names() {
    let a = fixture("digits-mlp-train.json");
    let mut b = a.clone();
    b.system.cpu_model = "Intel Xeon Gold 6130".into();
    let c = fixture("fmnist-mlp-infer.json");
    let names = unique_names(&[&a, &b, &c, &a].map(NameKey::of));
    assert_eq!(names[2], "fmnist-mlp-infer", "a unique id stays as it is");
    assert!(names[0].starts_with("digits-mlp-train-cpu-amd-epyc-2t"), "{names:?}");
    assert!(names[1].contains("intel-xeon-gold-6130"), "{names:?}");
    assert_ne!(names[0], names[3], "even identical inputs are told apart: {names:?}");
}

#[test]
fn figures_carry_scope_and_provenance() {
    let r = fixture("digits-mlp-train.json");
    let f = figures(&r);
    let energy: Vec<&Figure> = f.iter().filter(|f| f.metric == "energy_j").collect();
    assert_eq!(energy.len(), 1);
    assert_eq!(energy[0].scope, Some(crate::scope::Scope::Device));
    assert_eq!(energy[0].provenance, Some(Provenance::Estimated));
    assert!(energy[0].estimated());
    let s = energy[0].value.as_ref().unwrap();
    assert!(s.ci95[0] <= s.median && s.median <= s.ci95[1]);
    assert!(f.iter().any(|f| f.metric == "samples_to_target" && f.unit == Unit::Count));
    assert_eq!(super::bmf::slug(energy[0]), "energy-device-estimated");
    let long = Figure { metric: "x", scope: None, unit: Unit::Count, provenance: None, value: Err(String::new()) };
    assert!(super::bmf::slug(&Figure { metric: "m".repeat(100).leak(), ..long }).len() <= super::bmf::MAX_SLUG);
}

#[test]
fn a_directory_with_other_files_is_never_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("r");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let files = vec![("repeats.csv".to_string(), b"a\n".to_vec())];
    let e = super::output::write_dir(&out, files.clone()).unwrap_err();
    assert!(e.to_string().contains("notes.txt"), "{e}");
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
    std::fs::remove_file(out.join("notes.txt")).unwrap();
    std::fs::write(out.join("index.html"), "old").unwrap();
    super::output::write_dir(&out, files.clone()).unwrap();
    assert_eq!(std::fs::read_to_string(out.join("repeats.csv")).unwrap(), "a\n");
    assert!(!out.join("index.html").exists());
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["r"], "no temporary directory left");
    let file = tmp.path().join("thesis.tex");
    std::fs::write(&file, "keep me").unwrap();
    let e = super::output::write_dir(&file, files.clone()).unwrap_err();
    assert!(e.to_string().contains("not a directory"), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me", "a file given as --out is never replaced");
}
