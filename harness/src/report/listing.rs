//! The text of the small commands (`list`, `sensors`, `peak`, `keygen`, `submit`, `export`,
//! `baseline record`, `weights`): pure functions of what the library returned, so `cli/`
//! only parses and prints.

use std::path::Path;

use effbench_models::{Kind, WorkloadSpec};

use crate::bundle::Submitted;
use crate::export::Exported;
use crate::peak::Peak;
use crate::sensor::{Candidate, Status};

fn short_metric(m: &str) -> &str {
    m.split(" (").next().unwrap_or(m)
}

/// `effbench list`: one row per workload, then where to find more and the quick suite.
pub fn workloads_text(workloads: &[WorkloadSpec]) -> String {
    let mut s = format!("{:<26} {:<6} {:<44} {:<7} recipes / batch\n", "id", "kind", "quality target", "unit");
    for w in workloads {
        let cmp = if w.higher_is_better { ">=" } else { "<=" };
        let target = format!("{} {cmp} {}", short_metric(w.quality_metric), w.quality_target);
        let extra = match w.kind {
            Kind::Train => w.recipe_names().join(", "),
            Kind::Infer => format!("batch {}", w.batch),
        };
        s += &format!("{:<26} {:<6} {:<44} {:<7} {extra}\n", w.id, w.kind, target, w.unit);
    }
    let quick: Vec<&str> = workloads.iter().filter(|w| w.quick).map(|w| w.id).collect();
    s += &format!("\nmodels and data: `effbench list --json`; quick suite: {}\n", quick.join(", "));
    s
}

/// `effbench list --json`: a JSON array, one object per workload.
pub fn workloads_json(workloads: &[WorkloadSpec]) -> String {
    let items: Vec<serde_json::Value> = workloads
        .iter()
        .map(|w| {
            serde_json::json!({
                "id": w.id,
                "kind": w.kind,
                "model": w.model,
                "dataset": w.dataset,
                "quality_metric": w.quality_metric,
                "quality_target": w.quality_target,
                "higher_is_better": w.higher_is_better,
                "unit": w.unit,
                "recipes": w.recipe_names(),
                "batch_size": (w.kind == Kind::Infer).then_some(w.batch),
                "threads": w.threads,
                "suite": if w.quick { "quick" } else { "full" },
            })
        })
        .collect();
    pretty(&items)
}

fn pretty(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

fn status_text(c: &Candidate) -> (String, String) {
    match &c.status {
        Status::Ok => ("ok".into(), String::new()),
        Status::Estimated => ("estimated".into(), "a model (rated power x utilisation), not a measurement".into()),
        Status::PermissionDenied { fix } => ("permission denied".into(), fix.clone()),
        Status::Unavailable { reason } => ("unavailable".into(), reason.clone()),
    }
}

/// `effbench sensors`: the sysfs root, one row per candidate source, and which of the
/// backend's domains (`missing`) have no measured source.
pub fn sensors_text(root: &Path, candidates: &[Candidate], missing: &[String]) -> String {
    let mut s = format!("sysfs root: {}\n", root.display());
    s += &format!("{:<10} {:<34} {:<14} {:<18} what to know\n", "kind", "id", "domains", "status");
    for c in candidates {
        let (status, note) = status_text(c);
        s += &format!("{:<10} {:<34} {:<14} {:<18} {note}\n", c.kind, c.id, c.domains.join(","), status);
    }
    if missing.is_empty() {
        s += "\nthe cpu backend's energy is measured.\n";
    } else {
        s += &format!(
            "\nno measured source for: {} (runs label its energy ESTIMATED; `run --require-measured` refuses to start)\n",
            missing.join(", ")
        );
    }
    s
}

/// `effbench sensors --json`: one object per candidate, its status's fields merged in.
pub fn sensors_json(candidates: &[Candidate]) -> String {
    let items: Vec<serde_json::Value> = candidates
        .iter()
        .map(|c| {
            let mut v = serde_json::json!({
                "kind": c.kind,
                "id": c.id,
                "domains": c.domains,
                "detail": c.detail,
            });
            if let (Some(obj), Ok(serde_json::Value::Object(st))) = (v.as_object_mut(), serde_json::to_value(&c.status))
            {
                obj.extend(st);
            }
            v
        })
        .collect();
    pretty(&items)
}

/// `effbench peak`, one line (`backend` as the user named it).
pub fn peak_text(backend: &str, p: &Peak) -> String {
    format!(
        "{backend}: f32 GEMM n={} on {} thread(s): peak {:.2} GFLOP/s, median {:.2} GFLOP/s over {} GEMMs\n",
        p.n,
        p.threads,
        p.flops_per_s / 1e9,
        p.median_flops_per_s / 1e9,
        p.gemms
    )
}

/// `effbench keygen`: where the two keys went and the public key's fingerprint.
pub fn keygen_text(secret: &Path, public: &Path, fingerprint: &str) -> String {
    format!(
        "secret key: {} (keep it; mode 0600)\npublic key: {} (give it to the testbed)\nfingerprint: {fingerprint}\n",
        secret.display(),
        public.display()
    )
}

/// `effbench submit`: the results packed, the software, the bundle, signature and archive.
pub fn submitted_text(s: &Submitted) -> String {
    let mut out = String::new();
    for r in &s.results {
        out += &format!("result: {r}\n");
    }
    let commit = s.software.git_commit.clone().unwrap_or_else(|| s.software.git_note.clone().unwrap_or_default());
    out +=
        &format!("effbench {} ({commit}), binary SHA-256 {}\n", s.software.effbench_version, s.software.binary_sha256);
    out += &format!("bundle: {} ({} files)\n", s.out.display(), s.files);
    if let Some(fp) = &s.fingerprint {
        out += &format!("signed: {fp}\n");
    }
    if let Some(a) = &s.archive {
        out += &format!("archive: {}\n", a.display());
    }
    out
}

/// `effbench export`: one line per bundle written.
pub fn exported_line(e: &Exported) -> String {
    let m = &e.manifest;
    format!(
        "{:<26} {:>9} bytes  opset {}  {} queries, batch {}  reference {} {:.4}  ({:.2} s: load {:.2}, export {:.3})  {}\n",
        m.workload,
        m.model.bytes,
        m.model.opset,
        m.queries,
        m.batch_size,
        m.reference_quality.metric,
        m.reference_quality.value,
        e.total_seconds,
        e.load_seconds,
        e.export_seconds,
        e.dir.display()
    )
}

/// `effbench baseline record`: one line per baseline stored.
pub fn baseline_line(dest: &Path, valid: usize, repeats: usize) -> String {
    format!("{} ({valid}/{repeats} valid repeats)\n", dest.display())
}

/// `effbench weights`: the weights file and how far training got.
pub fn weights_line(path: &Path, quality: f64, samples: u64) -> String {
    format!("{} (quality {quality:.4} after {samples} samples)\n", path.display())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_workload_table_has_a_row_per_workload_and_names_the_quick_suite() {
        let all = effbench_models::WORKLOADS;
        let t = super::workloads_text(all);
        assert_eq!(t.lines().count(), all.len() + 3, "{t}");
        assert!(t.lines().last().unwrap().starts_with("models and data: `effbench list --json`; quick suite: "));
        let v: serde_json::Value = serde_json::from_str(&super::workloads_json(all)).unwrap();
        assert_eq!(v.as_array().map(Vec::len), Some(all.len()));
    }
}
