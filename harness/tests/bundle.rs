//! `effbench keygen`, `submit` and `check` through the real binary: a bundle of real runs
//! checks valid (and still does after a move), and every kind of tampering fails with exit 4
//! naming what was touched. Each test states the finding it expects in the checker's text.

mod util;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use effbench::bundle::manifest::rehash;
use util::{both, copy_dir, edit_json, run, tempdir};

const TRAIN: &str = "digits-mlp-train";
const INFER: &str = "fmnist-mlp-infer-b250";

/// Two real result directories (a training and an inference workload, 5 repeats, fake
/// constant power so the windows resolve), made once per test binary and only copied after.
fn fixture() -> &'static (PathBuf, PathBuf) {
    static F: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    F.get_or_init(|| {
        // Under target/tmp: kept for the test binary's whole life (a static is never dropped).
        let root = tempfile::Builder::new()
            .prefix("effbench-bundle-fixture-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep();
        let train = root.join("train");
        let infer = root.join("infer");
        let o = util::quick_run(&train, &["--workload", TRAIN, "--repeat", "5", "--fake-power", "40"]);
        assert!(o.status.success(), "{}", both(&o));
        let o = util::quick_run(
            &infer,
            &["--workload", INFER, "--repeat", "5", "--fake-power", "40", "--min-window-secs", "0.1"],
        );
        assert!(o.status.success(), "{}", both(&o));
        (train, infer)
    })
}

/// A fresh copy of both result dirs, submitted (with `extra` flags) into `dir/bundle`.
fn bundle(dir: &Path, extra: &[&str]) -> PathBuf {
    let (train, infer) = fixture();
    let (t, i) = (dir.join("train"), dir.join("infer"));
    copy_dir(train, &t);
    copy_dir(infer, &i);
    submit(dir, &[&t, &i], extra)
}

fn submit(dir: &Path, results: &[&Path], extra: &[&str]) -> PathBuf {
    let out = dir.join("bundle");
    let mut args = vec!["submit"];
    args.extend(results.iter().map(|p| p.to_str().unwrap()));
    args.extend(["--out", out.to_str().unwrap(), "--submitter", "acme"]);
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(o.status.success(), "{}", both(&o));
    out
}

/// `acme/<system>`: the system directory is this machine's class (`cpu-amd-epyc-2t` here).
fn run_dir(bundle: &Path) -> String {
    let sys = std::fs::read_dir(bundle.join("acme")).unwrap().next().unwrap().unwrap().file_name();
    format!("acme/{}", sys.to_string_lossy())
}

fn check(bundle: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["check", bundle.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}

fn result_rel(b: &Path, w: &str) -> String {
    format!("{}/{w}/run_1/{w}.json", run_dir(b))
}

fn trace_rel(b: &Path, w: &str) -> String {
    format!("{}/{w}/run_1/{w}.trace.csv", run_dir(b))
}

/// Asserts exit `code` and that one output line holds every one of `parts`.
fn assert_finding(o: &Output, code: i32, parts: &[&str]) {
    let out = both(o);
    assert_eq!(o.status.code(), Some(code), "{out}");
    assert!(out.lines().any(|l| parts.iter().all(|p| l.contains(p))), "no line with {parts:?} in:\n{out}");
}

#[test]
fn submit_then_check_passes_and_a_moved_bundle_still_checks() {
    let d = tempdir("bundle-ok");
    let key = d.path().join("k");
    assert!(run(&["keygen", "--out", key.to_str().unwrap()]).status.success());
    let b = bundle(d.path(), &["--sign", key.to_str().unwrap(), "--archive"]);
    let pubkey = format!("{}.pub", key.display());
    let o = check(&b, &["--pubkey", &pubkey]);
    assert_finding(&o, 0, &["bundle valid"]);
    // Both results' energy was re-integrated from their traces, and the recipe re-hashed.
    assert_finding(&o, 0, &["pass", "energy", &result_rel(&b, TRAIN), "re-integrated"]);
    assert_finding(&o, 0, &["pass", "energy", &result_rel(&b, INFER), "re-integrated"]);
    assert_finding(&o, 0, &["pass", "recipe", "recipe.toml", "SHA-256 matches"]);
    // Moved to another directory, the bundle (no absolute paths in it) still checks; so does
    // its archive, copied elsewhere.
    let moved = tempdir("bundle-moved");
    let to = moved.path().join("elsewhere");
    std::fs::rename(&b, &to).unwrap();
    assert_finding(&check(&to, &["--pubkey", &pubkey]), 0, &["bundle valid"]);
    let a = moved.path().join("copy.tar.gz");
    std::fs::copy(d.path().join("bundle.tar.gz"), &a).unwrap();
    assert_finding(&check(&a, &["--pubkey", &pubkey]), 0, &["bundle valid"]);
}

#[test]
fn a_number_edited_in_a_result_fails_its_hash() {
    let d = tempdir("bundle-number");
    let b = bundle(d.path(), &[]);
    let rel = result_rel(&b, TRAIN);
    edit_json(&b.join(&rel), |v| v["repeats"][0]["units_processed"] = 1.into());
    assert_finding(&check(&b, &[]), 4, &["fail", "hash", &rel, "the file was changed"]);
}

#[test]
fn an_edited_trace_row_fails_its_hash() {
    let d = tempdir("bundle-trace");
    let b = bundle(d.path(), &[]);
    let rel = trace_rel(&b, TRAIN);
    let text = std::fs::read_to_string(b.join(&rel)).unwrap();
    std::fs::write(b.join(&rel), text.replacen("repeat-2,40.0000", "repeat-2,4.0000", 1)).unwrap();
    assert_finding(&check(&b, &[]), 4, &["fail", "hash", &rel]);
}

#[test]
fn a_trace_row_edited_and_rehashed_fails_the_energy_re_integration() {
    let d = tempdir("bundle-trace-rehash");
    let b = bundle(d.path(), &[]);
    let rel = trace_rel(&b, TRAIN);
    let text = std::fs::read_to_string(b.join(&rel)).unwrap();
    let edited: Vec<String> = text
        .lines()
        .map(|l| if l.contains(",repeat-2,") { l.replace(",repeat-2,40.0000", ",repeat-2,20.0000") } else { l.into() })
        .collect();
    std::fs::write(b.join(&rel), edited.join("\n") + "\n").unwrap();
    rehash(&b, &rel).unwrap();
    assert_finding(
        &check(&b, &[]),
        4,
        &["fail", "energy", &result_rel(&b, TRAIN), "repeat 3 (seed 2): cpu energy", "integrates to"],
    );
}

#[test]
fn a_removed_repeat_fails_even_with_the_manifest_rehashed() {
    let d = tempdir("bundle-removed");
    let b = bundle(d.path(), &[]);
    let rel = result_rel(&b, TRAIN);
    edit_json(&b.join(&rel), |v| {
        v["repeats"].as_array_mut().unwrap().pop();
    });
    rehash(&b, &rel).unwrap();
    let o = check(&b, &[]);
    assert_finding(&o, 4, &["fail", "repeats", &rel, "4 repeats"]);
    assert_finding(&o, 4, &["fail", "energy", "trace.csv", "segment \"repeat-4\" belongs to no repeat"]);
}

#[test]
fn an_energy_edit_covered_by_a_rehash_fails_the_energy_re_integration() {
    let d = tempdir("bundle-energy");
    let b = bundle(d.path(), &[]);
    let rel = result_rel(&b, INFER);
    // Halve repeat 2's energy everywhere it shows, consistently, and cover it with a rehash.
    edit_json(&b.join(&rel), |v| {
        let r = &mut v["repeats"][1];
        for k in ["energy_j", "dynamic_energy_j"] {
            let half = r[k]["total"].as_f64().unwrap() / 2.0;
            r[k]["total"] = half.into();
            r[k]["by_domain"]["cpu"] = half.into();
        }
        r["avg_power_w"] = (r["avg_power_w"].as_f64().unwrap() / 2.0).into();
        r["energy_per_unit_j"] = (r["energy_per_unit_j"].as_f64().unwrap() / 2.0).into();
    });
    rehash(&b, &rel).unwrap();
    let o = check(&b, &[]);
    assert_finding(&o, 4, &["fail", "energy", &rel, "repeat 2 (seed 1): cpu energy", "its trace integrates to"]);
}

#[test]
fn a_scope_total_edited_alone_fails_its_re_derivation_from_the_domains() {
    let d = tempdir("bundle-scope");
    let b = bundle(d.path(), &[]);
    let rel = result_rel(&b, INFER);
    // A smaller device figure than the domains give: what a vendor would edit to claim less.
    edit_json(&b.join(&rel), |v| {
        let s = &mut v["repeats"][2]["energy_scopes"]["device"];
        s["total_j"] = (s["total_j"].as_f64().unwrap() / 2.0).into();
    });
    rehash(&b, &rel).unwrap();
    let o = check(&b, &[]);
    assert_finding(&o, 4, &["fail", "scopes", &rel, "repeat 3 (seed 2): its device energy is recorded as"]);
}

#[test]
fn a_valid_flag_that_contradicts_its_quality_fails() {
    let d = tempdir("bundle-flag");
    let b = bundle(d.path(), &[]);
    let rel = result_rel(&b, INFER);
    edit_json(&b.join(&rel), |v| v["repeats"][3]["quality"] = 0.10.into());
    rehash(&b, &rel).unwrap();
    assert_finding(
        &check(&b, &[]),
        4,
        &["fail", "validity", &rel, "repeat 4 (seed 3) says it is valid, but its quality 0.1 misses the target"],
    );
}

#[test]
fn a_swapped_model_fails_against_the_export_hashes() {
    let d = tempdir("bundle-model");
    let (_, infer) = fixture();
    let i = d.path().join("infer");
    copy_dir(infer, &i);
    // Play a runner run (the reference runner needs onnxruntime): submit then exports the model.
    edit_json(&i.join(format!("{INFER}.json")), |v| v["backend"]["kind"] = "external".into());
    let b = submit(d.path(), &[&i], &[]);
    assert_finding(&check(&b, &[]), 0, &["pass", "runner", "export", "match their hashes"]);
    let model = format!("{}/{INFER}/run_1/export/{INFER}/model.onnx", run_dir(&b));
    let inputs = format!("{}/{INFER}/run_1/export/{INFER}/inputs.bin", run_dir(&b));
    std::fs::copy(b.join(&inputs), b.join(&model)).unwrap();
    rehash(&b, &model).unwrap();
    assert_finding(&check(&b, &[]), 4, &["fail", "runner", &model, "not the model / reference effbench exported"]);
    // The export manifest edited to the swapped model's hash too: the checker's own export of
    // the workload still tells it apart.
    let export = format!("{}/{INFER}/run_1/export/{INFER}", run_dir(&b));
    let (sha, _) = effbench::bundle::fsafe::hash_file(&b, Path::new(&model)).unwrap();
    edit_json(&b.join(format!("{export}/manifest.json")), |v| v["model"]["sha256"] = sha.into());
    rehash(&b, &format!("{export}/manifest.json")).unwrap();
    let o = check(&b, &[]);
    assert_finding(&o, 4, &["fail", "runner", &export, "the bundle's model", "is not what this effbench exports"]);
    assert!(!both(&o).contains("not the model / reference effbench exported"), "{}", both(&o));
}

#[test]
fn a_signature_from_another_key_fails_and_so_does_an_unsigned_bundle_with_pubkey() {
    let d = tempdir("bundle-sig");
    let (a, other) = (d.path().join("a"), d.path().join("other"));
    for k in [&a, &other] {
        assert!(run(&["keygen", "--out", k.to_str().unwrap()]).status.success());
    }
    // keygen never overwrites, and the secret is private.
    let again = run(&["keygen", "--out", a.to_str().unwrap()]);
    assert_finding(&again, 2, &["already exists"]);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o600);
    let (_, infer) = fixture();
    let b = submit(d.path(), &[infer], &["--sign", a.to_str().unwrap()]);
    let mine = format!("{}.pub", a.display());
    let theirs = format!("{}.pub", other.display());
    assert_finding(&check(&b, &["--pubkey", &mine]), 0, &["pass", "signature", "verifies"]);
    assert_finding(&check(&b, &["--pubkey", &theirs]), 4, &["fail", "signature", "does not verify"]);
    std::fs::remove_file(b.join("manifest.json.sig")).unwrap();
    assert_finding(&check(&b, &["--pubkey", &mine]), 4, &["fail", "signature", "unsigned"]);
}

#[test]
fn a_dotdot_or_absolute_path_in_the_manifest_is_refused_unopened() {
    let d = tempdir("bundle-dotdot");
    let (_, infer) = fixture();
    let b = submit(d.path(), &[infer], &[]);
    std::fs::write(d.path().join("outside.txt"), "secret").unwrap();
    edit_json(&b.join("manifest.json"), |v| {
        let files = v["files"].as_array_mut().unwrap();
        for p in ["../outside.txt", "/etc/passwd"] {
            files.push(serde_json::json!({ "path": p, "sha256": "00", "bytes": 6 }));
        }
    });
    let o = check(&b, &[]);
    assert_finding(&o, 4, &["fail", "manifest", "../outside.txt", "climbs out of the bundle"]);
    assert_finding(&o, 4, &["fail", "manifest", "/etc/passwd", "absolute path"]);
}

#[test]
fn a_symbolic_link_out_of_the_bundle_is_refused() {
    let d = tempdir("bundle-link");
    let (_, infer) = fixture();
    let b = submit(d.path(), &[infer], &[]);
    // The trace replaced by a link to an identical copy outside: same bytes, still refused.
    let rel = trace_rel(&b, INFER);
    let outside = d.path().join("trace-outside.csv");
    std::fs::rename(b.join(&rel), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, b.join(&rel)).unwrap();
    let o = check(&b, &[]);
    assert_finding(&o, 4, &["fail", "files", &rel, "symbolic link"]);
    assert_finding(&o, 4, &["fail", "energy", &rel, "no trace whose hash matches"]);
}

/// A .tar.gz made from raw tar headers (so a header can lie about its size).
fn tar_gz(path: &Path, entries: &[(tar::Header, Vec<u8>)]) {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::best());
    for (h, data) in entries {
        gz.write_all(h.as_bytes()).unwrap();
        gz.write_all(data).unwrap();
        let pad = (512 - data.len() % 512) % 512;
        gz.write_all(&vec![0; pad]).unwrap();
    }
    gz.write_all(&[0; 1024]).unwrap();
    gz.finish().unwrap();
}

fn header(name: &str, size: u64, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_path(name).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(kind);
    h.set_cksum();
    h
}

#[test]
fn an_archive_bomb_and_an_archive_with_links_are_refused() {
    let d = tempdir("bundle-bomb");
    // A header declaring 2 GiB, 100-odd bytes on disk.
    let declared = d.path().join("declared.tar.gz");
    tar_gz(&declared, &[(header("b/huge.bin", 2 << 30, tar::EntryType::Regular), Vec::new())]);
    assert!(std::fs::metadata(&declared).unwrap().len() < 4096);
    assert_finding(
        &check(&declared, &[]),
        4,
        &["fail", "archive", "huge.bin", "declares 2147483648 bytes", "decompression bomb"],
    );
    // Entries that really expand past the (lowered) total limit: 8 MiB of zeros, ~8 KiB on disk.
    let expands = d.path().join("expands.tar.gz");
    let zeros = vec![0u8; 1 << 20];
    let entries: Vec<_> = (0..8)
        .map(|i| (header(&format!("b/z{i}.bin"), zeros.len() as u64, tar::EntryType::Regular), zeros.clone()))
        .collect();
    tar_gz(&expands, &entries);
    assert!(std::fs::metadata(&expands).unwrap().len() < 64 << 10);
    let o = check(&expands, &["--max-unpacked-bytes", &(4u64 << 20).to_string()]);
    assert_finding(&o, 4, &["fail", "archive", "past 4194304 bytes unpacked", "decompression bomb"]);
    // A link entry and a `..` entry.
    let mut link = header("b/evil", 0, tar::EntryType::Symlink);
    link.set_link_name("/etc/passwd").unwrap();
    link.set_cksum();
    let links = d.path().join("links.tar.gz");
    tar_gz(&links, &[(link, Vec::new())]);
    assert_finding(&check(&links, &[]), 4, &["fail", "archive", "b/evil", "Symlink", "refused"]);
    let mut up = header("b/x", 1, tar::EntryType::Regular);
    up.as_old_mut().name[..8].copy_from_slice(b"../x\0\0\0\0");
    up.set_cksum();
    let climbs = d.path().join("climbs.tar.gz");
    tar_gz(&climbs, &[(up, vec![b'x'])]);
    assert_finding(&check(&climbs, &[]), 4, &["fail", "archive", "climbs out"]);
}

#[test]
fn what_is_not_a_bundle_exits_2() {
    let d = tempdir("bundle-unreadable");
    assert_finding(&check(d.path(), &[]), 2, &["no manifest.json"]);
    let f = d.path().join("notes.txt");
    std::fs::write(&f, "x").unwrap();
    assert_finding(&check(&f, &[]), 2, &["neither a bundle directory nor a .tar.gz"]);
    let gz = d.path().join("garbage.tar.gz");
    std::fs::write(&gz, "not gzip at all").unwrap();
    assert_finding(&check(&gz, &[]), 2, &["not a readable .tar.gz"]);
}

#[test]
fn with_a_baseline_the_feedback_names_each_verdict_also_in_markdown() {
    let d = tempdir("bundle-feedback");
    let b = bundle(d.path(), &[]);
    let base = util::repo().join("baselines/cpu-amd-epyc-2t");
    let md = d.path().join("feedback.md");
    let o = check(&b, &["--baseline", base.to_str().unwrap(), "--markdown", md.to_str().unwrap()]);
    assert_finding(&o, 0, &["verdict digits-mlp-train:", "(energy ", "digits-mlp-train.json"]);
    assert_finding(&o, 0, &["verdict fmnist-mlp-infer-b250:"]);
    let md = std::fs::read_to_string(md).unwrap();
    assert!(md.contains("## Verdicts") && md.contains("### digits-mlp-train: "), "{md}");
    assert!(md.contains("| samples_to_target |"), "{md}");
}

/// A named edit of a result and the finding it must give.
type Case = (&'static str, fn(&mut serde_json::Value), &'static [&'static str]);

#[test]
fn a_short_window_repeated_seeds_an_estimate_labelled_measured_a_planted_slowdown_and_a_loose_wall_meter_fail() {
    let cases: [Case; 6] = [
        (
            "layout",
            |v| v["system"]["cpu_model"] = "Imaginary NPU Host 9000".into(),
            &["fail", "layout", "but it is filed under acme/"],
        ),
        (
            "window",
            |v| v["energy_sources"][0]["update_period_s"] = 100.0.into(),
            &["fail", "window", "repeat 1 (seed 0): its window of", "shorter than fake:cpu's update period of 100 s"],
        ),
        ("seeds", |v| v["repeats"][1]["seed"] = 0.into(), &["fail", "repeats", "5 repeats with 4 distinct seeds"]),
        (
            "estimate",
            |v| v["energy_sources"][0]["kind"] = "estimate".into(),
            &["fail", "provenance", "source fake:cpu is an estimate but is labelled measured"],
        ),
        ("planted", |v| v["planted_slowdown"] = 0.2.into(), &["fail", "planted", "--plant-slowdown 0.2"]),
        (
            "wall",
            |v| v["repeats"][2]["wall_meter"] = serde_json::json!({ "mark": "m", "uncertainty": { "status": "known", "max_pct": 2.5, "limit_pct": 1.0, "reply": "" } }),
            &[
                "fail",
                "uncertainty",
                "repeat 3 (seed 2): the wall meter's worst uncertainty is 2.5%, above MLPerf Power's 1%",
            ],
        ),
    ];
    for (name, edit, expected) in cases {
        let d = tempdir(&format!("bundle-{name}"));
        let (_, infer) = fixture();
        let b = submit(d.path(), &[infer], &[]);
        let rel = result_rel(&b, INFER);
        edit_json(&b.join(&rel), edit);
        rehash(&b, &rel).unwrap();
        let mut parts = expected.to_vec();
        parts.push(&rel);
        assert_finding(&check(&b, &[]), 4, &parts);
    }
}

/// Gives repeat 1 of the result at `dir/<INFER>.json` a wall meter's `system` energy from
/// `watts` samples under its mark in `<INFER>.wall.csv`, consistent in every derived figure.
fn add_wall_meter(dir: &Path, watts: &[f64]) {
    let window_s = 2.0;
    let e = watts.iter().sum::<f64>() / watts.len() as f64 * window_s;
    let mut csv = String::from("mark,time,watts,volts,amps,pf,channel_watts\n");
    for (i, w) in watts.iter().enumerate() {
        csv.push_str(&format!("{INFER}_r0,{i},{w},230,1,1,\n"));
    }
    std::fs::write(dir.join(format!("{INFER}.wall.csv")), csv).unwrap();
    edit_json(&dir.join(format!("{INFER}.json")), |v| {
        let r = &mut v["repeats"][0];
        r["wall_meter"] = serde_json::json!({
            "mark": format!("{INFER}_r0"), "energy_j": e, "window_energy_j": e, "samples": watts.len(),
            "window_s": window_s, "passes": 1,
            "uncertainty": { "status": "known", "max_pct": 0.5, "limit_pct": 1.0, "within_limit": true, "reply": "" }
        });
        for k in ["energy_j", "dynamic_energy_j"] {
            r[k]["by_domain"]["system"] = e.into();
            r[k]["total"] = e.into();
        }
        let (wall, units) = (r["wall_s"].as_f64().unwrap(), r["units_processed"].as_f64().unwrap());
        r["avg_power_w"] = (e / wall).into();
        r["energy_per_unit_j"] = (e / units).into();
    });
}

#[test]
fn a_wall_meter_energy_is_re_derived_from_its_samples() {
    let d = tempdir("bundle-wall");
    let (_, infer) = fixture();
    let i = d.path().join("infer");
    copy_dir(infer, &i);
    add_wall_meter(&i, &[101.5, 99.25, 100.0]);
    let b = submit(d.path(), &[&i], &[]);
    let rel = result_rel(&b, INFER);
    assert_finding(&check(&b, &[]), 0, &["pass", "wall", &rel, "re-derived from"]);
    // One sample edited (and rehashed): the energy no longer follows from the samples.
    let wrel = format!("{}/{INFER}/run_1/{INFER}.wall.csv", run_dir(&b));
    let text = std::fs::read_to_string(b.join(&wrel)).unwrap();
    std::fs::write(b.join(&wrel), text.replace(",99.25,", ",59.25,")).unwrap();
    rehash(&b, &wrel).unwrap();
    assert_finding(&check(&b, &[]), 4, &["fail", "wall", &rel, "repeat 1 (seed 0): wall energy", "giving"]);
}
