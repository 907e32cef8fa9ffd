//! Scopes: classing domains, summing them per repeat, and choosing the scope two runs are
//! compared at. The fixtures are the K-NPU case: a GPU box metered by NVML (`gpu:0`) and RAPL
//! (`cpu`, `dram`) against an NPU box whose device energy is the runner's own telemetry.

use std::collections::BTreeMap;

use super::*;
use crate::result::{UnresolvedEnergy, SCHEMA};
use crate::sensor::Provenance;
use crate::verdict::tests::{run, source};

fn src(domain: &str, kind: &str, provenance: Provenance) -> SourceInfo {
    SourceInfo { id: format!("{kind}:{domain}"), kind: kind.into(), domain: domain.into(), ..source(provenance) }
}

/// A training run whose repeat `i` uses `xs[i]` joules on the device and a tenth of that on
/// each host domain, on `work` (the device domain), with `sources`.
fn boxed(work: &str, xs: &[f64], sources: Vec<SourceInfo>) -> RunResult {
    let mut r = run("w", xs, Provenance::Measured);
    r.backend.kind = if work == "cpu" { "cpu" } else { "external" }.into();
    r.backend.domain = Some(work.into());
    for (rep, &x) in r.repeats.iter_mut().zip(xs) {
        let mut by = BTreeMap::new();
        for s in &sources {
            let j = if s.domain == work { x } else { x / 10.0 };
            by.insert(s.domain.clone(), Joules(j));
        }
        rep.energy_j = crate::result::EnergyBreakdown::from_domains(by.clone());
        rep.dynamic_energy_j = crate::result::EnergyBreakdown::from_domains(by);
    }
    r.energy_sources = sources;
    r
}

fn gpu_box(xs: &[f64]) -> RunResult {
    let m = Provenance::Measured;
    boxed("gpu:0", xs, vec![src("gpu:0", "nvml", m), src("cpu", "rapl", m), src("dram", "rapl", m)])
}

fn npu_box(xs: &[f64], host: Provenance) -> RunResult {
    let kind = if host == Provenance::Estimated { "estimate" } else { "rapl" };
    let mut sources = vec![src("npu:0", "runner", Provenance::VendorReported), src("cpu", kind, host)];
    if host != Provenance::Estimated {
        sources.push(src("dram", "rapl", host));
    }
    boxed("npu:0", xs, sources)
}

const TEN: [f64; 6] = [100.0, 103.0, 97.0, 101.0, 99.0, 104.0];

#[test]
fn domains_are_classed_by_what_they_are_to_the_work() {
    assert_eq!(classify("cpu", Some("cpu")), DomainClass::Device);
    assert_eq!(classify("dram", Some("cpu")), DomainClass::Host);
    assert_eq!(classify("cpu", Some("gpu:0")), DomainClass::Host);
    assert_eq!(classify("gpu:1", Some("gpu:0")), DomainClass::Host);
    assert_eq!(classify("npu:0", Some("npu:0")), DomainClass::Device);
    assert_eq!(classify("system", Some("cpu")), DomainClass::Wall);
    assert_eq!(measured_scopes(&gpu_box(&TEN)), vec![Scope::Device, Scope::Node]);
    assert_eq!(scope_domains(&gpu_box(&TEN), Scope::Node), vec!["cpu", "dram", "gpu:0"]);
}

#[test]
fn files_of_schema_1_derive_the_work_domain_from_the_backend() {
    let mut r = run("w", &TEN, Provenance::Measured);
    r.schema = "effbench.result/1".into();
    assert_eq!(work_domain(&r).as_deref(), Some("cpu"));
    r.backend.kind = "cuda:1".into();
    assert_eq!(work_domain(&r).as_deref(), Some("gpu:1"));
    // An external run of 0.1 names its device's domain only through the runner's telemetry.
    r.backend.kind = "external".into();
    assert_eq!(work_domain(&r), None);
    assert!(measured_scopes(&r).is_empty());
    r.energy_sources.push(src("npu:0", "runner", Provenance::VendorReported));
    assert_eq!(work_domain(&r).as_deref(), Some("npu:0"));
}

#[test]
fn a_cpu_run_with_only_the_package_has_device_scope_and_no_node() {
    let r = run("w", &TEN, Provenance::Measured);
    assert_eq!(measured_scopes(&r), vec![Scope::Device]);
    let e = repeat_scope(&r, &r.repeats[1], Scope::Device).unwrap();
    assert_eq!((e.total_j, e.per_unit_j), (Some(Joules(103.0)), Some(Joules(0.103))));
    assert!(repeat_scope(&r, &r.repeats[1], Scope::Node).is_none());
}

#[test]
fn node_sums_device_and_host_and_an_unresolved_domain_unresolves_its_scopes_only() {
    let mut g = gpu_box(&TEN);
    let e = repeat_scope(&g, &g.repeats[0], Scope::Node).unwrap();
    assert!((e.total_j.unwrap().0 - 120.0).abs() < 1e-9, "{e:?}");
    g.repeats[0].unresolved_energy.push(UnresolvedEnergy { domain: "dram".into(), reason: "zone unreadable".into() });
    g.repeats[0].energy_j.by_domain.remove("dram");
    let node = repeat_scope(&g, &g.repeats[0], Scope::Node).unwrap();
    assert_eq!(node.total_j, None);
    assert!(node.unresolved.as_deref().unwrap().contains("dram energy is unresolved: zone unreadable"), "{node:?}");
    assert_eq!(repeat_scope(&g, &g.repeats[0], Scope::Device).unwrap().total_j, Some(Joules(100.0)));
    // A domain with no figure at all (and no reason) is unresolved too, never a zero.
    g.repeats[1].energy_j.by_domain.remove("cpu");
    let node = repeat_scope(&g, &g.repeats[1], Scope::Node).unwrap();
    assert!(node.unresolved.as_deref().unwrap().contains("cpu has no energy figure"), "{node:?}");
}

#[test]
fn gpu_against_npu_at_device_scope_is_a_vendor_reported_verdict_with_a_warning() {
    let p = choose(&npu_box(&TEN, Provenance::Measured), &gpu_box(&TEN), Some(Scope::Device)).unwrap();
    assert_eq!(p.scope, Scope::Device);
    assert_eq!(p.label, "vendor-reported");
    assert_eq!(
        (p.candidate_domains.as_slice(), p.baseline_domains.as_slice()),
        (&["npu:0".to_string()][..], &["gpu:0".to_string()][..])
    );
    assert_eq!(p.warnings.len(), 1);
    assert!(
        p.warnings[0].contains("candidate's device energy includes vendor-reported figures (npu:0"),
        "{:?}",
        p.warnings
    );
    // By default: the widest both measured, node, also vendor-reported.
    let p = choose(&npu_box(&TEN, Provenance::Measured), &gpu_box(&TEN), None).unwrap();
    assert_eq!((p.scope, p.label), (Scope::Node, "vendor-reported"));
    assert_eq!(p.candidate_domains, vec!["cpu", "dram", "npu:0"]);
}

#[test]
fn an_estimated_host_makes_node_incomparable_and_names_the_scope_that_works() {
    let e = choose(&npu_box(&TEN, Provenance::Estimated), &gpu_box(&TEN), None).unwrap_err();
    assert_eq!(e.scope, Some(Scope::Node));
    assert!(
        e.reason.contains("node energy is estimated on the candidate and measured on the baseline"),
        "{}",
        e.reason
    );
    assert!(e.reason.contains("device scope can be compared: pass --scope device"), "{}", e.reason);
    assert!(choose(&npu_box(&TEN, Provenance::Estimated), &gpu_box(&TEN), Some(Scope::Device)).is_ok());
}

#[test]
fn a_scope_a_side_did_not_measure_is_refused_naming_what_it_measured() {
    let e = choose(&gpu_box(&TEN), &gpu_box(&TEN), Some(Scope::Wall)).unwrap_err();
    assert_eq!(e.scope, Some(Scope::Wall));
    assert!(e.reason.contains("the candidate did not measure wall scope"), "{}", e.reason);
    assert!(e.reason.contains("device: gpu:0; node: cpu+dram+gpu:0"), "{}", e.reason);
    let mut blind = gpu_box(&TEN);
    blind.energy_sources.retain(|s| s.domain == "dram");
    let e = choose(&blind, &gpu_box(&TEN), None).unwrap_err();
    assert_eq!(e.scope, None);
    assert!(e.reason.contains("no scope in common") && e.reason.contains("none; domains dram"), "{}", e.reason);
}

#[test]
fn an_unresolved_repeat_makes_its_scope_incomparable() {
    let mut g = gpu_box(&TEN);
    g.repeats[3].unresolved_energy.push(UnresolvedEnergy { domain: "gpu:0".into(), reason: "NVML read failed".into() });
    let e = choose(&g, &gpu_box(&TEN), Some(Scope::Device)).unwrap_err();
    assert!(
        e.reason.starts_with("candidate: repeat 4 (seed 3): gpu:0 energy is unresolved: NVML read failed"),
        "{}",
        e.reason
    );
}

#[test]
fn recorded_scopes_are_checked_against_the_domains() {
    let mut g = gpu_box(&TEN);
    let honest = repeat_scopes(&g, &g.repeats[0]);
    g.repeats[0].energy_scopes = honest;
    assert_eq!(recorded_disagreement(&g, &g.repeats[0]), None);
    g.repeats[0].energy_scopes.get_mut(&Scope::Device).unwrap().total_j = Some(Joules(50.0));
    let why = recorded_disagreement(&g, &g.repeats[0]).unwrap();
    assert!(
        why.contains("device energy is recorded as 50.000000 J from [gpu:0]") && why.contains("give 100.000000 J"),
        "{why}"
    );
    assert_eq!(SCHEMA, "effbench.result/2");
}

#[test]
fn scopes_serialise_as_lowercase_keys_and_round_trip() {
    let g = gpu_box(&TEN);
    let s = repeat_scopes(&g, &g.repeats[0]);
    let text = serde_json::to_string(&s).unwrap();
    assert!(text.starts_with("{\"device\":{\"domains\":[\"gpu:0\"],\"total_j\":100.0"), "{text}");
    let back: BTreeMap<Scope, ScopeEnergy> = serde_json::from_str(&text).unwrap();
    assert_eq!(back, s);
    assert_eq!("NODE".parse::<Scope>(), Ok(Scope::Node));
    assert!("rack".parse::<Scope>().unwrap_err().contains("device, node or wall"));
}
