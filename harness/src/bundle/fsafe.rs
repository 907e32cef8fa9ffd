//! Reading a hostile directory tree: relative paths checked before use, no link followed (every
//! component is looked at with `symlink_metadata`, files are opened with `O_NOFOLLOW`), every
//! read bounded, every listing bounded.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// The largest file of a bundle effbench reads or hashes (a 1 kHz trace of 10 hours with two
/// domains is about 1 GiB).
pub const MAX_FILE_BYTES: u64 = 4 << 30;
/// The largest JSON or text file read whole (result files are capped at 64 MiB by
/// [`crate::result::MAX_RESULT_BYTES`]; manifests, keys and export manifests are far smaller).
pub const MAX_TEXT_BYTES: u64 = crate::result::MAX_RESULT_BYTES;
/// The most entries (files, directories, anything) a bundle may hold.
pub const MAX_ENTRIES: usize = 100_000;
/// The deepest a bundle's tree may go.
pub const MAX_DEPTH: usize = 16;

/// `rel` as a path inside a bundle, or why it is not one: it must be relative, made only of
/// plain names (no `..`, `.`, root or prefix), valid UTF-8, without NUL or backslash.
pub fn inside(rel: &str) -> Result<PathBuf, String> {
    if rel.is_empty() {
        return Err("an empty path".into());
    }
    if rel.contains(['\0', '\\']) {
        return Err(format!("{rel:?} holds a NUL or a backslash"));
    }
    let p = Path::new(rel);
    if p.is_absolute() {
        return Err(format!("{rel:?} is an absolute path, outside the bundle"));
    }
    // By the text, not `Path::components`, which drops inner `.` and empty segments.
    for part in rel.split('/') {
        match part {
            ".." => return Err(format!("{rel:?} climbs out of the bundle with `..`")),
            "" | "." => return Err(format!("{rel:?} is not a plain relative path")),
            _ => {}
        }
    }
    if !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(format!("{rel:?} is not a plain relative path"));
    }
    Ok(p.to_path_buf())
}

/// What `root/rel` is, following no link: an error names a link or anything not a regular
/// file, at any component.
pub fn regular_file(root: &Path, rel: &Path) -> Result<u64, String> {
    let mut at = root.to_path_buf();
    let n = rel.components().count();
    for (i, c) in rel.components().enumerate() {
        at.push(c);
        let meta = std::fs::symlink_metadata(&at).map_err(|e| format!("{}: {e}", at.display()))?;
        let t = meta.file_type();
        if t.is_symlink() {
            let target = std::fs::read_link(&at).map(|t| t.display().to_string()).unwrap_or_default();
            return Err(format!("{} is a symbolic link (to {target}); links are refused, not followed", at.display()));
        }
        if i + 1 < n && !t.is_dir() {
            return Err(format!("{} is not a directory", at.display()));
        }
        if i + 1 == n {
            if !t.is_file() {
                return Err(format!("{} is not a regular file", at.display()));
            }
            return Ok(meta.len());
        }
    }
    Err("an empty path".into())
}

/// Opens `root/rel` for reading after [`regular_file`], with `O_NOFOLLOW` so a link planted in
/// between is still refused. Returns the file and its size, refusing more than `max` bytes.
pub fn open(root: &Path, rel: &Path, max: u64) -> Result<(File, u64), String> {
    let len = regular_file(root, rel)?;
    if len > max {
        return Err(format!("{} is {len} bytes, over the {max}-byte limit for such a file", rel.display()));
    }
    let path = root.join(rel);
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((f, len))
}

/// The whole of `root/rel` as bytes, at most `max`.
pub fn read(root: &Path, rel: &Path, max: u64) -> Result<Vec<u8>, String> {
    let (f, len) = open(root, rel, max)?;
    let mut bytes = Vec::with_capacity(len as usize);
    f.take(max + 1).read_to_end(&mut bytes).map_err(|e| format!("{}: {e}", rel.display()))?;
    if bytes.len() as u64 > max {
        return Err(format!("{} grew past the {max}-byte limit while being read", rel.display()));
    }
    Ok(bytes)
}

/// [`read`] as UTF-8 text.
pub fn read_text(root: &Path, rel: &Path, max: u64) -> Result<String, String> {
    String::from_utf8(read(root, rel, max)?).map_err(|_| format!("{} is not UTF-8 text", rel.display()))
}

/// SHA-256 (hex) and length of everything `r` yields, streamed.
pub fn sha256_of(mut r: impl Read) -> io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((super::hex(&h.finalize()), n))
}

/// SHA-256 and length of `root/rel` (bounded by [`MAX_FILE_BYTES`], no link followed).
pub fn hash_file(root: &Path, rel: &Path) -> Result<(String, u64), String> {
    let (f, _) = open(root, rel, MAX_FILE_BYTES)?;
    sha256_of(f.take(MAX_FILE_BYTES + 1)).map_err(|e| format!("{}: {e}", rel.display()))
}

/// Everything under `root`: regular files as relative `/`-joined paths (sorted), and a
/// problem for each entry that is not a regular file or directory (links above all), or when
/// the tree is too large or too deep. Directories are entered only when they are not links.
pub struct Listing {
    pub files: Vec<String>,
    pub problems: Vec<(String, String)>,
}

pub fn list(root: &Path) -> Listing {
    let mut out = Listing { files: Vec::new(), problems: Vec::new() };
    let mut stack: Vec<(PathBuf, usize)> = vec![(PathBuf::new(), 0)];
    let mut seen = 0usize;
    while let Some((dir, depth)) = stack.pop() {
        let entries = match std::fs::read_dir(root.join(&dir)) {
            Ok(e) => e,
            Err(e) => {
                out.problems.push((slash(&dir), format!("cannot list it: {e}")));
                continue;
            }
        };
        for e in entries {
            seen += 1;
            if seen > MAX_ENTRIES {
                out.problems
                    .push((".".into(), format!("more than {MAX_ENTRIES} entries; the rest were not looked at")));
                return out;
            }
            let Ok(e) = e else { continue };
            let rel = dir.join(e.file_name());
            let name = slash(&rel);
            let Some(_) = e.file_name().to_str() else {
                out.problems.push((name, "its name is not UTF-8".into()));
                continue;
            };
            match std::fs::symlink_metadata(root.join(&rel)) {
                Ok(m) if m.file_type().is_symlink() => {
                    let target =
                        std::fs::read_link(root.join(&rel)).map(|t| t.display().to_string()).unwrap_or_default();
                    out.problems
                        .push((name, format!("a symbolic link (to {target}); links are refused, not followed")));
                }
                Ok(m) if m.is_dir() && depth + 1 >= MAX_DEPTH => {
                    out.problems.push((name, format!("deeper than {MAX_DEPTH} levels")));
                }
                Ok(m) if m.is_dir() => stack.push((rel, depth + 1)),
                Ok(m) if m.is_file() => out.files.push(name),
                Ok(_) => out.problems.push((name, "not a regular file or directory (a FIFO, socket or device)".into())),
                Err(e) => out.problems.push((name, e.to_string())),
            }
        }
    }
    out.files.sort();
    out.problems.sort();
    out
}

/// `p`'s components joined by `/` (bundle paths are written this way on every system).
pub fn slash(p: &Path) -> String {
    p.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_inside() {
        assert!(inside("acme/box/w/run_1/w.json").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "a/", "a\\b", "a\0b"] {
            assert!(inside(bad).is_err(), "{bad:?} accepted");
        }
        assert!(inside("../x").unwrap_err().contains(".."));
        assert!(inside("/etc/passwd").unwrap_err().contains("absolute"));
    }

    #[test]
    fn links_are_refused_at_every_component() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("real")).unwrap();
        std::fs::write(d.path().join("real/f"), "x").unwrap();
        std::os::unix::fs::symlink(d.path().join("real"), d.path().join("dirlink")).unwrap();
        std::os::unix::fs::symlink(d.path().join("real/f"), d.path().join("filelink")).unwrap();
        assert_eq!(regular_file(d.path(), Path::new("real/f")), Ok(1));
        assert!(regular_file(d.path(), Path::new("dirlink/f")).unwrap_err().contains("symbolic link"));
        assert!(read(d.path(), Path::new("filelink"), 10).unwrap_err().contains("symbolic link"));
        assert!(read(d.path(), Path::new("real/f"), 0).unwrap_err().contains("limit"));
        let l = list(d.path());
        assert_eq!(l.files, vec!["real/f"]);
        assert_eq!(l.problems.len(), 2, "{:?}", l.problems);
        assert!(l.problems.iter().all(|(_, why)| why.contains("symbolic link")));
    }
}
