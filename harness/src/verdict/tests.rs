use std::collections::BTreeMap;

use super::*;
use crate::result::{BackendInfo, EnergyBreakdown, RecipeInfo, WorkloadInfo, SCHEMA};
use crate::sensor::{Provenance, SourceInfo};
use crate::stats::SplitMix64;
use crate::system::SystemInfo;
use crate::units::{Bytes, Joules, Seconds, Watts};

/// A valid training repeat using `x` joules, `x` samples (×50), bytes and unique samples, and
/// `x / 10` seconds: every metric scales with `x`.
pub(crate) fn repeat(seed: u64, x: f64) -> Repeat {
    let by_domain: BTreeMap<String, Joules> = [("cpu".to_string(), Joules(x))].into();
    Repeat {
        seed,
        valid: true,
        invalid_reason: None,
        wall_s: Seconds(x / 10.0),
        energy_j: EnergyBreakdown::from_domains(by_domain.clone()),
        dynamic_energy_j: EnergyBreakdown::from_domains(by_domain),
        energy_scopes: BTreeMap::new(),
        avg_power_w: Watts(10.0),
        units_processed: 1000,
        quality: Some(0.96),
        energy_per_unit_j: Joules(x / 1000.0),
        throughput_per_s: 10_000.0 / x,
        cpu_s: Some(Seconds(x / 5.0)),
        peak_rss_bytes: None,
        achieved_flops_per_s: None,
        fraction_of_peak: None,
        meter_warnings: vec![],
        meter_busy_s: None,
        device_state: Default::default(),
        wall_meter: None,
        unresolved_energy: Vec::new(),
        passes: None,
        samples_to_target: Some((x * 50.0).round() as u64),
        bytes_to_target: Some(Bytes((x * 3200.0).round() as u64)),
        unique_samples: Some((x * 50.0).round() as u64),
        // One evaluation, where the target was met (validity.rs recomputes this).
        evaluations: Some(vec![crate::result::Evaluation { samples: (x * 50.0).round() as u64, quality: 0.96 }]),
        batch_size: None,
        bytes_per_unit: None,
        runner: None,
        runner_train: None,
    }
}

/// Makes repeat `i` of `run` miss its target by its numbers (quality 0.10, or a loss of 10 for
/// a lower-is-better metric), as a real failed repeat does: validity is recomputed from the
/// numbers, so flipping `valid` alone would be a contradiction.
pub(crate) fn miss_target(run: &mut RunResult, i: usize) {
    let q = if run.workload.higher_is_better { 0.10 } else { 10.0 };
    let r = &mut run.repeats[i];
    r.valid = false;
    r.invalid_reason = Some("quality target not reached".into());
    r.quality = Some(q);
    if let Some(e) = r.evaluations.as_mut().and_then(|v| v.last_mut()) {
        e.quality = q;
    }
}

pub(crate) fn source(provenance: Provenance) -> SourceInfo {
    SourceInfo {
        id: "src:cpu".into(),
        kind: if provenance == Provenance::Estimated { "estimate" } else { "rapl" }.into(),
        domain: "cpu".into(),
        provenance,
        sample_hz: 10.0,
        update_period_s: 0.2,
        detail: serde_json::Value::Null,
    }
}

/// The registered training workload a fixture id stands for (validity is recomputed against
/// the registered target and cap, so fixtures must be real workloads); other ids stay unknown.
fn workload_id(id: &str) -> &str {
    match id {
        "w" => "fmnist-mlp-train",
        "x" => "digits-mlp-train",
        "y" => "fmnist-cnn-train",
        "z" => "ae-machine-train",
        "q" => "charlm-austen-train",
        other => other,
    }
}

/// A training run of workload `id` (see [`workload_id`]) whose repeats use the given amounts
/// (see [`repeat`]).
pub(crate) fn run(id: &str, xs: &[f64], provenance: Provenance) -> RunResult {
    let id = workload_id(id);
    let (target, higher) =
        effbench_models::WorkloadSpec::get(id).map(|s| (s.quality_target, s.higher_is_better)).unwrap_or((0.95, true));
    RunResult {
        schema: SCHEMA.to_string(),
        effbench_version: "test".into(),
        created_at: "2026-11-25T10:00:00Z".parse().unwrap(),
        command: vec![],
        workload: WorkloadInfo {
            id: id.into(),
            kind: WorkloadKind::Train,
            unit: "sample".into(),
            quality_metric: "accuracy".into(),
            quality_target: target,
            higher_is_better: higher,
            model: "mlp".into(),
            dataset: "digits".into(),
            flops_per_unit: None,
        },
        recipe: RecipeInfo { name: "r".into(), sha256: "00".repeat(32), path: None, params: serde_json::Value::Null },
        backend: BackendInfo {
            kind: "cpu".into(),
            device: "cpu".into(),
            precision: "f32".into(),
            threads: 1,
            allocator: "mimalloc".into(),
            domain: None,
            division: None,
            runner_config_sha256: None,
        },
        system: SystemInfo {
            hostname: "box".into(),
            os: "Linux".into(),
            kernel: "6.8".into(),
            cpu_model: "cpu".into(),
            physical_cores: 1,
            logical_cores: 2,
            memory_bytes: 8 << 30,
            accelerators: vec![],
            compiled_features: vec![],
            allocator: "mimalloc".into(),
            threads: 1,
        },
        energy_sources: vec![source(provenance)],
        idle_power_w: BTreeMap::new(),
        repeats: xs.iter().enumerate().map(|(i, &x)| repeat(i as u64, x)).collect(),
        peak_flops_per_s: None,
        planted_slowdown: None,
        summary: BTreeMap::new(),
    }
}

/// Ten baseline amounts around 1000 with ~3% noise.
const BASE: [f64; 10] = [1000.0, 1030.0, 970.0, 1010.0, 990.0, 1045.0, 960.0, 1020.0, 985.0, 1005.0];
/// Multipliers giving the candidate ~4% noise of its own.
const NOISE: [f64; 10] = [1.02, 0.97, 1.05, 0.99, 0.96, 1.01, 1.04, 0.98, 1.0, 0.95];

fn scaled(factor: f64, noise: &[f64]) -> Vec<f64> {
    BASE.iter().zip(noise).map(|(b, n)| b * factor * n).collect()
}

fn all_resources() -> CompareOptions {
    CompareOptions { resources: vec![Resource::Energy, Resource::Data, Resource::Time], ..Default::default() }
}

#[test]
fn a_third_of_the_baseline_is_met() {
    let base = run("w", &BASE, Provenance::Measured);
    let cand = run("w", &scaled(0.3, &NOISE), Provenance::Measured);
    let c = compare(&cand, &base, &all_resources());
    assert_eq!(c.overall, Verdict::Met, "{c:#?}");
    assert_eq!(c.energy_label, "measured");
    assert_eq!(c.rows.len(), 5, "energy_j; samples, bytes and unique samples; wall_s");
    for row in &c.rows {
        assert_eq!(row.verdict, Verdict::Met, "{row:?}");
        assert!((row.reduction - 0.7).abs() < 0.02, "{row:?}");
        assert!(row.ci95[0] <= row.reduction && row.reduction <= row.ci95[1], "{row:?}");
        assert!(row.ci95[1] - row.ci95[0] < 0.1, "{row:?}");
        assert_eq!((row.n_baseline, row.n_candidate), (10, 10));
    }
    assert_eq!(c.overall.exit_code(), crate::error::Exit::Ok);
}

#[test]
fn nine_tenths_of_the_baseline_is_not_met() {
    let base = run("w", &BASE, Provenance::Measured);
    let cand = run("w", &scaled(0.9, &NOISE), Provenance::Measured);
    let c = compare(&cand, &base, &CompareOptions::default());
    assert_eq!(c.overall, Verdict::NotMet, "{c:#?}");
    assert_eq!(c.resources.iter().map(|(r, _)| *r).collect::<Vec<_>>(), [Resource::Energy, Resource::Data]);
    assert!(c.resources.iter().all(|(_, v)| *v == Verdict::NotMet));
    assert_eq!(c.overall.exit_code(), crate::error::Exit::NotMet);
}

#[test]
fn half_the_baseline_with_noise_is_inconclusive_with_a_repeat_count() {
    let base = run("w", &BASE, Provenance::Measured);
    // Noisy candidate whose mean is ~0.52 of the baseline's: the interval straddles 0.5.
    let noisy = [1.3, 0.7, 1.2, 0.8, 1.25, 0.75, 1.1, 0.9, 1.15, 0.85];
    let cand = run("w", &scaled(0.48, &noisy), Provenance::Measured);
    let opts = CompareOptions { resources: vec![Resource::Energy], ..Default::default() };
    let c = compare(&cand, &base, &opts);
    let row = &c.rows[0];
    assert!(row.ci95[0] < 0.5 && 0.5 <= row.ci95[1], "{row:?}");
    match &c.overall {
        Verdict::Inconclusive { repeats_needed: Some(n) } => assert!((11..=MAX_REPEATS_NEEDED).contains(n), "{n}"),
        other => panic!("expected inconclusive with a count, got {other:?}"),
    }
    assert_eq!(c.overall.exit_code(), crate::error::Exit::Inconclusive);
}

#[test]
fn repeats_needed_follows_one_over_root_n() {
    // Estimate 0.75, lower end 0.25 (distance 0.5, gap to the target 0.25): four times the repeats.
    assert_eq!(judge(0.75, [0.25, 0.875], 0.5, 10), Verdict::Inconclusive { repeats_needed: Some(40) });
    // Below the target the upper end matters: distance 0.25, gap 0.125.
    assert_eq!(judge(0.375, [0.0, 0.625], 0.5, 5), Verdict::Inconclusive { repeats_needed: Some(20) });
    // Never fewer than one more than now.
    assert_eq!(judge(0.75, [0.5 - 1e-9, 0.875], 0.5, 10), Verdict::Inconclusive { repeats_needed: Some(11) });
    assert_eq!(judge(0.5, [0.4, 0.6], 0.5, 10), Verdict::Inconclusive { repeats_needed: None });
    assert_eq!(judge(0.501, [0.0, 1.0], 0.5, 10), Verdict::Inconclusive { repeats_needed: Some(MAX_REPEATS_NEEDED) });
    assert_eq!(judge(0.6, [0.5, 0.7], 0.5, 10), Verdict::Met);
    assert_eq!(judge(0.4, [0.3, 0.4999], 0.5, 10), Verdict::NotMet);
}

#[test]
fn an_invalid_candidate_repeat_makes_everything_invalid() {
    let base = run("w", &BASE, Provenance::Measured);
    let mut cand = run("w", &scaled(0.3, &NOISE), Provenance::Measured);
    miss_target(&mut cand, 4);
    let c = compare(&cand, &base, &CompareOptions::default());
    match &c.overall {
        Verdict::Invalid { reason } => {
            assert!(reason.contains("repeat 5") && reason.contains("quality 0.1 misses the target 0.85"), "{reason}")
        }
        other => panic!("expected invalid, got {other:?}"),
    }
    assert!(c.resources.iter().all(|(_, v)| matches!(v, Verdict::Invalid { .. })));
    assert_eq!(c.overall.exit_code(), crate::error::Exit::Invalid);
}

#[test]
fn a_valid_flag_is_not_trusted_by_compare() {
    // Issue 10: repeats saying "valid": true with quality 0.10 were judged met.
    let base = run("w", &BASE, Provenance::Measured);
    let mut cand = run("w", &scaled(0.3, &NOISE), Provenance::Measured);
    for i in 0..cand.repeats.len() {
        miss_target(&mut cand, i);
        cand.repeats[i].valid = true;
        cand.repeats[i].invalid_reason = None;
    }
    let c = compare(&cand, &base, &CompareOptions::default());
    assert!(matches!(&c.overall, Verdict::Invalid { reason } if reason.contains("misses the target")), "{c:#?}");
}

#[test]
fn three_repeats_a_side_cannot_decide_even_a_large_cut() {
    // Issue 11: with 3 or fewer repeats the interval is unbounded; never a verdict.
    let base = run("w", &BASE[..3], Provenance::Measured);
    let cand = run("w", &scaled(0.36, &NOISE)[..3], Provenance::Measured);
    let c = compare(&cand, &base, &CompareOptions::default());
    for (_, v) in &c.resources {
        assert_eq!(*v, Verdict::Inconclusive { repeats_needed: Some(crate::validity::MIN_REPEATS) }, "{c:#?}");
    }
}

#[test]
fn invalid_baseline_repeats_are_left_out() {
    let mut base = run("w", &BASE, Provenance::Measured);
    miss_target(&mut base, 0);
    base.repeats[0].energy_j.total = Joules(1.0e9);
    let cand = run("w", &scaled(0.3, &NOISE), Provenance::Measured);
    let c = compare(&cand, &base, &CompareOptions::default());
    assert_eq!(c.overall, Verdict::Met, "{c:#?}");
    assert_eq!(c.rows[0].n_baseline, 9);
    assert!((c.rows[0].reduction - 0.7).abs() < 0.02);
}

#[test]
fn different_workloads_are_invalid() {
    let base = run("mlp-digits-train", &BASE, Provenance::Measured);
    let cand = run("cnn-digits-train", &scaled(0.3, &NOISE), Provenance::Measured);
    let c = compare(&cand, &base, &CompareOptions::default());
    match &c.overall {
        Verdict::Invalid { reason } => assert!(reason.contains("different workloads"), "{reason}"),
        other => panic!("expected invalid, got {other:?}"),
    }
    assert!(c.rows.is_empty());
}

#[test]
fn measured_against_estimated_energy_is_incomparable_but_data_is_judged() {
    let base = run("w", &BASE, Provenance::Estimated);
    let cand = run("w", &scaled(0.3, &NOISE), Provenance::Measured);
    let c = compare(&cand, &base, &CompareOptions::default());
    let energy = &c.resources.iter().find(|(r, _)| *r == Resource::Energy).unwrap().1;
    let data = &c.resources.iter().find(|(r, _)| *r == Resource::Data).unwrap().1;
    match energy {
        Verdict::Incomparable { reason } => assert!(reason.contains("estimated"), "{reason}"),
        other => panic!("expected incomparable energy, got {other:?}"),
    }
    assert_eq!(*data, Verdict::Met);
    assert!(matches!(c.overall, Verdict::Incomparable { .. }));
    assert_eq!(c.overall.exit_code(), crate::error::Exit::Invalid);
}

#[test]
fn energy_from_different_domains_is_incomparable() {
    let base = run("w", &BASE, Provenance::Measured);
    let mut cand = run("w", &scaled(0.3, &NOISE), Provenance::Measured);
    cand.energy_sources[0].domain = "gpu:0".into();
    let c = compare(&cand, &base, &CompareOptions::default());
    assert!(matches!(c.resources[0].1, Verdict::Incomparable { .. }), "{c:#?}");
}

#[test]
fn energy_of_windows_shorter_than_the_source_update_period_is_not_judged() {
    // Amounts of about 1 J, so a 0.04 s window stays a power a CPU can draw (validity.rs).
    let milli = |xs: &[f64]| xs.iter().map(|x| x / 1000.0).collect::<Vec<_>>();
    let base = run("w", &milli(&BASE), Provenance::Estimated);
    let cand = run("w", &milli(&scaled(0.3, &NOISE)), Provenance::Estimated);
    // Candidate windows of 0.04 s against the estimate's 0.2 s update period.
    let mut short = cand.clone();
    for r in &mut short.repeats {
        r.wall_s = Seconds(0.04);
    }
    let c = compare(&short, &base, &CompareOptions::default());
    match &c.resources[0].1 {
        Verdict::Incomparable { reason } => {
            assert!(reason.contains("candidate") && reason.contains("update period"), "{reason}")
        }
        other => panic!("expected unresolved energy, got {other:?}"),
    }
    // Windows of 0.15 s (less than one update, more than half) are judged.
    let mut longer = short.clone();
    for r in &mut longer.repeats {
        r.wall_s = Seconds(0.15);
    }
    assert_eq!(compare(&longer, &base, &CompareOptions::default()).resources[0].1, Verdict::Met);
    // The same short windows from a source that updates faster are judged.
    let mut fast = short.clone();
    let mut fast_base = base.clone();
    fast.energy_sources[0].update_period_s = 0.001;
    fast_base.energy_sources[0].update_period_s = 0.001;
    assert_eq!(compare(&fast, &fast_base, &CompareOptions::default()).resources[0].1, Verdict::Met);
}

#[test]
fn a_repeat_with_unresolved_energy_is_never_judged_as_a_small_number() {
    // Issue 9: a wall-meter window that lost samples leaves its domain out of energy_j (so
    // the total is small) and says so; the verdict must not call that a 70% cut.
    let wall = |mut r: RunResult| {
        r.energy_sources.push(SourceInfo {
            id: "ptd:x".into(),
            kind: "ptd".into(),
            domain: "system".into(),
            ..source(Provenance::Measured)
        });
        for rep in &mut r.repeats {
            let j = rep.energy_j.total;
            for e in [&mut rep.energy_j, &mut rep.dynamic_energy_j] {
                e.by_domain.insert("system".into(), j * 2.0);
                e.total = j * 2.0;
            }
        }
        r
    };
    let base = wall(run("w", &BASE, Provenance::Measured));
    let mut cand = wall(run("w", &scaled(0.3, &NOISE), Provenance::Measured));
    cand.repeats[2]
        .unresolved_energy
        .push(crate::result::UnresolvedEnergy { domain: "system".into(), reason: "samples were lost".into() });
    let r2 = &mut cand.repeats[2];
    for e in [&mut r2.energy_j, &mut r2.dynamic_energy_j] {
        e.by_domain.remove("system");
        e.total = e.by_domain.values().sum();
    }
    match &compare(&cand, &base, &CompareOptions::default()).resources[0].1 {
        Verdict::Incomparable { reason } => {
            assert!(
                reason.contains("at wall scope: candidate: repeat 3 (seed 2): system energy is unresolved"),
                "{reason}"
            );
            assert!(reason.contains("pass --scope device"), "{reason}");
        }
        other => panic!("expected incomparable energy, got {other:?}"),
    }
    // The same file on the baseline side is refused too.
    assert!(matches!(compare(&base, &cand, &CompareOptions::default()).resources[0].1, Verdict::Incomparable { .. }));
    // Its device energy is whole, and can be judged when asked for.
    let device = CompareOptions { scope: Some(crate::scope::Scope::Device), ..Default::default() };
    assert_eq!(compare(&cand, &base, &device).resources[0].1, Verdict::Met);
    // An unresolved device domain leaves nothing to judge at device scope either.
    cand.repeats[2].unresolved_energy[0].domain = "cpu".into();
    assert!(matches!(compare(&cand, &base, &device).resources[0].1, Verdict::Incomparable { .. }));
}

#[test]
fn both_sides_estimated_with_one_model_is_labelled_estimated() {
    let base = run("w", &BASE, Provenance::Estimated);
    let cand = run("w", &scaled(0.3, &NOISE), Provenance::Estimated);
    let c = compare(&cand, &base, &CompareOptions::default());
    assert_eq!(c.overall, Verdict::Met);
    assert_eq!(c.energy_label, "estimated");
    let mut other_model = cand.clone();
    other_model.energy_sources[0].detail = serde_json::json!({"model": "tdp-v2"});
    let c = compare(&other_model, &base, &CompareOptions::default());
    assert!(matches!(c.resources[0].1, Verdict::Incomparable { .. }), "{c:#?}");
}

#[test]
fn a_against_a_is_never_met() {
    let mut rng = SplitMix64::new(11);
    for trial in 0..50u64 {
        let xs: Vec<f64> = (0..5 + trial as usize % 6).map(|_| 900.0 + (rng.next_u64() % 200) as f64).collect();
        let r = run("w", &xs, Provenance::Measured);
        for target in [0.5, 0.1, 0.0] {
            let opts = CompareOptions { target, seed: trial, resamples: 2_000, ..all_resources() };
            let c = compare(&r, &r, &opts);
            assert_ne!(c.overall, Verdict::Met, "trial {trial}, target {target}: {c:#?}");
            assert!(c.rows.iter().all(|row| row.reduction == 0.0 && row.verdict != Verdict::Met));
        }
    }
}

#[test]
fn same_seed_same_comparison() {
    let base = run("w", &BASE, Provenance::Measured);
    let cand = run("w", &scaled(0.5, &NOISE), Provenance::Measured);
    let opts = CompareOptions { seed: 3, ..Default::default() };
    assert_eq!(compare(&cand, &base, &opts), compare(&cand, &base, &opts));
    let other = compare(&cand, &base, &CompareOptions { seed: 4, ..Default::default() });
    assert_ne!(compare(&cand, &base, &opts).rows[0].ci95, other.rows[0].ci95);
}

#[test]
fn inference_metrics_and_missing_data() {
    let mut base = run("w", &BASE, Provenance::Measured);
    let mut cand = run("w", &scaled(0.3, &NOISE), Provenance::Measured);
    for r in [&mut base, &mut cand] {
        r.workload.kind = WorkloadKind::Infer;
    }
    let c = compare(&cand, &base, &all_resources());
    let names: Vec<&str> = c.rows.iter().map(|r| r.metric.as_str()).collect();
    assert_eq!(names, ["energy_per_unit_j", "bytes_per_unit", "time_per_unit_s"]);
    assert_eq!(c.resources[0].1, Verdict::Met);
    assert!(matches!(c.resources[1].1, Verdict::Invalid { .. }), "bytes_per_unit missing: {c:#?}");
    assert_eq!(c.resources[2].1, Verdict::Met);
    assert!((c.rows[2].reduction - 0.7).abs() < 0.02);
}

#[test]
fn verdicts_combine_and_serialise() {
    let inc = |n| Verdict::Inconclusive { repeats_needed: Some(n) };
    assert_eq!(Verdict::all(&[Verdict::Met, Verdict::Met]), Verdict::Met);
    assert_eq!(Verdict::all(&[Verdict::Met, inc(20), inc(40)]), inc(40));
    assert_eq!(Verdict::all(&[inc(20), Verdict::NotMet]), Verdict::NotMet);
    assert!(matches!(Verdict::all(&[]), Verdict::Invalid { .. }));
    let json = serde_json::to_value(inc(12)).unwrap();
    assert_eq!(json, serde_json::json!({"verdict": "inconclusive", "repeats_needed": 12}));
    assert_eq!(serde_json::to_value(Verdict::NotMet).unwrap(), serde_json::json!({"verdict": "not-met"}));
    assert_eq!(serde_json::to_value(Resource::Energy).unwrap(), serde_json::json!("energy"));
    assert_eq!("Time".parse::<Resource>(), Ok(Resource::Time));
    assert!("joules".parse::<Resource>().is_err());
    assert_eq!(Verdict::NotMet.to_string(), "not met");
}

pub(crate) use crate::stats::reduction::tests::normal;

#[test]
fn planted_slowdowns_and_other_data_sets_are_warned_about() {
    let base = run("w", &BASE, Provenance::Measured);
    assert!(compare(&base, &base, &CompareOptions::default()).warnings.is_empty());
    let mut cand = run("w", &BASE, Provenance::Measured);
    cand.planted_slowdown = Some(0.2);
    cand.workload.dataset = "fashion-mnist (60k)".into();
    let w = compare(&cand, &base, &CompareOptions::default()).warnings;
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].contains("candidate is a TESTING result with a planted slowdown of 20%"), "{w:?}");
    assert!(w[1].contains("data sets differ"), "{w:?}");
}

#[test]
fn divisions_that_differ_are_a_warning() {
    let base = run("digits-mlp-train", &[1.0, 1.0, 1.0], Provenance::Measured);
    let mut cand = base.clone();
    assert!(!warnings(&cand, &base).iter().any(|w| w.contains("divisions")));
    cand.backend.division = Some("open".into());
    let w = warnings(&cand, &base);
    assert!(w.iter().any(|w| w.starts_with("divisions differ: candidate open, baseline closed")), "{w:?}");
}
