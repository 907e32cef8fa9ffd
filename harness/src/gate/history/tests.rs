use super::*;
use crate::sensor::Provenance;
use crate::stats::SplitMix64;
use crate::verdict::tests::{miss_target, normal, run};

/// Per-seed amounts that differ by up to +-20%, as seeds do (the same seeds in every run).
const SEEDS: [f64; 5] = [1000.0, 1180.0, 850.0, 1060.0, 930.0];

/// A run whose every metric is SEEDS scaled by `factor`, with 1% noise per repeat from `rng`.
fn run_at(factor: f64, rng: &mut SplitMix64) -> RunResult {
    let xs: Vec<f64> = SEEDS.iter().map(|s| s * factor * (1.0 + 0.01 * normal(rng))).collect();
    run("w", &xs, Provenance::Measured)
}

/// `n` earlier runs whose levels drift between runs by `drift` (a standard deviation, as a
/// fraction), newest first.
fn history(n: usize, drift: f64, rng: &mut SplitMix64) -> Vec<HistoryRun> {
    (0..n).map(|i| HistoryRun { label: format!("run {i}"), result: run_at(1.0 + drift * normal(rng), rng) }).collect()
}

fn outcomes(w: &WorkloadGate) -> Vec<&Outcome> {
    w.cases.iter().map(|c| &c.outcome).collect()
}

#[test]
fn a_twenty_percent_slowdown_fails_and_the_same_work_passes() {
    let mut rng = SplitMix64::new(1);
    let hist = history(10, 0.04, &mut rng);
    let opts = GateOptions::default();
    let same = gate_history(&run_at(1.0, &mut rng), &hist, "history:10", &opts);
    assert!(same.cases.iter().all(|c| c.outcome == Outcome::NoChange), "{same:#?}");
    assert_eq!(same.cases[0].history_runs, Some(10));
    assert_eq!(same.cases[0].n_baseline, 50, "n_baseline counts the history's repeats");
    assert_eq!(same.baseline, Some(PathBuf::from("history:10")));
    let slow = gate_history(&run_at(1.2, &mut rng), &hist, "history:10", &opts);
    for c in &slow.cases {
        assert_eq!(c.outcome, Outcome::Regression, "{c:?}");
        assert!(c.ci95[0] > 0.0 && c.ci95[0] < c.change && c.change < c.ci95[1], "{c:?}");
    }
    let fast = gate_history(&run_at(0.8, &mut rng), &hist, "history:10", &opts);
    assert!(fast.cases.iter().all(|c| c.outcome == Outcome::Improved), "{fast:#?}");
    assert!(slow.notes.iter().any(|n| n.contains("10 earlier runs")), "{:?}", slow.notes);
}

/// The reason this gate exists: identical work drifting between runs by more than one run's
/// repeats can show. Against one earlier run the within-run gate calls an 8% drift a
/// regression; against the history of such drifts it is no change.
#[test]
fn between_run_drift_is_not_a_regression() {
    let mut rng = SplitMix64::new(7);
    let hist: Vec<HistoryRun> = [1.0, 0.93, 1.06, 0.97, 1.08, 0.95, 1.02, 0.92, 1.05, 0.99]
        .iter()
        .enumerate()
        .map(|(i, f)| HistoryRun { label: format!("run {i}"), result: run_at(*f, &mut rng) })
        .collect();
    let cand = run_at(1.08, &mut rng);
    let within = crate::gate::gate_one(&cand, &hist[0].result, &GateOptions::default());
    assert!(within.cases.iter().any(|c| c.outcome == Outcome::Regression), "{within:#?}");
    let from_history = gate_history(&cand, &hist, "history:10", &GateOptions::default());
    assert!(from_history.cases.iter().all(|c| c.outcome == Outcome::NoChange), "{from_history:#?}");
}

#[test]
fn too_little_history_cannot_decide_and_fails() {
    let mut rng = SplitMix64::new(3);
    let hist = history(2, 0.02, &mut rng);
    let w = gate_history(&run_at(1.0, &mut rng), &hist, "history:10", &GateOptions::default());
    for o in outcomes(&w) {
        assert!(matches!(o, Outcome::Undecided { reason } if reason.contains("2 usable earlier run(s)")), "{o:?}");
        assert!(o.fails());
    }
    let w = gate_history(&run_at(1.0, &mut rng), &[], "history:10", &GateOptions::default());
    assert!(w.cases.iter().all(|c| c.outcome.fails()), "an empty history never passes");
}

#[test]
fn planted_runs_and_runs_with_too_few_valid_repeats_are_left_out() {
    let mut rng = SplitMix64::new(5);
    let mut hist = history(4, 0.02, &mut rng);
    hist[1].result.planted_slowdown = Some(0.2);
    miss_target(&mut hist[2].result, 0);
    let w = gate_history(&run_at(1.0, &mut rng), &hist, "h", &GateOptions::default());
    assert!(w.notes.iter().any(|n| n.contains("run 1 has a planted slowdown")), "{:?}", w.notes);
    assert!(w.notes.iter().any(|n| n.contains("run 2 has 4 valid repeat(s)")), "{:?}", w.notes);
    assert!(w.cases.iter().all(|c| matches!(c.outcome, Outcome::Undecided { .. })), "2 usable runs are too few");
}

#[test]
fn an_invalid_candidate_is_invalid_whatever_the_history() {
    let mut rng = SplitMix64::new(9);
    let hist = history(10, 0.02, &mut rng);
    let mut cand = run_at(1.0, &mut rng);
    miss_target(&mut cand, 3);
    let w = gate_history(&cand, &hist, "h", &GateOptions::default());
    assert!(w.cases.iter().all(|c| matches!(&c.outcome, Outcome::Invalid { reason } if reason.contains("repeat 4"))));
}

#[test]
fn history_rule() {
    assert_eq!(judge(0.06, [0.001, 0.12], 0.05), Outcome::Regression);
    assert_eq!(judge(0.04, [0.01, 0.07], 0.05), Outcome::NoChange, "beyond noise but under the threshold");
    assert_eq!(judge(0.20, [-0.01, 0.41], 0.05), Outcome::NoChange, "over the threshold but within noise");
    assert_eq!(judge(-0.2, [-0.3, -0.1], 0.05), Outcome::Improved);
    assert_eq!(judge(0.0, [0.0, 0.0], 0.05), Outcome::NoChange, "deterministic and unchanged");
}

/// The rule's error rates under a model of a shared VM: 10 earlier runs, 1% within-run noise,
/// and a between-run drift of 4% (a standard deviation). At most 5% false alarms and at least
/// 95% of 20% slowdowns caught. Seeded, so the counts are the same on every run: 8 and 196 of
/// 200. The rates fall with more drift (`SIM_DRIFT=0.05`: 9 false alarms, 176 caught; 0.07:
/// 9 and 127; 0.02: 3 and 200), which is why the real machine is calibrated
/// (bench/calibrate-gate.sh, HISTORY=1).
#[test]
fn simulated_error_rates_meet_the_goal() {
    let drift_sd: f64 = std::env::var("SIM_DRIFT").ok().and_then(|v| v.parse().ok()).unwrap_or(0.04);
    let mut rng = SplitMix64::new(11);
    let opts = GateOptions { metrics: vec![GateMetric::Time], resamples: 1, ..Default::default() };
    let (mut false_alarms, mut caught) = (0, 0);
    let trials = 200;
    for _ in 0..trials {
        let hist = history(10, drift_sd, &mut rng);
        let drift = 1.0 + drift_sd * normal(&mut rng);
        if gate_history(&run_at(drift, &mut rng), &hist, "h", &opts).cases[0].outcome.fails() {
            false_alarms += 1;
        }
        let drift = 1.0 + drift_sd * normal(&mut rng);
        if gate_history(&run_at(1.2 * drift, &mut rng), &hist, "h", &opts).cases[0].outcome.fails() {
            caught += 1;
        }
    }
    eprintln!("SIM drift {drift_sd}: {false_alarms} false alarms, {caught} caught of {trials}");
    assert!(false_alarms * 20 <= trials, "{false_alarms} false alarms in {trials}");
    assert!(caught * 20 >= trials * 19, "{caught} of {trials} slowdowns caught");
}
