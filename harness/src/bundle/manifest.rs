//! `BUNDLE/manifest.json`, schema `effbench.bundle/1`: the software that made the bundle and
//! every file in it with its SHA-256 and size. The manifest lists files only; what each file
//! *is* (result, trace, recipe) the checker derives from the layout, not from the manifest.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{fsafe, BundleError};

pub const SCHEMA: &str = "effbench.bundle/1";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const SIGNATURE_FILE: &str = "manifest.json.sig";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// RFC 3339.
    pub created_at: String,
    pub submitter: String,
    pub software: Software,
    /// Present when the bundle was signed (`--sign`): the key that signed `manifest.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureInfo>,
    /// Every file of the bundle except `manifest.json` and its signature, sorted by path.
    pub files: Vec<FileEntry>,
}

/// The effbench that wrote the bundle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Software {
    pub effbench_version: String,
    /// The git commit of the checkout effbench was built from, where that checkout is still
    /// there; absent otherwise, and `git_note` says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    /// Whether that checkout had uncommitted changes to tracked files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_dirty: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_note: Option<String>,
    /// SHA-256 of the effbench binary that wrote the bundle (`std::env::current_exe`).
    pub binary_sha256: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignatureInfo {
    /// `ed25519`.
    pub algorithm: String,
    /// The signer's public key (hex) and its fingerprint ([`super::sign::fingerprint`]).
    pub public_key: String,
    pub fingerprint: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the bundle, `/`-separated.
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

impl Manifest {
    /// Parses manifest bytes, checking the schema first.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, BundleError> {
        let bad = |m: String| BundleError::Unreadable(format!("{MANIFEST_FILE} {m}"));
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| bad(format!("is not valid JSON: {e}")))?;
        match v.get("schema").and_then(|s| s.as_str()) {
            Some(SCHEMA) => {}
            Some(other) => return Err(bad(format!("has schema {other:?}; this effbench reads {SCHEMA:?}"))),
            None => return Err(bad(format!("has no \"schema\" field (expected {SCHEMA:?}); is this a bundle?"))),
        }
        serde_json::from_value(v).map_err(|e| bad(format!("is not a valid {SCHEMA} manifest: {e}")))
    }

    /// The manifest's bytes as written: pretty JSON and a final newline. The signature covers
    /// exactly these bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec_pretty(self).unwrap_or_default();
        b.push(b'\n');
        b
    }

    /// Reads `root/manifest.json` (bounded, no link followed) and returns it with its exact bytes.
    pub fn load(root: &Path) -> Result<(Manifest, Vec<u8>), BundleError> {
        let rel = Path::new(MANIFEST_FILE);
        if std::fs::symlink_metadata(root.join(rel)).is_err() {
            return Err(BundleError::Unreadable(format!(
                "{} has no {MANIFEST_FILE}; is it a bundle made by `effbench submit`?",
                root.display()
            )));
        }
        let bytes = fsafe::read(root, rel, fsafe::MAX_TEXT_BYTES).map_err(BundleError::Unreadable)?;
        Ok((Manifest::parse(&bytes)?, bytes))
    }
}

/// Every regular file under `root` but the manifest and its signature, hashed.
pub fn hash_tree(root: &Path) -> Result<Vec<FileEntry>, BundleError> {
    let listing = fsafe::list(root);
    if let Some((p, why)) = listing.problems.first() {
        return Err(BundleError::Input(format!("{}: {p}: {why}", root.display())));
    }
    let mut files = Vec::new();
    for path in listing.files {
        if path == MANIFEST_FILE || path == SIGNATURE_FILE {
            continue;
        }
        let (sha256, bytes) = fsafe::hash_file(root, Path::new(&path)).map_err(BundleError::Input)?;
        files.push(FileEntry { path, sha256, bytes });
    }
    Ok(files)
}

/// Re-hashes `rel` in `root`'s manifest and rewrites it (dropping any signature, which no
/// longer holds). For tests that play a submitter who edits a file and covers the edit.
pub fn rehash(root: &Path, rel: &str) -> Result<(), BundleError> {
    let (mut m, _) = Manifest::load(root)?;
    let (sha256, bytes) = fsafe::hash_file(root, Path::new(rel)).map_err(BundleError::Input)?;
    match m.files.iter_mut().find(|f| f.path == rel) {
        Some(f) => *f = FileEntry { path: rel.to_string(), sha256, bytes },
        None => {
            m.files.push(FileEntry { path: rel.to_string(), sha256, bytes });
            m.files.sort();
        }
    }
    let path = root.join(MANIFEST_FILE);
    std::fs::write(&path, m.to_bytes()).map_err(BundleError::io(&path))
}
