//! `effbench check`: the checker a testbed runs on a vendor's bundle. It re-derives what it
//! can (hashes, signature, validity, energy from the trace, idle power, windows, seeds) and
//! reports each check as pass / warn / fail with what to fix. Renderers are in
//! [`crate::report::check`]; this module only judges.

mod energy;
mod refs;
mod result;
mod train;
mod wall;

pub use energy::{integrate, DomainSum, Segment, Trace};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::manifest::{Manifest, MANIFEST_FILE, SIGNATURE_FILE};
use super::{archive, fsafe, sign, BundleError};

/// The report's own schema (for `--json`).
pub const REPORT_SCHEMA: &str = "effbench.check/1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        })
    }
}

/// One check's outcome: which check, on what (a bundle-relative path), what was found, and
/// for warn / fail what to fix.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub status: Status,
    pub check: String,
    pub subject: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    pub fn pass(check: &str, subject: &str, message: impl Into<String>) -> Finding {
        Finding {
            status: Status::Pass,
            check: check.into(),
            subject: subject.into(),
            message: message.into(),
            fix: None,
        }
    }
    pub fn warn(check: &str, subject: &str, message: impl Into<String>, fix: &str) -> Finding {
        Finding { status: Status::Warn, fix: Some(fix.into()), ..Finding::pass(check, subject, message) }
    }
    pub fn fail(check: &str, subject: &str, message: impl Into<String>, fix: &str) -> Finding {
        Finding { status: Status::Fail, fix: Some(fix.into()), ..Finding::pass(check, subject, message) }
    }
}

/// The verdict against a baseline for one result: the feedback a vendor gets back.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Feedback {
    pub workload: String,
    pub result: String,
    pub baseline: String,
    pub energy_label: String,
    /// The scope energy was compared at and each side's domains there, in words.
    pub energy_scope: String,
    pub overall: String,
    pub rows: Vec<FeedbackRow>,
}

/// One metric of a [`Feedback`]: the reduction `1 - candidate/baseline` and its 95% interval.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FeedbackRow {
    pub metric: String,
    pub reduction: f64,
    pub ci95: [f64; 2],
    pub verdict: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckReport {
    pub schema: String,
    /// The bundle as given on the command line.
    pub bundle: String,
    pub submitter: Option<String>,
    /// No failed check (filled in by [`check`]; [`CheckReport::valid`] recomputes it).
    pub valid: bool,
    pub findings: Vec<Finding>,
    pub feedback: Vec<Feedback>,
}

impl CheckReport {
    /// No failed check.
    pub fn valid(&self) -> bool {
        !self.findings.iter().any(|f| f.status == Status::Fail)
    }
    pub fn count(&self, s: Status) -> usize {
        self.findings.iter().filter(|f| f.status == s).count()
    }
}

#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Verify the signature with this public key; an unsigned bundle then fails.
    pub pubkey: Option<PathBuf>,
    /// Baselines (`<workload>.json`) for the feedback and the convergence check.
    pub baseline: Option<PathBuf>,
    /// Where shipped baselines live (`<system>/<workload>.json`) for the convergence check
    /// when no `baseline` is given; `None`: `baselines/` here, else the source checkout's.
    pub shipped_baselines: Option<PathBuf>,
    pub limits: archive::Limits,
    /// The energy scope of the feedback's verdicts (`--scope`); `None`: the widest both sides
    /// measured.
    pub scope: Option<crate::scope::Scope>,
}

/// Checks `bundle`, a directory or a `.tar.gz`. `Err` only when it cannot be read as a bundle
/// at all (exit 2); a bundle that fails checks is an `Ok` report that is not
/// [`CheckReport::valid`] (exit 4).
pub fn check(bundle: &Path, opts: &CheckOptions) -> Result<CheckReport, BundleError> {
    let mut report = CheckReport {
        schema: REPORT_SCHEMA.into(),
        bundle: bundle.display().to_string(),
        submitter: None,
        valid: false,
        findings: Vec::new(),
        feedback: Vec::new(),
    };
    let meta = std::fs::metadata(bundle).map_err(|e| {
        BundleError::Unreadable(format!("{}: {e}; give a bundle directory or .tar.gz", bundle.display()))
    })?;
    let name = bundle.to_string_lossy();
    let _unpacked;
    let root: PathBuf = if meta.is_dir() {
        bundle.to_path_buf()
    } else if meta.is_file() && (name.ends_with(".tar.gz") || name.ends_with(".tgz")) {
        match archive::unpack(bundle, &opts.limits) {
            Ok(dir) => {
                let root = archive::root_of(dir.path()).ok_or_else(|| {
                    BundleError::Unreadable(format!("{} holds no {MANIFEST_FILE} at its top", bundle.display()))
                })?;
                _unpacked = dir;
                root
            }
            Err(archive::UnpackError::Unreadable(m)) => return Err(BundleError::Unreadable(m)),
            Err(archive::UnpackError::Refused(m)) => {
                report.findings.push(Finding::fail(
                    "archive",
                    &name,
                    m,
                    "send the bundle as `effbench submit --archive` writes it: regular files only, within the limits",
                ));
                return Ok(report);
            }
        }
    } else {
        return Err(BundleError::Unreadable(format!(
            "{} is neither a bundle directory nor a .tar.gz",
            bundle.display()
        )));
    };
    let (manifest, bytes) = Manifest::load(&root)?;
    report.submitter = Some(manifest.submitter.clone());
    let f = &mut report.findings;
    let good = files(&root, &manifest, f);
    signature(&root, &manifest, &bytes, opts.pubkey.as_deref(), f);
    software(&manifest, f);
    let ctx = result::Ctx { root: &root, good: &good, opts };
    let results: Vec<&String> = good.iter().filter(|p| is_result_path(p)).collect();
    if results.is_empty() {
        f.push(Finding::fail(
            "results",
            ".",
            "the bundle holds no result file",
            "submit at least one result directory",
        ));
    }
    for rel in results {
        if let Some(fb) = result::check_result(&ctx, rel, &mut report.findings) {
            report.feedback.push(fb);
        }
    }
    report.valid = report.valid();
    Ok(report)
}

/// `<submitter>/<system>/<workload>/run_<k>/<workload>.json`.
fn is_result_path(p: &str) -> bool {
    let parts: Vec<&str> = p.split('/').collect();
    parts.len() == 5 && parts[3].starts_with("run_") && parts[4] == format!("{}.json", parts[2])
}

/// Every file on disk against the manifest, both ways, re-hashed. Returns the files whose hash
/// and size match (the only ones later checks read).
fn files(root: &Path, m: &Manifest, out: &mut Vec<Finding>) -> BTreeSet<String> {
    let listing = fsafe::list(root);
    let fix_link = "ship regular files only: a bundle may hold no links, devices or FIFOs";
    for (p, why) in &listing.problems {
        out.push(Finding::fail("files", p, why.clone(), fix_link));
    }
    let on_disk: BTreeSet<&str> =
        listing.files.iter().map(String::as_str).filter(|p| *p != MANIFEST_FILE && *p != SIGNATURE_FILE).collect();
    let mut good = BTreeSet::new();
    let mut listed = BTreeSet::new();
    let fix_hash = "re-make the bundle with `effbench submit` from the original result directories";
    for e in &m.files {
        if let Err(why) = fsafe::inside(&e.path) {
            out.push(Finding::fail(
                "manifest",
                &e.path,
                format!("the manifest lists {why}; it was not opened"),
                fix_hash,
            ));
            continue;
        }
        if !listed.insert(e.path.as_str()) {
            out.push(Finding::fail("manifest", &e.path, "the manifest lists this file twice", fix_hash));
            continue;
        }
        if !on_disk.contains(e.path.as_str()) {
            if !listing.problems.iter().any(|(p, _)| *p == e.path) {
                out.push(Finding::fail(
                    "files",
                    &e.path,
                    "listed in the manifest but missing from the bundle",
                    fix_hash,
                ));
            }
            continue;
        }
        match fsafe::hash_file(root, Path::new(&e.path)) {
            Ok((sha, n)) if sha == e.sha256 && n == e.bytes => {
                good.insert(e.path.clone());
            }
            Ok((sha, n)) => out.push(Finding::fail(
                "hash",
                &e.path,
                format!(
                    "SHA-256 {sha} ({n} bytes), but the manifest says {} ({} bytes): the file was changed",
                    e.sha256, e.bytes
                ),
                fix_hash,
            )),
            Err(why) => out.push(Finding::fail("files", &e.path, why, fix_link)),
        }
    }
    for p in on_disk.iter().filter(|p| !listed.contains(*p)) {
        out.push(Finding::fail("files", p, "in the bundle but not in the manifest", fix_hash));
    }
    if good.len() == m.files.len() && listing.problems.is_empty() && on_disk.len() == listed.len() {
        out.push(Finding::pass(
            "files",
            MANIFEST_FILE,
            format!("{} files, every SHA-256 and size re-derived; nothing extra, nothing missing", good.len()),
        ));
    }
    good
}

fn signature(root: &Path, m: &Manifest, bytes: &[u8], pubkey: Option<&Path>, out: &mut Vec<Finding>) {
    let subject = SIGNATURE_FILE;
    let fix = "sign with the key whose public half the testbed holds: `effbench submit --sign KEYFILE`";
    let sig = std::fs::symlink_metadata(root.join(SIGNATURE_FILE))
        .ok()
        .map(|_| fsafe::read_text(root, Path::new(SIGNATURE_FILE), 4096));
    let key = match pubkey {
        Some(p) => match sign::load_public(p) {
            Ok(k) => Some(k),
            Err(e) => {
                return out.push(Finding::fail(
                    "signature",
                    subject,
                    format!("--pubkey: {e}"),
                    "give a key written by `effbench keygen`",
                ))
            }
        },
        None => None,
    };
    match (sig, key) {
        (None, Some(_)) => out.push(Finding::fail(
            "signature",
            subject,
            "the bundle is unsigned, but --pubkey asks for a signature",
            fix,
        )),
        (None, None) => out.push(Finding::warn(
            "signature",
            subject,
            "unsigned bundle: integrity rests on the manifest's hashes alone",
            "sign it with `effbench submit --sign KEYFILE`",
        )),
        (Some(Err(e)), _) => out.push(Finding::fail("signature", subject, e, fix)),
        (Some(Ok(text)), Some(k)) => match sign::verify(&k, bytes, &text) {
            Ok(()) => out.push(Finding::pass(
                "signature",
                subject,
                format!("Ed25519 signature of manifest.json verifies with --pubkey {}", sign::fingerprint(&k)),
            )),
            Err(e) => out.push(Finding::fail(
                "signature",
                subject,
                format!(
                    "{e} (--pubkey); the manifest names signer {}",
                    m.signature.as_ref().map_or("none", |s| s.fingerprint.as_str())
                ),
                fix,
            )),
        },
        (Some(Ok(text)), None) => {
            let embedded = m
                .signature
                .as_ref()
                .and_then(|s| super::unhex(&s.public_key))
                .and_then(|b| sign::public_from_bytes(&b).ok());
            match embedded.map(|k| (sign::verify(&k, bytes, &text), sign::fingerprint(&k))) {
                Some((Ok(()), fp)) => out.push(Finding::warn(
                    "signature",
                    subject,
                    format!("signed by {fp} (the key the manifest names); who holds that key is not checked"),
                    "pass --pubkey with the submitter's registered public key",
                )),
                Some((Err(e), _)) => out.push(Finding::fail("signature", subject, e, fix)),
                None => out.push(Finding::fail(
                    "signature",
                    subject,
                    "a signature file, but the manifest names no valid signing key",
                    fix,
                )),
            }
        }
    }
}

fn software(m: &Manifest, out: &mut Vec<Finding>) {
    let s = &m.software;
    let commit = match (&s.git_commit, s.git_dirty) {
        (Some(c), Some(true)) => format!("git {c} with uncommitted changes"),
        (Some(c), _) => format!("git {c}"),
        (None, _) => format!("no git commit ({})", s.git_note.as_deref().unwrap_or("not recorded")),
    };
    let msg = format!("made by effbench {}, {commit}, binary SHA-256 {}", s.effbench_version, s.binary_sha256);
    let ok = s.binary_sha256.len() == 64 && s.git_commit.is_some() && s.git_dirty != Some(true);
    out.push(if ok {
        Finding::pass("software", MANIFEST_FILE, msg)
    } else {
        Finding::warn("software", MANIFEST_FILE, msg, "submit with an effbench built from a clean, committed checkout")
    });
}
