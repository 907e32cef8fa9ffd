//! `effbench submit`: result directories in, a bundle out (layout in [`super`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use effbench_models::WorkloadSpec;
use sha2::{Digest, Sha256};

use super::manifest::{self, Manifest, SignatureInfo, Software};
use super::{archive, fsafe, hex, sign, BundleError};
use crate::result::RunResult;

#[derive(Clone, Debug)]
pub struct SubmitOptions {
    /// Result directories (as `run --out` writes them) or result files.
    pub results: Vec<PathBuf>,
    pub out: PathBuf,
    pub submitter: String,
    pub sign: Option<PathBuf>,
    pub archive: bool,
}

#[derive(Clone, Debug)]
pub struct Submitted {
    pub out: PathBuf,
    /// Bundle-relative paths of the result files.
    pub results: Vec<String>,
    pub files: usize,
    pub fingerprint: Option<String>,
    pub archive: Option<PathBuf>,
    pub software: Software,
}

/// A path component we write: letters, digits, `.`, `_`, `-`; not empty or dots only.
fn component(what: &str, s: &str) -> Result<String, BundleError> {
    let ok = !s.is_empty()
        && !s.chars().all(|c| c == '.')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(BundleError::Input(format!("{what} {s:?} must be letters, digits, '.', '_' or '-' (it names a directory)")))
    }
}

/// The result files of `p`: `p` itself when it is a file, else `p/*.json` with an effbench
/// result schema, sorted.
fn result_files(p: &Path) -> Result<Vec<PathBuf>, BundleError> {
    if p.is_file() {
        return Ok(vec![p.to_path_buf()]);
    }
    let names = crate::run::out::results_in(p).map_err(|e| BundleError::Input(e.to_string()))?;
    let files: Vec<PathBuf> = names.iter().filter(|n| n.ends_with(".json")).map(|n| p.join(n)).collect();
    if files.is_empty() {
        return Err(BundleError::Input(format!("{} holds no effbench result files (*.json)", p.display())));
    }
    Ok(files)
}

pub fn submit(opts: &SubmitOptions) -> Result<Submitted, BundleError> {
    let submitter = component("--submitter", &opts.submitter)?;
    if std::fs::symlink_metadata(&opts.out).is_ok() {
        return Err(BundleError::Input(format!(
            "{} already exists; submit never overwrites: pick a new --out",
            opts.out.display()
        )));
    }
    let key = opts.sign.as_deref().map(sign::load_secret).transpose()?;
    let archive_path = opts.archive.then(|| archive_path(&opts.out));
    if let Some(a) = archive_path.as_ref().filter(|a| std::fs::symlink_metadata(a).is_ok()) {
        return Err(BundleError::Input(format!("{} already exists; pick a new --out", a.display())));
    }
    let mut sources = Vec::new();
    for p in &opts.results {
        sources.extend(result_files(p)?);
    }
    std::fs::create_dir_all(&opts.out).map_err(BundleError::io(&opts.out))?;
    let mut runs: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut results = Vec::new();
    for src in &sources {
        let r = RunResult::load(src).map_err(|e| BundleError::Input(e.to_string()))?;
        let system = component("system class", &r.system.host_class())?;
        let workload = component("workload id", &r.workload.id)?;
        let sys_dir = opts.out.join(&submitter).join(&system);
        let k = runs.entry((system.clone(), workload.clone())).or_insert(0);
        *k += 1;
        let rel = format!("{submitter}/{system}/{workload}/run_{k}");
        let dest = opts.out.join(&rel);
        std::fs::create_dir_all(&dest).map_err(BundleError::io(&dest))?;
        let system_json = sys_dir.join("system.json");
        if !system_json.exists() {
            let text = serde_json::to_vec_pretty(&r.system).unwrap_or_default();
            std::fs::write(&system_json, text).map_err(BundleError::io(&system_json))?;
        }
        copy_run(src, &r, &workload, &dest)?;
        results.push(format!("{rel}/{workload}.json"));
    }
    let software = software();
    let m = Manifest {
        schema: manifest::SCHEMA.into(),
        created_at: chrono::Utc::now().to_rfc3339(),
        submitter,
        software: software.clone(),
        signature: key.as_ref().map(|k| SignatureInfo {
            algorithm: "ed25519".into(),
            public_key: hex(k.verifying_key().as_bytes()),
            fingerprint: sign::fingerprint(&k.verifying_key()),
        }),
        files: manifest::hash_tree(&opts.out)?,
    };
    let bytes = m.to_bytes();
    let mpath = opts.out.join(manifest::MANIFEST_FILE);
    std::fs::write(&mpath, &bytes).map_err(BundleError::io(&mpath))?;
    let mut listed: Vec<String> = m.files.iter().map(|f| f.path.clone()).collect();
    listed.push(manifest::MANIFEST_FILE.into());
    if let Some(k) = &key {
        let spath = opts.out.join(manifest::SIGNATURE_FILE);
        std::fs::write(&spath, sign::signature_text(k, &bytes)).map_err(BundleError::io(&spath))?;
        listed.push(manifest::SIGNATURE_FILE.into());
    }
    if let Some(a) = &archive_path {
        let top = opts.out.file_name().map_or("bundle".into(), |n| n.to_string_lossy().into_owned());
        archive::pack(&opts.out, &listed, &top, a)?;
    }
    Ok(Submitted {
        out: opts.out.clone(),
        results,
        files: listed.len(),
        fingerprint: m.signature.map(|s| s.fingerprint),
        archive: archive_path,
        software,
    })
}

/// `BUNDLE.tar.gz` beside `BUNDLE`.
pub fn archive_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".tar.gz");
    PathBuf::from(s)
}

/// The result file and what belongs to it: trace, wall samples, runner log and runner TOML
/// (same stem, same directory; the TOML is required where the result records its SHA-256),
/// the recipe, and for runner inference runs the exported model (a runner training run has
/// none: the runner trains its own model; its log is required instead).
fn copy_run(src: &Path, r: &RunResult, workload: &str, dest: &Path) -> Result<(), BundleError> {
    let dir = src.parent().unwrap_or(Path::new("."));
    let stem = src.file_stem().map_or(workload.to_string(), |s| s.to_string_lossy().into_owned());
    let copy = |from: &Path, to: &str| -> Result<(), BundleError> {
        let to = dest.join(to);
        std::fs::copy(from, &to).map(|_| ()).map_err(BundleError::io(from))
    };
    copy(src, &format!("{workload}.json"))?;
    let trace = dir.join(format!("{stem}.trace.csv"));
    if !trace.is_file() {
        return Err(BundleError::Input(format!(
            "{} has no trace ({} is missing); a bundle needs every result's trace",
            src.display(),
            trace.display()
        )));
    }
    copy(&trace, &format!("{workload}.trace.csv"))?;
    for ext in ["wall.csv", "runner.log", "runner.toml"] {
        let p = dir.join(format!("{stem}.{ext}"));
        if p.is_file() {
            copy(&p, &format!("{workload}.{ext}"))?;
        }
    }
    let config = dir.join(format!("{stem}.runner.toml"));
    if r.backend.runner_config_sha256.is_some() && !config.is_file() {
        return Err(BundleError::Input(format!(
            "{} records the SHA-256 of its runner TOML (backend.runner_config_sha256), but the copy {} is missing; \
             a bundle carries it (submit the result directory `effbench run` wrote)",
            src.display(),
            config.display()
        )));
    }
    if let Some(text) = recipe_text(src, r)? {
        let to = dest.join("recipe.toml");
        std::fs::write(&to, text).map_err(BundleError::io(&to))?;
    }
    let training = r.workload.kind == crate::result::WorkloadKind::Train;
    if r.backend.kind == "external" && training {
        // Training through a runner: the runner's model is its own, so there is nothing of
        // effbench's to export; what the checker needs is the result, its trace and recipe,
        // and the runner's log (what it said while effbench served and scored it).
        let log = dir.join(format!("{stem}.runner.log"));
        if !log.is_file() {
            return Err(BundleError::Input(format!(
                "{} is a training run through a runner, but its runner log {} is missing; a bundle carries it \
                 (submit the result directory `effbench run` wrote)",
                src.display(),
                log.display()
            )));
        }
    } else if r.backend.kind == "external" {
        let spec = crate::export::inference_spec(&r.workload.id).map_err(|e| BundleError::Input(e.to_string()))?;
        let data = effbench_models::data::DataConfig::discover(None);
        let weights = effbench_models::infer::default_weights_dir();
        crate::export::export_bundles(&[spec], &dest.join("export"), &data, &weights, &mut |_| {})
            .map_err(|e| BundleError::Input(format!("exporting {} for the bundle: {e:#}", r.workload.id)))?;
    }
    Ok(())
}

/// The text of the recipe `r` names: a shipped one by name, or the file at its path (as given,
/// or relative to the result's directory), checked against the SHA-256 the result recorded.
fn recipe_text(src: &Path, r: &RunResult) -> Result<Option<String>, BundleError> {
    if r.workload.kind != crate::result::WorkloadKind::Train {
        return Ok(None);
    }
    let text = match &r.recipe.path {
        None => {
            let spec = WorkloadSpec::get(&r.workload.id).map_err(|e| BundleError::Input(e.to_string()))?;
            let (_, t) = spec.recipes.iter().find(|(n, _)| *n == r.recipe.name).ok_or_else(|| {
                BundleError::Input(format!(
                    "{}: recipe {:?} is neither shipped with {} nor given by path",
                    src.display(),
                    r.recipe.name,
                    r.workload.id
                ))
            })?;
            t.to_string()
        }
        Some(p) => {
            let p = Path::new(p);
            let dir = src.parent().unwrap_or(Path::new("."));
            let found = [p.to_path_buf(), dir.join(p)].into_iter().find(|c| c.is_file()).ok_or_else(|| {
                BundleError::Input(format!("{}: its recipe {} is not there any more", src.display(), p.display()))
            })?;
            std::fs::read_to_string(&found).map_err(BundleError::io(&found))?
        }
    };
    let sha = hex(&Sha256::digest(text.as_bytes()));
    if sha != r.recipe.sha256 {
        return Err(BundleError::Input(format!(
            "{}: the recipe {:?} found has SHA-256 {sha}, not the {} the result recorded (was it edited after the run?)",
            src.display(),
            r.recipe.name,
            r.recipe.sha256
        )));
    }
    Ok(Some(text))
}

/// This effbench: version, the binary's SHA-256, and the git commit of the checkout it was
/// built from when that is still a git checkout (asked of `git`, which is ours, not the
/// bundle's).
pub fn software() -> Software {
    let binary_sha256 = std::env::current_exe()
        .ok()
        .and_then(|p| std::fs::File::open(p).ok())
        .and_then(|f| fsafe::sha256_of(f).ok())
        .map_or_else(|| "unknown".to_string(), |(h, _)| h);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("."));
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(src)
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "HEAD"]).filter(|c| c.len() == 40);
    let (git_dirty, git_note) = match &commit {
        Some(_) => (git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty()), None),
        None => (None, Some(format!("{} is not a git checkout (or git is absent); commit unknown", src.display()))),
    };
    Software {
        effbench_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: commit,
        git_dirty,
        git_note,
        binary_sha256,
    }
}
