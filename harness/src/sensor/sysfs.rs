//! The small file-system layer under the sysfs sensors ([`super::rapl`], [`super::hwmon`]).
//!
//! Every sysfs read goes through the [`Fs`] trait, so tests can inject the errors real file
//! modes cannot produce when tests run as root (`EACCES` on `energy_uj`, `ENODATA` from a
//! hwmon driver, garbage contents). The helpers here turn I/O errors and raw text into the
//! crate's [`SensorError`] with the path, the raw value and what to do next.
//!
//! The root is a parameter everywhere (`discover(root, fs)`): [`sysfs_root`] gives `/sys` or
//! `$EFFBENCH_SYSFS_ROOT`, which also serves containers that bind-mount the host's powercap
//! tree elsewhere (Docker masks `/sys/devices/virtual/powercap` by default; sensors.md §1.3).

use std::io;
use std::path::{Path, PathBuf};

use super::{SensorError, Status};

/// Environment variable that replaces `/sys` as the sysfs root (tests, containers).
pub const SYSFS_ROOT_ENV: &str = "EFFBENCH_SYSFS_ROOT";

/// `$EFFBENCH_SYSFS_ROOT` if set and non-empty, else `/sys`.
pub fn sysfs_root() -> PathBuf {
    match std::env::var_os(SYSFS_ROOT_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from("/sys"),
    }
}

/// The file-system operations the sysfs sensors need, and nothing more.
///
/// Contract: paths are absolute and used exactly as given (no implicit root). `read_dir`
/// returns full paths (`dir.join(name)`) sorted by name, so discovery is deterministic.
/// Implementations are `Send + Sync`: one `Arc<dyn Fs>` is shared by every sensor, and sensors
/// live on the meter's thread. Cost: one syscall-sized operation per call; sysfs attributes are
/// a few bytes.
pub trait Fs: Send + Sync {
    fn read_to_string(&self, path: &Path) -> io::Result<String>;
    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>>;
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf>;

    /// Reads `path` into `buf` (cleared first). The real file system overrides this so that a
    /// sensor's hot path does not allocate; the default delegates to `read_to_string`.
    fn read_into(&self, path: &Path, buf: &mut String) -> io::Result<()> {
        buf.clear();
        buf.push_str(&self.read_to_string(path)?);
        Ok(())
    }
}

/// The real file system.
#[derive(Copy, Clone, Debug, Default)]
pub struct RealFs;

impl Fs for RealFs {
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let mut out = std::fs::read_dir(path)?.map(|e| e.map(|e| e.path())).collect::<io::Result<Vec<_>>>()?;
        out.sort();
        Ok(out)
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::canonicalize(path)
    }

    fn read_into(&self, path: &Path, buf: &mut String) -> io::Result<()> {
        use std::io::Read;
        buf.clear();
        // Short paths are turned into C strings on the stack; a sysfs value fits the buffer's
        // capacity after the first read, so this does not allocate in steady state.
        std::fs::File::open(path)?.read_to_string(buf).map(|_| ())
    }
}

/// Errors a driver returns while its device is present but has no valid value right now
/// (sensors.md §2.3: `ENODATA`, `EIO`, `EOPNOTSUPP`; qaic returns `ENODEV` during a reset;
/// `EAGAIN`/`EBUSY` from firmware mailboxes). The meter retries these.
const TRANSIENT_ERRNOS: [i32; 6] = [
    61, // ENODATA
    5,  // EIO
    95, // EOPNOTSUPP
    19, // ENODEV
    11, // EAGAIN
    16, // EBUSY
];

/// Turns an I/O error on `path` into a [`SensorError`]: permission problems carry `hint`
/// (what to do), transient driver errors become [`SensorError::Transient`], the rest `Io`.
pub fn read_error(source_id: &str, path: &Path, error: io::Error, hint: &str) -> SensorError {
    if error.kind() == io::ErrorKind::PermissionDenied {
        return SensorError::PermissionDenied {
            source_id: source_id.to_string(),
            path: path.to_path_buf(),
            hint: hint.to_string(),
        };
    }
    if error.raw_os_error().is_some_and(|e| TRANSIENT_ERRNOS.contains(&e)) {
        return SensorError::Transient {
            source_id: source_id.to_string(),
            message: format!("{}: {error}", path.display()),
        };
    }
    SensorError::Io { source_id: source_id.to_string(), path: path.to_path_buf(), error }
}

/// Parses a sysfs integer (decimal, surrounding whitespace and the trailing newline allowed).
/// Anything else is a [`SensorError::Parse`] naming the path and the raw text.
pub fn parse_u64(source_id: &str, path: &Path, raw: &str, expected: &str) -> Result<u64, SensorError> {
    raw.trim().parse::<u64>().map_err(|_| SensorError::Parse {
        source_id: source_id.to_string(),
        path: path.to_path_buf(),
        raw: raw.to_string(),
        expected: expected.to_string(),
    })
}

/// Reads a whole attribute as trimmed text.
pub fn read_trimmed(fs: &dyn Fs, path: &Path) -> io::Result<String> {
    fs.read_to_string(path).map(|s| s.trim().to_string())
}

/// One integer attribute read over and over by a sensor, with its reusable buffer.
#[derive(Debug)]
pub struct Attr {
    path: PathBuf,
    buf: String,
}

impl Attr {
    pub fn new(path: PathBuf) -> Attr {
        Attr { path, buf: String::with_capacity(32) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads and parses the attribute. `expected` describes the value for parse errors (e.g.
    /// "an integer count of microjoules"); `hint` says how to fix a permission error.
    pub fn read_u64(&mut self, fs: &dyn Fs, source_id: &str, expected: &str, hint: &str) -> Result<u64, SensorError> {
        fs.read_into(&self.path, &mut self.buf).map_err(|e| read_error(source_id, &self.path, e, hint))?;
        parse_u64(source_id, &self.path, &self.buf, expected)
    }
}

/// The discovery status for a probe read that failed: permission problems become
/// [`Status::PermissionDenied`] with `fix`, everything else [`Status::Unavailable`] with the
/// error's own message (which names the path and, for garbage, the raw value).
pub fn status_for(error: &SensorError, fix: impl FnOnce() -> String) -> Status {
    match error {
        SensorError::PermissionDenied { .. } => Status::PermissionDenied { fix: fix() },
        other => Status::Unavailable { reason: other.to_string() },
    }
}

/// Test doubles: an [`Fs`] that injects errors per path, and a builder for fake sysfs trees.
/// Used by this crate's tests; public so integration tests and the hidden end-to-end paths can
/// use them too. Nothing here touches the real `/sys`.
pub mod testing {
    use std::collections::HashMap;
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex, PoisonError};

    use super::{Fs, RealFs};

    /// What to do instead of the real operation on one path.
    #[derive(Clone, Debug, PartialEq)]
    pub enum Fault {
        /// `EACCES`, as a non-root user gets on `energy_uj` since the CVE-2020-8694 fix.
        PermissionDenied,
        /// `ENOENT`.
        Missing,
        /// A raw OS error (e.g. 61 = `ENODATA` from a hwmon driver).
        Errno(i32),
        /// Reads return this text instead of the file's contents.
        Content(String),
    }

    /// Delegates to an inner [`Fs`] (the real one over a temp dir, usually) except on paths
    /// with an injected [`Fault`]. Faults can be set and cleared while sensors are running.
    pub struct FaultFs {
        inner: Arc<dyn Fs>,
        faults: Mutex<HashMap<PathBuf, Fault>>,
    }

    impl FaultFs {
        pub fn new(inner: Arc<dyn Fs>) -> FaultFs {
            FaultFs { inner, faults: Mutex::new(HashMap::new()) }
        }

        /// Over the real file system.
        pub fn real() -> FaultFs {
            FaultFs::new(Arc::new(RealFs))
        }

        pub fn set(&self, path: impl Into<PathBuf>, fault: Fault) {
            self.faults.lock().unwrap_or_else(PoisonError::into_inner).insert(path.into(), fault);
        }

        pub fn clear(&self, path: &Path) {
            self.faults.lock().unwrap_or_else(PoisonError::into_inner).remove(path);
        }

        fn fault(&self, path: &Path) -> Option<Fault> {
            self.faults.lock().unwrap_or_else(PoisonError::into_inner).get(path).cloned()
        }
    }

    fn error_for(fault: &Fault) -> Option<io::Error> {
        match fault {
            Fault::PermissionDenied => Some(io::Error::from_raw_os_error(13)),
            Fault::Missing => Some(io::Error::from_raw_os_error(2)),
            Fault::Errno(e) => Some(io::Error::from_raw_os_error(*e)),
            Fault::Content(_) => None,
        }
    }

    impl Fs for FaultFs {
        fn read_to_string(&self, path: &Path) -> io::Result<String> {
            match self.fault(path) {
                Some(Fault::Content(text)) => Ok(text),
                Some(f) => Err(error_for(&f).unwrap_or_else(|| io::Error::other("fault"))),
                None => self.inner.read_to_string(path),
            }
        }

        fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
            match self.fault(path).as_ref().and_then(error_for) {
                Some(e) => Err(e),
                None => self.inner.read_dir(path),
            }
        }

        fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
            match self.fault(path).as_ref().and_then(error_for) {
                Some(e) => Err(e),
                None => self.inner.canonicalize(path),
            }
        }
    }

    /// Builds sysfs-shaped trees under `root` the way the kernel lays them out: devices under
    /// `devices/`, and `class/<class>/<entry>` as symlinks to them. Values are written
    /// atomically (temp file + rename), so a sensor polled from another thread never sees a
    /// half-written value.
    #[derive(Clone, Debug)]
    pub struct FakeTree {
        pub root: PathBuf,
    }

    impl FakeTree {
        pub fn new(root: &Path) -> FakeTree {
            FakeTree { root: root.to_path_buf() }
        }

        /// Writes `text` to `path` (relative to the root, or absolute), creating parents.
        pub fn write(&self, path: impl AsRef<Path>, text: &str) -> io::Result<()> {
            let path = self.root.join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            crate::fsutil::write_atomic(&path, text.as_bytes())
        }

        /// `class/powercap/<zone>` (e.g. `intel-rapl:0:2`), a symlink to the zone's directory
        /// under `devices/virtual/powercap/<control>/...` (subzones nest in their parent, as
        /// in the kernel). Writes `name`, `max_energy_range_uj`, `energy_uj` and `enabled`,
        /// and the control-type entry (`class/powercap/intel-rapl`). Returns the class path.
        pub fn rapl_zone(&self, zone: &str, name: &str, max_uj: u64, energy_uj: u64) -> io::Result<PathBuf> {
            let mut parts = zone.split(':');
            let control = parts.next().unwrap_or(zone);
            let mut dev = self.root.join("devices/virtual/powercap").join(control);
            let class = self.root.join("class/powercap");
            std::fs::create_dir_all(&dev)?;
            std::fs::create_dir_all(&class)?;
            self.link(&dev, &class.join(control))?;
            self.write(dev.join("enabled"), "1\n")?;
            let mut prefix = control.to_string();
            for id in parts {
                prefix = format!("{prefix}:{id}");
                dev = dev.join(&prefix);
            }
            std::fs::create_dir_all(&dev)?;
            self.write(dev.join("name"), &format!("{name}\n"))?;
            self.write(dev.join("max_energy_range_uj"), &format!("{max_uj}\n"))?;
            self.write(dev.join("energy_uj"), &format!("{energy_uj}\n"))?;
            self.write(dev.join("enabled"), "1\n")?;
            let entry = class.join(zone);
            self.link(&dev, &entry)?;
            Ok(entry)
        }

        /// Sets a RAPL zone's counter.
        pub fn set_energy_uj(&self, zone: &str, uj: u64) -> io::Result<()> {
            self.write(Path::new("class/powercap").join(zone).join("energy_uj"), &format!("{uj}\n"))
        }

        /// `class/hwmon/hwmon<n>`, a symlink to `devices/pci0000:00/<bus>/hwmon/hwmon<n>` (or
        /// `devices/virtual/hwmon/hwmon<n>` without a bus), with `name` and, given a bus, a
        /// `device` symlink to the bus device. Returns the class path; write attributes there.
        pub fn hwmon(&self, n: u32, name: &str, bus: Option<&str>) -> io::Result<PathBuf> {
            let hw = format!("hwmon{n}");
            let dev = match bus {
                Some(b) => {
                    let device = self.root.join("devices/pci0000:00").join(b);
                    let dev = device.join("hwmon").join(&hw);
                    std::fs::create_dir_all(&dev)?;
                    self.link(&device, &dev.join("device"))?;
                    dev
                }
                None => self.root.join("devices/virtual/hwmon").join(&hw),
            };
            std::fs::create_dir_all(&dev)?;
            self.write(dev.join("name"), &format!("{name}\n"))?;
            let class = self.root.join("class/hwmon");
            std::fs::create_dir_all(&class)?;
            let entry = class.join(hw);
            self.link(&dev, &entry)?;
            Ok(entry)
        }

        fn link(&self, target: &Path, link: &Path) -> io::Result<()> {
            if link.symlink_metadata().is_ok() {
                return Ok(());
            }
            #[cfg(unix)]
            return std::os::unix::fs::symlink(target, link);
            #[cfg(not(unix))]
            return Err(io::Error::new(io::ErrorKind::Unsupported, format!("no symlinks for {}", target.display())));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::testing::{FakeTree, Fault, FaultFs};
    use super::*;

    #[test]
    fn sysfs_root_defaults_to_sys() {
        // Only checks the default branch when the variable is unset in this process.
        if std::env::var_os(SYSFS_ROOT_ENV).is_none() {
            assert_eq!(sysfs_root(), PathBuf::from("/sys"));
        }
    }

    #[test]
    fn fault_fs_injects_errors_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        let tree = FakeTree::new(dir.path());
        tree.write("a/value", "42\n").unwrap();
        let path = dir.path().join("a/value");
        let fs = Arc::new(FaultFs::real());
        let mut attr = Attr::new(path.clone());
        assert_eq!(attr.read_u64(fs.as_ref(), "t", "an integer", "fix it").unwrap(), 42);

        fs.set(&path, Fault::PermissionDenied);
        let err = attr.read_u64(fs.as_ref(), "t", "an integer", "fix it").unwrap_err();
        assert!(matches!(&err, SensorError::PermissionDenied { hint, .. } if hint == "fix it"), "{err:?}");
        assert!(matches!(status_for(&err, || "do this".into()), Status::PermissionDenied { fix } if fix == "do this"));

        fs.set(&path, Fault::Errno(61));
        assert!(matches!(attr.read_u64(fs.as_ref(), "t", "x", "h"), Err(SensorError::Transient { .. })));
        fs.set(&path, Fault::Missing);
        assert!(matches!(attr.read_u64(fs.as_ref(), "t", "x", "h"), Err(SensorError::Io { .. })));
        fs.set(&path, Fault::Content("12abc\n".into()));
        match attr.read_u64(fs.as_ref(), "t", "an integer", "h") {
            Err(SensorError::Parse { raw, path: p, .. }) => assert_eq!((raw.as_str(), p), ("12abc\n", path.clone())),
            other => panic!("expected a parse error, got {other:?}"),
        }
        fs.clear(&path);
        assert_eq!(attr.read_u64(fs.as_ref(), "t", "x", "h").unwrap(), 42);
        assert!(fs.read_dir(dir.path()).unwrap().contains(&dir.path().join("a")));
    }

    #[test]
    fn parse_rejects_empty_and_negative() {
        let p = Path::new("/x");
        assert!(parse_u64("t", p, "", "n").is_err());
        assert!(parse_u64("t", p, "-5\n", "n").is_err());
        assert_eq!(parse_u64("t", p, " 7 \n", "n").unwrap(), 7);
    }
}
