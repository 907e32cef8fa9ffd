use std::path::Path;

use super::*;
use crate::result::Evaluation;
use crate::sensor::Provenance;
use crate::units::{Joules, Seconds};
use crate::verdict::tests::run;

const BASE: [f64; 5] = [1000.0, 1030.0, 970.0, 1010.0, 990.0];

fn finding(r: &RunResult) -> String {
    check_file(r, Path::new("cand.json")).unwrap_err().to_string()
}

#[test]
fn a_result_whose_numbers_hold_passes() {
    let r = run("w", &BASE, Provenance::Measured);
    check_file(&r, Path::new("cand.json")).unwrap();
    assert!(r.repeats.iter().all(|x| is_valid(&r, x)));
}

#[test]
fn a_valid_flag_on_a_quality_far_below_the_target_is_a_contradiction_naming_file_and_repeat() {
    // Issue 10: a scaled copy with quality 0.10 and "valid": true was judged met.
    let mut r = run("w", &BASE, Provenance::Measured);
    r.repeats[1].quality = Some(0.10);
    r.repeats[1].evaluations = Some(vec![Evaluation { samples: 51_500, quality: 0.10 }]);
    let e = finding(&r);
    assert!(e.contains("cand.json") && e.contains("repeat 2 (seed 1) says it is valid"), "{e}");
    assert!(e.contains("quality 0.1 misses the target 0.85"), "{e}");
}

#[test]
fn a_file_that_lowers_its_own_target_is_refused() {
    let mut r = run("w", &BASE, Provenance::Measured);
    r.workload.quality_target = 0.05;
    assert!(finding(&r).contains("registered target is >= 0.85"), "{}", finding(&r));
}

#[test]
fn samples_to_target_must_match_the_evaluations_and_the_cap() {
    let mut r = run("w", &BASE, Provenance::Measured);
    r.repeats[0].samples_to_target = Some(10);
    assert!(finding(&r).contains("not where it claims to meet the target (10 samples)"), "{}", finding(&r));
    let mut r = run("w", &BASE, Provenance::Measured);
    r.repeats[0].evaluations =
        Some(vec![Evaluation { samples: 2048, quality: 0.9 }, Evaluation { samples: 50_000, quality: 0.96 }]);
    r.repeats[0].samples_to_target = Some(50_000);
    assert!(finding(&r).contains("an earlier evaluation already met the target at 2048"), "{}", finding(&r));
    let mut r = run("w", &BASE, Provenance::Measured);
    r.repeats[0].samples_to_target = Some(10_000_000);
    r.repeats[0].evaluations = Some(vec![Evaluation { samples: 10_000_000, quality: 0.96 }]);
    assert!(finding(&r).contains("outside 1..=400000"), "{}", finding(&r));
}

#[test]
fn zero_infinite_and_implausible_figures_are_invalid_not_wins() {
    // Issue 11: 0 samples, 0 J or 0 s were judged a win; 1e308 J overflowed to inf and was met.
    type Edit = fn(&mut Repeat);
    let cases: [(&str, Edit); 4] = [
        ("its energy is 0 J", |r| {
            r.energy_j.total = Joules(0.0);
            r.energy_j.by_domain.clear();
        }),
        ("its time is 0 s", |r| r.wall_s = Seconds(0.0)),
        ("it processed no work", |r| r.units_processed = 0),
        ("above the 5000 W", |r| {
            r.energy_j.total = Joules(1e308);
            r.energy_j.by_domain.insert("cpu".into(), Joules(1e308));
        }),
    ];
    for (expected, edit) in cases {
        let mut r = run("w", &BASE, Provenance::Measured);
        edit(&mut r.repeats[3]);
        assert!(!is_valid(&r, &r.repeats[3]), "{expected}");
        let e = finding(&r);
        assert!(e.contains("repeat 4") && e.contains(expected), "{expected}: {e}");
    }
}

#[test]
fn an_invalid_flag_on_numbers_that_hold_is_a_contradiction_too() {
    let mut r = run("w", &BASE, Provenance::Measured);
    r.repeats[2].valid = false;
    r.repeats[2].invalid_reason = Some("made up".into());
    let e = finding(&r);
    assert!(e.contains("repeat 3 (seed 2) says it is invalid") && e.contains("made up"), "{e}");
    // A repeat invalid by both its flag and its numbers is consistent.
    r.repeats[2].quality = Some(0.2);
    r.repeats[2].evaluations = Some(vec![Evaluation { samples: 48_500, quality: 0.2 }]);
    check_file(&r, Path::new("cand.json")).unwrap();
}

#[test]
fn unresolved_energy_may_leave_a_zero_total_without_being_invalid() {
    let mut r = run("w", &BASE, Provenance::Measured);
    r.repeats[0].energy_j.total = Joules(0.0);
    r.repeats[0].energy_j.by_domain.clear();
    r.repeats[0]
        .unresolved_energy
        .push(crate::result::UnresolvedEnergy { domain: "system".into(), reason: "x".into() });
    assert!(is_valid(&r, &r.repeats[0]));
}

#[test]
fn an_unknown_workload_is_never_valid() {
    let r = run("no-such-workload", &BASE, Provenance::Measured);
    let why = numbers(&r, &r.repeats[0]).unwrap_err();
    assert!(why.contains("not one effbench knows"), "{why}");
    check_file(&r, Path::new("x.json")).unwrap(); // left to compare/gate: another workload
}
