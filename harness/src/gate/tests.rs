use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::sensor::Provenance;
use crate::stats::SplitMix64;
use crate::verdict::tests::{miss_target, normal, run};

/// Twelve per-seed amounts that differ by up to +-20% (as seeds do).
const SEEDS: [f64; 12] = [1000.0, 1180.0, 850.0, 1060.0, 930.0, 1200.0, 820.0, 1100.0, 960.0, 1040.0, 880.0, 1150.0];
/// A run's own noise per repeat (about 1%).
const NOISE: [f64; 12] = [1.01, 0.99, 1.02, 0.985, 1.0, 1.012, 0.992, 1.005, 0.99, 1.008, 0.996, 1.003];

fn scaled(factor: f64) -> Vec<f64> {
    SEEDS.iter().zip(NOISE).map(|(s, n)| s * factor * n).collect()
}

fn base() -> RunResult {
    run("w", &SEEDS, Provenance::Measured)
}

fn outcomes(w: &WorkloadGate) -> Vec<(&str, &Outcome)> {
    w.cases.iter().map(|c| (c.metric.as_str(), &c.outcome)).collect()
}

#[test]
fn ten_percent_worse_everywhere_is_a_regression() {
    let w = gate_one(&run("w", &scaled(1.10), Provenance::Measured), &base(), &GateOptions::default());
    assert_eq!(
        outcomes(&w).iter().map(|(m, _)| *m).collect::<Vec<_>>(),
        ["energy_j", "cpu_s", "samples_to_target", "bytes_to_target"],
        "unique samples are informational, not gated"
    );
    for c in &w.cases {
        assert_eq!(c.outcome, Outcome::Regression, "{c:?}");
        assert!(c.paired, "both sides ran seeds 0..12");
        assert!((c.change - 0.10).abs() < 0.01, "{c:?}");
        assert!(c.ci95[0] > 0.05 && c.ci95[0] <= c.change && c.change <= c.ci95[1], "{c:?}");
    }
}

#[test]
fn ten_percent_better_is_improved_and_three_percent_is_no_change() {
    let w = gate_one(&run("w", &scaled(0.90), Provenance::Measured), &base(), &GateOptions::default());
    assert!(w.cases.iter().all(|c| c.outcome == Outcome::Improved), "{w:#?}");
    let w = gate_one(&run("w", &scaled(1.03), Provenance::Measured), &base(), &GateOptions::default());
    assert!(w.cases.iter().all(|c| c.outcome == Outcome::NoChange), "{w:#?}");
    // The same 3% is a regression at a 1% threshold: the interval is tight enough.
    let strict = GateOptions { max_regression: 0.01, ..Default::default() };
    let w = gate_one(&run("w", &scaled(1.03), Provenance::Measured), &base(), &strict);
    assert!(w.cases.iter().all(|c| c.outcome == Outcome::Regression), "{w:#?}");
}

#[test]
fn criterion_rule_on_the_interval() {
    assert_eq!(judge([0.051, 0.2], 0.05), Outcome::Regression);
    assert_eq!(judge([0.05, 0.2], 0.05), Outcome::NoChange, "the lower end must exceed the threshold");
    assert_eq!(judge([-0.3, -0.051], 0.05), Outcome::Improved);
    assert_eq!(judge([-0.3, 0.3], 0.05), Outcome::NoChange);
    assert_eq!(judge([0.0, 0.0], 0.05), Outcome::NoChange);
}

#[test]
fn unpaired_when_seeds_differ_and_noise_then_hides_a_small_change() {
    let mut cand = run("w", &scaled(1.10), Provenance::Measured);
    for (i, r) in cand.repeats.iter_mut().enumerate() {
        r.seed = 100 + i as u64;
    }
    let w = gate_one(&cand, &base(), &GateOptions::default());
    for c in &w.cases {
        assert!(!c.paired, "{c:?}");
        assert_eq!(c.outcome, Outcome::NoChange, "the seeds' +-20% spread hides 10%: {c:?}");
    }
}

#[test]
fn an_invalid_candidate_repeat_fails_every_metric() {
    let mut cand = run("w", &scaled(0.5), Provenance::Measured);
    miss_target(&mut cand, 3);
    let w = gate_one(&cand, &base(), &GateOptions::default());
    assert_eq!(w.cases.len(), 4);
    for c in &w.cases {
        let Outcome::Invalid { reason } = &c.outcome else { panic!("{c:?}") };
        assert!(reason.contains("repeat 4 (seed 3)") && reason.contains("misses the target 0.85"), "{reason}");
        assert!(c.outcome.fails());
    }
}

#[test]
fn measured_against_estimated_energy_is_skipped_and_the_rest_is_gated() {
    let cand = run("w", &scaled(1.10), Provenance::Estimated);
    let w = gate_one(&cand, &base(), &GateOptions::default());
    let Outcome::Skipped { reason } = &w.cases[0].outcome else { panic!("{w:#?}") };
    assert!(reason.starts_with("incomparable energy") && reason.contains("estimated"), "{reason}");
    assert!(!w.cases[0].outcome.fails());
    assert!(w.cases[1..].iter().all(|c| c.outcome == Outcome::Regression), "{w:#?}");
}

#[test]
fn energy_is_gated_at_the_scope_asked_for_and_a_scope_not_measured_is_skipped() {
    let cand = run("w", &scaled(1.10), Provenance::Measured);
    let w = gate_one(&cand, &base(), &GateOptions::default());
    let scope = w.energy_scope.as_ref().expect("a scope both sides measured");
    assert_eq!(
        (scope.scope, scope.candidate_domains.as_slice()),
        (crate::scope::Scope::Device, &["cpu".to_string()][..])
    );
    assert_eq!(w.cases[0].outcome, Outcome::Regression);
    let wall = GateOptions { scope: Some(crate::scope::Scope::Wall), ..Default::default() };
    let w = gate_one(&cand, &base(), &wall);
    let Outcome::Skipped { reason } = &w.cases[0].outcome else { panic!("{w:#?}") };
    assert!(
        reason.starts_with("incomparable energy at wall scope: the candidate did not measure wall scope"),
        "{reason}"
    );
    assert!(w.energy_scope.is_none());
}

#[test]
fn different_recipes_and_planted_slowdowns_warn() {
    let mut cand = run("w", &SEEDS, Provenance::Measured);
    cand.recipe.name = "efficient".into();
    cand.planted_slowdown = Some(0.2);
    let w = gate_one(&cand, &base(), &GateOptions::default());
    assert!(w.warnings.iter().any(|x| x.contains("recipes differ")), "{:?}", w.warnings);
    assert!(w.warnings.iter().any(|x| x.contains("planted slowdown of 20%")), "{:?}", w.warnings);
    assert!(gate_one(&base(), &base(), &GateOptions::default()).warnings.is_empty());
}

/// A result against itself, and against copies with independent noise of a few percent, is
/// never a regression (nor an improvement) at the default threshold.
#[test]
fn a_against_a_is_never_a_regression() {
    let w = gate_one(&base(), &base(), &GateOptions::default());
    assert!(w.cases.iter().all(|c| c.outcome == Outcome::NoChange && c.change == 0.0), "{w:#?}");
    let mut rng = SplitMix64::new(11);
    for _ in 0..50 {
        let noisy = |rng: &mut SplitMix64| -> Vec<f64> {
            SEEDS.iter().map(|s| s * (0.015 * normal(rng)).exp()).collect::<Vec<f64>>()
        };
        let (a, b) = (noisy(&mut rng), noisy(&mut rng));
        let w = gate_one(&run("w", &a, Provenance::Measured), &run("w", &b, Provenance::Measured), &Default::default());
        assert!(w.cases.iter().all(|c| c.outcome == Outcome::NoChange), "{w:#?}");
    }
}

fn set(items: &[RunResult]) -> BTreeMap<String, (PathBuf, RunResult)> {
    items
        .iter()
        .map(|r| (r.workload.id.clone(), (PathBuf::from(format!("{}.json", r.workload.id)), r.clone())))
        .collect()
}

#[test]
fn sets_are_matched_by_workload_and_exit_codes_follow_the_worst_case() {
    let b = set(&[run("x", &SEEDS, Provenance::Measured), run("y", &SEEDS, Provenance::Measured)]);
    let opts = GateOptions::default();
    // x unchanged, z has no baseline: passes, and says so.
    let c = set(&[run("x", &SEEDS, Provenance::Measured), run("z", &SEEDS, Provenance::Measured)]);
    let r = gate_sets(&c, &b, &opts).unwrap();
    assert_eq!(r.exit_code, crate::error::Exit::Ok);
    assert_eq!(r.baselines_unused, ["fmnist-cnn-train"], "y");
    let z = r.workloads.iter().find(|w| w.workload == "ae-machine-train").unwrap();
    assert!(matches!(&z.cases[0].outcome, Outcome::Skipped { reason } if reason.contains("no baseline")));
    // x regressed: 1.
    let c = set(&[run("x", &scaled(1.2), Provenance::Measured)]);
    assert_eq!(gate_sets(&c, &b, &opts).unwrap().exit_code, crate::error::Exit::NotMet);
    // y invalid beside x's regression: 4.
    let mut y = run("y", &SEEDS, Provenance::Measured);
    miss_target(&mut y, 0);
    let c = set(&[run("x", &scaled(1.2), Provenance::Measured), y]);
    assert_eq!(gate_sets(&c, &b, &opts).unwrap().exit_code, crate::error::Exit::Invalid);
    // Nothing matched, or nothing comparable: an error, not a pass of nothing.
    let c = set(&[run("z", &SEEDS, Provenance::Measured)]);
    assert!(matches!(gate_sets(&c, &b, &opts), Err(GateError::NothingMatched { .. })));
    let c = set(&[run("x", &SEEDS, Provenance::Estimated)]);
    let energy_only = GateOptions { metrics: vec![GateMetric::Energy], ..Default::default() };
    assert!(matches!(gate_sets(&c, &b, &energy_only), Err(GateError::AllSkipped(_))));
}

#[test]
fn three_repeats_a_side_cannot_decide_a_doubled_time_and_the_gate_fails() {
    // Issue 11: a planted 100% slowdown with 3 repeats passed as "no change".
    let base = run("w", &SEEDS[..3], Provenance::Measured);
    let cand = run("w", &scaled(2.0)[..3], Provenance::Measured);
    let w = gate_one(&cand, &base, &GateOptions::default());
    for c in &w.cases {
        assert!(matches!(&c.outcome, Outcome::Undecided { reason } if reason.contains("at least 5 per side")), "{c:?}");
        assert!(c.outcome.fails(), "never a pass");
    }
    let r = gate_sets(&set(&[cand]), &set(&[base]), &GateOptions::default()).unwrap();
    assert_eq!(r.exit_code, crate::error::Exit::Inconclusive);
}

#[test]
fn junit_round_trips() {
    // "w" is fmnist-mlp-train and "q" charlm-austen-train: validity is checked against the
    // registered workloads, so the characters XML must escape travel in the candidate's path.
    let b = set(&[run("w", &SEEDS, Provenance::Measured), run("q", &SEEDS, Provenance::Measured)]);
    let mut bad = run("q", &SEEDS, Provenance::Measured);
    miss_target(&mut bad, 1);
    let mut c = set(&[run("w", &scaled(1.2), Provenance::Estimated), bad]);
    c.get_mut("fmnist-mlp-train").unwrap().0 = PathBuf::from("x&<y>\".json");
    let r = gate_sets(&c, &b, &GateOptions::default()).unwrap();
    let xml = crate::report::junit::render(&r);
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(root.attribute("tests"), Some("8"));
    assert_eq!(root.attribute("failures"), Some("7"), "3 regressions (energy skipped) + 4 invalid");
    // junit-10.xsd has no `skipped` on <testsuites>; the per-suite counts carry it.
    assert_eq!(root.attribute("skipped"), None);
    let skipped: u32 = root.children().filter_map(|n| n.attribute("skipped")).map(|s| s.parse::<u32>().unwrap()).sum();
    assert_eq!(skipped, 1);
    let suites: Vec<_> = root.children().filter(|n| n.has_tag_name("testsuite")).collect();
    let names: Vec<_> = suites.iter().map(|s| s.attribute("name").unwrap()).collect();
    assert_eq!(names, ["charlm-austen-train", "fmnist-mlp-train"]);
    let path = suites[1].descendants().find(|n| n.attribute("name") == Some("candidate")).unwrap();
    assert_eq!(path.attribute("value"), Some("x&<y>\".json"), "escaped in the file, read back whole");
    let cases: Vec<_> = suites[1].children().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), 4);
    assert_eq!(cases[0].attribute("classname"), Some("effbench.fmnist-mlp-train"));
    assert_eq!(cases[0].attribute("name"), Some("energy: energy_j"));
    assert_eq!(cases[1].attribute("name"), Some("time: cpu_s"));
    assert!(cases[0].children().any(|n| n.has_tag_name("skipped")));
    let failure = cases[1].children().find(|n| n.has_tag_name("failure")).unwrap();
    assert_eq!(failure.attribute("type"), Some("regression"));
    let msg = failure.attribute("message").unwrap();
    assert!(msg.starts_with("regression: change +20.") && msg.contains("95% interval [+"), "{msg}");
    let invalid = suites[0].children().find(|n| n.has_tag_name("testcase")).unwrap();
    let f = invalid.children().find(|n| n.has_tag_name("failure")).unwrap();
    assert_eq!(f.attribute("type"), Some("invalid"));
    assert!(f.text().unwrap().contains("its quality 10 misses the target 2.2"), "{:?}", f.text());
    assert_eq!(crate::report::junit::escape("a\u{1}b<\"'&"), "ab&lt;&quot;&apos;&amp;");
}

#[test]
fn inference_repeats_are_never_paired_and_training_ones_note_other_seeds() {
    let infer = |xs: &[f64]| {
        let mut r = run("w", xs, Provenance::Measured);
        r.workload.kind = crate::result::WorkloadKind::Infer;
        r
    };
    let opts = GateOptions { metrics: vec![GateMetric::Energy, GateMetric::Time], ..Default::default() };
    let w = gate_one(&infer(&scaled(1.10)), &infer(&SEEDS), &opts);
    assert_eq!(w.cases.iter().map(|c| c.metric.as_str()).collect::<Vec<_>>(), ["energy_per_unit_j", "cpu_per_unit_s"]);
    assert!(w.cases.iter().all(|c| !c.paired), "{w:#?}");
    assert!(w.notes.is_empty(), "the seed plays no part in inference: {:?}", w.notes);
    let mut cand = run("w", &SEEDS, Provenance::Measured);
    cand.repeats.pop();
    let w = gate_one(&cand, &base(), &opts);
    assert!(w.notes.iter().any(|n| n.contains("different seeds")), "{:?}", w.notes);
}

#[test]
fn time_is_wall_clock_where_a_side_has_no_cpu_time_and_wall_can_be_asked_for() {
    let mut old = base();
    for r in &mut old.repeats {
        r.cpu_s = None;
    }
    let opts = GateOptions { metrics: vec![GateMetric::Time, GateMetric::Wall], ..Default::default() };
    let w = gate_one(&run("w", &scaled(1.10), Provenance::Measured), &old, &opts);
    assert_eq!(w.cases.iter().map(|c| c.metric.as_str()).collect::<Vec<_>>(), ["wall_s"], "gated once");
    assert!(w.notes.iter().any(|n| n.contains("no CPU time")), "{:?}", w.notes);
    let w = gate_one(&run("w", &scaled(1.10), Provenance::Measured), &base(), &opts);
    assert_eq!(w.cases.iter().map(|c| c.metric.as_str()).collect::<Vec<_>>(), ["cpu_s", "wall_s"]);
    assert!(w.cases.iter().all(|c| c.outcome == Outcome::Regression), "{w:#?}");
    assert_eq!("Wall".parse::<GateMetric>(), Ok(GateMetric::Wall));
    assert!("joules".parse::<GateMetric>().is_err());
}
