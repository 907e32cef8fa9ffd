//! Small OS helpers: atomic writes (so a crash never leaves half a result file), the
//! process's peak resident memory (so each repeat can report its own peak), and signalling a
//! child's process group.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` so that readers see either the old file or the complete new one.
///
/// The bytes go to a temporary file in the same directory (same filesystem, so the rename is
/// atomic), which is fsynced and then renamed over `path`; the directory is fsynced afterwards
/// (best effort) so the rename itself survives a power cut. The temporary name is unique per
/// process and call, so concurrent writers never share one. On error the temporary file is
/// removed and `path` is untouched. The parent directory must exist.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (dir, tmp) = temp_path(path)?;
    // An interrupt (see `crate::interrupt`) waits for this write, so it never leaves `tmp`.
    let _guard = crate::interrupt::writes();
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // Persist the directory entry too. Not every filesystem lets a directory be opened or
    // synced; the data itself is already safe, so a failure here is not an error.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Proves that [`write_atomic`] could write `path`, without touching it: creates and removes
/// the temporary file a write would use, and refuses a `path` that is a directory.
pub fn probe_atomic(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Err(io::Error::new(io::ErrorKind::IsADirectory, format!("{} is a directory", path.display())));
    }
    let (_, tmp) = temp_path(path)?;
    OpenOptions::new().write(true).create_new(true).open(&tmp)?;
    fs::remove_file(&tmp)
}

/// The directory of `path` and a fresh temporary name beside it: `.NAME.tmp.PID.N`, unique per
/// process and call (`crate::run::out` recognises and cleans up stale ones by this shape).
fn temp_path(path: &Path) -> io::Result<(PathBuf, PathBuf)> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{} does not name a file", path.display()))
    })?;
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}.{}", std::process::id(), n));
    let tmp = dir.join(tmp_name);
    Ok((dir, tmp))
}

/// Serialises `value` as pretty JSON with a trailing newline and writes it with [`write_atomic`].
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// The process's peak resident set size in bytes (`VmHWM` in `/proc/self/status`), or `None`
/// where that file does not exist (not Linux) or cannot be parsed.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

/// CPU time (user + system, in seconds) this process has used so far, every thread
/// included, finished ones too (`getrusage(RUSAGE_SELF)`, microsecond resolution); `None`
/// where that call does not exist or fails. The difference over a window is the work's own
/// CPU time, which other processes on a shared machine do not inflate the way they inflate
/// wall-clock time.
pub fn process_cpu_s() -> Option<f64> {
    #[cfg(unix)]
    {
        // SAFETY: getrusage writes one `rusage` into the zeroed struct we own.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
            return None;
        }
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        Some(secs(u.ru_utime) + secs(u.ru_stime))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Resets the peak RSS to the current RSS by writing `5` to `/proc/self/clear_refs`
/// (Linux >= 4.0, see the kernel's `Documentation/admin-guide/mm/soft-dirty.rst` and
/// `proc.rst`), so that the next [`peak_rss_bytes`] reports the peak since this call.
/// Returns `false` when the reset is not possible (not Linux, or the write is refused); callers
/// should then label the peak as "since process start".
pub fn reset_peak_rss() -> bool {
    match OpenOptions::new().write(true).open("/proc/self/clear_refs") {
        Ok(mut f) => f.write_all(b"5").is_ok(),
        Err(_) => false,
    }
}

/// Parses the `VmHWM:  1234 kB` line of a `/proc/<pid>/status` text into bytes.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut parts = line["VmHWM:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    let multiplier = match parts.next() {
        Some("kB") | Some("KB") | Some("kb") => 1024,
        Some("B") | None => 1,
        Some("mB") | Some("MB") => 1024 * 1024,
        Some(_) => return None,
    };
    value.checked_mul(multiplier)
}

/// Sends `signal` (`"-TERM"`, `"-KILL"`) to the process group `pgid` leads (a child spawned
/// with `process_group(0)`), grandchildren included. std has no killpg, so the `kill` utility
/// sends it; a group that is already gone is not an error.
pub fn signal_process_group(pgid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args([signal, "--", &format!("-{pgid}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_cpu_time_counts_a_busy_loop() {
        let before = process_cpu_s().expect("getrusage works on Linux");
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(200) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let used = process_cpu_s().unwrap() - before;
        // At least a good part of the 0.2 s spin was on a CPU, even on a loaded machine.
        assert!(used > 0.02 && used < 5.0, "{used}");
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.json")]);
    }

    #[test]
    fn write_atomic_fails_cleanly_without_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("out.json");
        assert!(write_atomic(&path, b"x").is_err());
        assert!(!path.exists());
        assert!(write_atomic(Path::new("/"), b"x").is_err());
    }

    #[test]
    fn write_json_atomic_is_pretty_with_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.json");
        write_json_atomic(&path, &serde_json::json!({"a": 1})).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\n  \"a\": 1\n}\n");
    }

    #[test]
    fn parses_vm_hwm() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    1748 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(1748 * 1024));
        assert_eq!(parse_vm_hwm("VmRSS: 1 kB\n"), None);
        assert_eq!(parse_vm_hwm("VmHWM: lots kB\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn peak_rss_grows_with_touched_memory_and_resets() {
        let before = peak_rss_bytes().expect("VmHWM on Linux");
        let size = 64 * 1024 * 1024;
        let big = vec![1u8; size];
        let during = peak_rss_bytes().unwrap();
        assert!(
            during >= before.max(size as u64),
            "peak {during} should cover a {size}-byte buffer (before: {before})"
        );
        drop(std::hint::black_box(big));
        if reset_peak_rss() {
            let after = peak_rss_bytes().unwrap();
            assert!(after < during, "reset should lower the peak: {after} vs {during}");
        }
    }
}
