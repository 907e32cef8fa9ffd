use super::*;
use crate::sensor::Provenance;

fn repeat(seed: u64, energy: f64, valid: bool) -> Repeat {
    let by_domain: BTreeMap<String, Joules> = [("cpu".to_string(), Joules(energy))].into();
    Repeat {
        seed,
        valid,
        invalid_reason: (!valid).then(|| "accuracy 0.90 < target 0.95".to_string()),
        wall_s: Seconds(10.0),
        energy_j: EnergyBreakdown::from_domains(by_domain.clone()),
        dynamic_energy_j: EnergyBreakdown::from_domains(
            by_domain.iter().map(|(d, j)| (d.clone(), *j - Joules(20.0))).collect(),
        ),
        energy_scopes: BTreeMap::new(),
        avg_power_w: Joules(energy) / Seconds(10.0),
        units_processed: 60_000,
        quality: Some(0.96),
        energy_per_unit_j: Joules(energy) / 60_000.0,
        throughput_per_s: 6000.0,
        cpu_s: None,
        peak_rss_bytes: Some(Bytes(123_456_789)),
        achieved_flops_per_s: None,
        fraction_of_peak: None,
        meter_warnings: vec![],
        meter_busy_s: None,
        device_state: Default::default(),
        wall_meter: None,
        unresolved_energy: Vec::new(),
        passes: None,
        samples_to_target: Some(48_000),
        bytes_to_target: Some(Bytes(48_000 * 64)),
        unique_samples: Some(40_000),
        evaluations: Some(vec![Evaluation { samples: 48_000, quality: 0.96 }]),
        batch_size: None,
        bytes_per_unit: None,
        runner: None,
        runner_train: None,
    }
}

fn sample() -> RunResult {
    RunResult {
        schema: SCHEMA.to_string(),
        effbench_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: "2026-11-25T10:00:00Z".parse().unwrap(),
        command: vec!["effbench".into(), "run".into(), "mlp-digits-train".into()],
        workload: WorkloadInfo {
            id: "mlp-digits-train".into(),
            kind: WorkloadKind::Train,
            unit: "sample".into(),
            quality_metric: "accuracy".into(),
            quality_target: 0.95,
            higher_is_better: true,
            model: "mlp".into(),
            dataset: "digits".into(),
            flops_per_unit: Some(1.0e6),
        },
        recipe: RecipeInfo {
            name: "baseline".into(),
            sha256: "ab".repeat(32),
            path: Some("recipes/baseline.toml".into()),
            params: serde_json::json!({"lr": 0.01}),
        },
        backend: BackendInfo {
            kind: "cpu".into(),
            device: "cpu".into(),
            precision: "f32".into(),
            threads: 2,
            allocator: "mimalloc".into(),
            domain: Some("cpu".into()),
            division: None,
            runner_config_sha256: None,
        },
        system: SystemInfo {
            hostname: "box".into(),
            os: "Linux".into(),
            kernel: "6.8".into(),
            cpu_model: "AMD EPYC".into(),
            physical_cores: 1,
            logical_cores: 2,
            memory_bytes: 8 << 30,
            accelerators: vec![],
            compiled_features: vec![],
            allocator: "mimalloc".into(),
            threads: 2,
        },
        energy_sources: vec![SourceInfo {
            id: "estimate:cpu".into(),
            kind: "estimate".into(),
            domain: "cpu".into(),
            provenance: Provenance::Estimated,
            sample_hz: 10.0,
            update_period_s: 0.2,
            detail: serde_json::json!({"rated_power_w": 8.0}),
        }],
        idle_power_w: [("cpu".to_string(), Watts(2.0))].into(),
        repeats: vec![repeat(1, 100.0, true), repeat(2, 110.0, true), repeat(3, 500.0, false)],
        peak_flops_per_s: None,
        planted_slowdown: None,
        summary: BTreeMap::new(),
    }
}

#[test]
fn round_trip_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.json");
    let mut r = sample();
    r.summarise(7);
    r.write(&path).unwrap();
    let back = RunResult::load(&path).unwrap();
    assert_eq!(back, r);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with("}\n"));
    assert!(text.contains("\"schema\": \"effbench.result/2\""));
    assert!(text.contains("\"provenance\": \"estimated\""));
    assert!(text.contains("\"kind\": \"train\""));
    assert!(text.contains("\"created_at\": \"2026-11-25T10:00:00Z\""));
    // Inference-only fields are left out of a training result.
    assert!(!text.contains("batch_size"));
}

#[test]
fn summary_covers_valid_repeats_only() {
    let mut r = sample();
    r.summarise(7);
    let e = &r.summary["energy_j"];
    assert_eq!(e.n, 2);
    assert_eq!(e.median, 105.0);
    assert_eq!(r.summary["samples_to_target"].median, 48_000.0);
    assert!(!r.summary.contains_key("batch_size"));
}

#[test]
fn unknown_schema_is_rejected_before_field_checks() {
    let text = r#"{"schema": "effbench.result/3", "something_new": 1}"#;
    let err = RunResult::from_json(text, Path::new("future.json")).unwrap_err();
    assert!(matches!(err, ResultError::UnsupportedSchema { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("future.json"), "{msg}");
    assert!(msg.contains("effbench.result/3") && msg.contains("effbench.result/2, effbench.result/1"), "{msg}");

    let err = RunResult::from_json(r#"{"a": 1}"#, Path::new("x.json")).unwrap_err();
    assert!(matches!(err, ResultError::MissingSchema { .. }));
    let err = RunResult::from_json(r#"{"schema": 1}"#, Path::new("x.json")).unwrap_err();
    assert!(matches!(err, ResultError::UnsupportedSchema { found, .. } if found == "1"));
}

#[test]
fn malformed_json_names_file_line_and_column() {
    let text = "{\n  \"schema\": \"effbench.result/1\",\n  \"command\": [,]\n}\n";
    let err = RunResult::from_json(text, Path::new("bad.json")).unwrap_err();
    match &err {
        ResultError::Syntax { line, column, .. } => assert_eq!((*line, *column), (3, 15)),
        other => panic!("expected a syntax error, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("bad.json") && msg.contains("line 3"), "{msg}");
}

#[test]
fn wrong_types_are_invalid_with_a_position() {
    let mut v = serde_json::to_value(sample()).unwrap();
    v["repeats"][0]["wall_s"] = serde_json::json!("ten");
    let text = serde_json::to_string_pretty(&v).unwrap();
    let err = RunResult::from_json(&text, Path::new("r.json")).unwrap_err();
    match err {
        ResultError::Invalid { line, message, .. } => {
            assert!(line > 1);
            assert!(message.contains("invalid type"), "{message}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn missing_summary_and_optional_fields_are_accepted() {
    let mut v = serde_json::to_value(sample()).unwrap();
    let obj = v.as_object_mut().unwrap();
    obj.remove("summary");
    obj.remove("peak_flops_per_s");
    let rep = v["repeats"][0].as_object_mut().unwrap();
    for key in ["meter_warnings", "evaluations", "peak_rss_bytes", "samples_to_target"] {
        rep.remove(key);
    }
    let r = RunResult::from_json(&v.to_string(), Path::new("old.json")).unwrap();
    assert!(r.summary.is_empty());
    assert_eq!(r.repeats[0].samples_to_target, None);
    assert!(r.repeats[0].meter_warnings.is_empty());
}

#[test]
fn unreadable_file_names_the_path() {
    let err = RunResult::load(Path::new("/definitely/not/here.json")).unwrap_err();
    assert!(err.to_string().contains("/definitely/not/here.json"));
}

#[test]
fn result_paths_that_are_not_regular_files_are_refused_without_reading() {
    let dir = tempfile::tempdir().unwrap();
    let e = RunResult::load(dir.path()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("{} is a directory, not a regular file; give the path of a result .json file", dir.path().display())
    );
    // Reading /dev/zero would grow without end; a FIFO with no writer would block forever.
    let e = RunResult::load(Path::new("/dev/zero")).unwrap_err().to_string();
    assert!(e.starts_with("/dev/zero is a character device, not a regular file"), "{e}");
    let fifo = dir.path().join("pipe.json");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let e = RunResult::load(&fifo).unwrap_err().to_string();
    assert!(e.contains("pipe.json is a FIFO (named pipe), not a regular file"), "{e}");
}

#[test]
fn a_result_file_over_the_size_limit_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.json");
    // Sparse: the size is what the check sees; nothing is written or read.
    std::fs::File::create(&path).unwrap().set_len(209_000_000).unwrap();
    let e = RunResult::load(&path).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("{} is 209.0 MB, over effbench's 64 MiB limit for a result file; is it a result file?", path.display())
    );
}

#[test]
fn a_dangling_link_to_a_result_is_named_with_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("w.json");
    std::os::unix::fs::symlink(dir.path().join("gone.json"), &link).unwrap();
    let e = RunResult::load(&link).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{} is a symbolic link to {}, which does not exist; fix or remove the link",
            link.display(),
            dir.path().join("gone.json").display()
        )
    );
}
