//! `BUNDLE.tar.gz`: written by `submit --archive`, and unpacked by `check` only into a fresh
//! temporary directory, within [`Limits`]: a decompression bomb, a link, a device, an absolute
//! or `..` path is refused before anything of it is written.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use super::{fsafe, BundleError};

/// What an archive may unpack to. The defaults hold a full suite's bundle with 1 kHz traces
/// many times over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_entries: u64,
    /// Declared and actual size of one entry.
    pub max_entry_bytes: u64,
    /// Sum of all entries' sizes.
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_entries: 10_000, max_entry_bytes: 1 << 30, max_total_bytes: 4 << 30 }
    }
}

/// Why an archive was not unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// Not a readable gzip'd tar at all (exit 2).
    #[error("{0}")]
    Unreadable(String),
    /// A readable archive that breaks a rule (a bomb, a link, a path out): an invalid bundle.
    #[error("{0}")]
    Refused(String),
}

/// Writes `root`'s files (the manifest's list plus the manifest and its signature) into
/// `out` as a gzip'd tar under the top directory `top`, with fixed modes and times.
pub fn pack(root: &Path, files: &[String], top: &str, out: &Path) -> Result<(), BundleError> {
    let f = std::fs::OpenOptions::new().write(true).create_new(true).open(out).map_err(BundleError::io(out))?;
    let mut tar = tar::Builder::new(GzEncoder::new(f, flate2::Compression::default()));
    for rel in files {
        let (mut file, len) = fsafe::open(root, Path::new(rel), fsafe::MAX_FILE_BYTES).map_err(BundleError::Input)?;
        let mut h = tar::Header::new_gnu();
        h.set_size(len);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, format!("{top}/{rel}"), &mut file).map_err(BundleError::io(out))?;
    }
    let gz = tar.into_inner().map_err(BundleError::io(out))?;
    gz.finish().and_then(|mut f| f.flush()).map_err(BundleError::io(out))
}

/// Unpacks `archive` into a fresh temporary directory and returns it (removed when dropped).
pub fn unpack(archive: &Path, limits: &Limits) -> Result<tempfile::TempDir, UnpackError> {
    let f = File::open(archive).map_err(|e| UnpackError::Unreadable(format!("{}: {e}", archive.display())))?;
    let dir = tempfile::Builder::new()
        .prefix("effbench-check-")
        .tempdir()
        .map_err(|e| UnpackError::Unreadable(format!("cannot make a temporary directory to unpack into: {e}")))?;
    let mut tar = tar::Archive::new(GzDecoder::new(f));
    let bad = |e: io::Error| UnpackError::Unreadable(format!("{} is not a readable .tar.gz: {e}", archive.display()));
    let (mut count, mut total) = (0u64, 0u64);
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        count += 1;
        if count > limits.max_entries {
            return Err(refused(archive, format!("it holds more than {} entries", limits.max_entries)));
        }
        let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let rel = fsafe::inside(name.trim_end_matches('/')).map_err(|why| refused(archive, format!("entry {why}")))?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue; // directories are made as files need them
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            return Err(refused(
                archive,
                format!("entry {name:?} is a {kind:?}, not a regular file (links and devices are refused)"),
            ));
        }
        let declared = entry.header().size().map_err(bad)?;
        if declared > limits.max_entry_bytes {
            return Err(bomb(
                archive,
                &name,
                format!("declares {declared} bytes, over the {}-byte limit per entry", limits.max_entry_bytes),
            ));
        }
        total += declared;
        if total > limits.max_total_bytes {
            return Err(bomb(
                archive,
                &name,
                format!("takes the archive past {} bytes unpacked, the limit", limits.max_total_bytes),
            ));
        }
        let written = write_entry(dir.path(), &rel, &mut entry, limits.max_entry_bytes).map_err(bad)?;
        if written != declared {
            return Err(bomb(archive, &name, format!("expands to {written} bytes, not the {declared} it declares")));
        }
    }
    Ok(dir)
}

fn refused(archive: &Path, why: String) -> UnpackError {
    UnpackError::Refused(format!("{}: refused to unpack: {why}", archive.display()))
}

fn bomb(archive: &Path, entry: &str, why: String) -> UnpackError {
    refused(archive, format!("entry {entry:?} {why} (a decompression bomb?); nothing more was unpacked"))
}

/// Writes one entry below `root` (a fresh directory: no links in it but none we made), at most
/// `max + 1` bytes of it.
fn write_entry(root: &Path, rel: &Path, entry: &mut impl Read, max: u64) -> io::Result<u64> {
    let path: PathBuf = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)?;
    io::copy(&mut entry.take(max + 1), &mut f)
}

/// The bundle root inside an unpacked archive: the directory itself when it holds the
/// manifest, else its one top-level directory.
pub fn root_of(dir: &Path) -> Option<PathBuf> {
    if dir.join(super::manifest::MANIFEST_FILE).is_file() {
        return Some(dir.to_path_buf());
    }
    let mut entries = std::fs::read_dir(dir).ok()?.filter_map(Result::ok);
    let only = entries.next()?;
    if entries.next().is_some() {
        return None;
    }
    let p = only.path();
    (std::fs::symlink_metadata(&p).ok()?.is_dir() && p.join(super::manifest::MANIFEST_FILE).is_file()).then_some(p)
}
