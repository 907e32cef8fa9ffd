//! The runner TOML (`--backend external:PATH.toml`): which program speaks Runner Protocol v1
//! for a vendor's device, and how long effbench waits for it. Unknown keys are refused, so a
//! typo cannot silently leave a default in place; errors name the file, line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Watchdog default for `startup_timeout_s` (model compilation on an NPU can take minutes).
const DEFAULT_STARTUP_TIMEOUT_S: f64 = 120.0;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    name: String,
    command: Vec<String>,
    timeout_s: f64,
    #[serde(default)]
    startup_timeout_s: Option<f64>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    precision: Option<String>,
    #[serde(default)]
    batches_per_issue: Option<usize>,
    #[serde(default)]
    domain: Option<String>,
}

/// A validated runner description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerConfig {
    /// The TOML file it came from (for messages and the result file).
    pub path: PathBuf,
    /// Short name used in every message about this runner.
    pub name: String,
    /// argv; a relative program or argument path that exists next to the TOML is resolved
    /// against the TOML's directory.
    pub command: Vec<String>,
    /// Per-message watchdog while the workload runs (mark, issue, flush, stats).
    pub timeout: Duration,
    /// Watchdog for hello, load, load_samples and warmup.
    pub startup_timeout: Duration,
    /// Extra environment for the runner.
    pub env: BTreeMap<String, String>,
    /// Precision effbench asks for in `load` (default `f32`); the runner's reply decides which
    /// correctness check applies.
    pub precision: String,
    /// Batches carried by one `issue` message; `None` = a whole pass in one message.
    pub batches_per_issue: Option<usize>,
    /// The energy domain of the runner's device (`npu:0`, `gpu:0`, `cpu`): what effbench's own
    /// sensors meter for it (a hwmon `npu` or `amdgpu` chip, NVML) and what `device` scope
    /// covers. When the runner's `hello` names a domain too, the two must agree.
    pub domain: Option<String>,
    /// SHA-256 (hex) of the TOML text as read: the result records it (`backend.runner_config_sha256`).
    pub sha256: String,
    /// The TOML's bytes as read, the ones `sha256` hashes: a run writes them beside its result
    /// as `<workload>.runner.toml` ([`super::process::config_copy_path`]).
    pub bytes: Vec<u8>,
}

/// Precisions a runner may request or declare.
pub const PRECISIONS: &[&str] = &["f32", "f16", "bf16", "int8"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("runner file {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    #[error("runner file {}:{line}:{column}: {message}", path.display())]
    Syntax { path: PathBuf, line: usize, column: usize, message: String },
    #[error("runner file {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl RunnerConfig {
    pub fn load(path: &Path) -> Result<RunnerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            message: format!(
                "cannot read it: {e}; `--backend external:PATH.toml` needs a runner TOML (see docs/runner-protocol.md)"
            ),
        })?;
        Self::parse(&text, path)
    }

    /// Parses TOML text; `path` names the file in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<RunnerConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| effbench_models::recipe::line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Syntax { path: path.to_path_buf(), line, column, message: e.message().trim().to_string() }
        })?;
        let invalid = |message: String| ConfigError::Invalid { path: path.to_path_buf(), message };
        if raw.name.trim().is_empty() {
            return Err(invalid("`name` must not be empty".into()));
        }
        if raw.command.is_empty() || raw.command[0].is_empty() {
            return Err(invalid("`command` must name a program: command = [\"./runner\", \"--flag\"]".into()));
        }
        let secs = |v: f64, key: &str| -> Result<Duration, ConfigError> {
            if v.is_finite() && v > 0.0 && v <= 86_400.0 {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(invalid(format!("`{key}` must be a number of seconds in (0, 86400], got {v}")))
            }
        };
        let timeout = secs(raw.timeout_s, "timeout_s")?;
        let startup_timeout =
            secs(raw.startup_timeout_s.unwrap_or(DEFAULT_STARTUP_TIMEOUT_S.max(raw.timeout_s)), "startup_timeout_s")?;
        let precision = raw.precision.unwrap_or_else(|| "f32".into());
        if !PRECISIONS.contains(&precision.as_str()) {
            return Err(invalid(format!("`precision` {precision:?} is not one of {}", PRECISIONS.join(", "))));
        }
        if raw.batches_per_issue == Some(0) {
            return Err(invalid("`batches_per_issue` must be at least 1 (leave it out for a whole pass)".into()));
        }
        if let Some(d) = &raw.domain {
            if !is_device_domain(d) {
                return Err(invalid(format!(
                    "`domain` {d:?} is not a device's energy domain: give `cpu` or KIND:N such as `npu:0` or `gpu:0`"
                )));
            }
        }
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let command = raw.command.iter().map(|a| resolve(dir, a)).collect();
        let bytes = text.as_bytes().to_vec();
        Ok(RunnerConfig {
            path: path.to_path_buf(),
            name: raw.name,
            command,
            timeout,
            startup_timeout,
            env: raw.env,
            precision,
            batches_per_issue: raw.batches_per_issue,
            domain: raw.domain,
            sha256: hex_sha256(&bytes),
            bytes,
        })
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// `cpu`, or a lowercase kind and an index (`npu:0`, `gpu:1`, `accel:0`); never `dram` or the
/// wall (`system`), which are not devices that run work.
pub fn is_device_domain(d: &str) -> bool {
    if d == "cpu" {
        return true;
    }
    match d.split_once(':') {
        Some((kind, n)) => {
            !kind.is_empty()
                && kind.len() <= 16
                && kind.bytes().all(|b| b.is_ascii_lowercase())
                && !n.is_empty()
                && n.len() <= 4
                && n.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// A relative argument that names an existing file or directory next to the TOML becomes that
/// path; anything else (a flag, a program on PATH such as `python3`) is kept as written.
fn resolve(dir: &Path, arg: &str) -> String {
    let p = Path::new(arg);
    if p.is_relative() && dir.join(p).exists() {
        let joined = dir.join(p);
        return std::path::absolute(&joined).unwrap_or(joined).display().to_string();
    }
    arg.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RunnerConfig, ConfigError> {
        RunnerConfig::parse(text, Path::new("/nonexistent/r.toml"))
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let c = parse("name = \"x\"\ncommand = [\"python3\", \"-u\"]\ntimeout_s = 2.5\n").unwrap();
        assert_eq!(c.name, "x");
        assert_eq!(c.command, vec!["python3", "-u"]);
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(c.startup_timeout, Duration::from_secs(120));
        assert_eq!(c.precision, "f32");
        assert_eq!(c.batches_per_issue, None);
        assert_eq!(c.domain, None);
    }

    #[test]
    fn the_bytes_kept_are_the_ones_hashed() {
        let text = "name = \"x\"\ncommand = [\"a\"]\ntimeout_s = 1\n";
        let c = parse(text).unwrap();
        assert_eq!(c.bytes, text.as_bytes());
        // As coreutils' sha256sum gives it for these bytes.
        assert_eq!(c.sha256, "49fbc49da04cafcbb032a50743f9836e569b7f573c0f124d0cfaabdbcc30cf54");
    }

    #[test]
    fn a_device_domain_is_taken_and_anything_else_refused() {
        let c = parse("name = \"x\"\ncommand = [\"a\"]\ntimeout_s = 1\ndomain = \"npu:0\"\n").unwrap();
        assert_eq!(c.domain.as_deref(), Some("npu:0"));
        for bad in ["system", "dram", "NPU:0", "npu:", "npu:x", ":0", "npu:0:1"] {
            let e = parse(&format!("name = \"x\"\ncommand = [\"a\"]\ntimeout_s = 1\ndomain = \"{bad}\"\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("`domain`") && e.contains("r.toml"), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_key_is_refused_with_line() {
        let e = parse("name = \"x\"\ncommand = [\"a\"]\ntimeout_s = 1\ntimout = 3\n").unwrap_err().to_string();
        assert!(e.contains("r.toml:4:"), "{e}");
        assert!(e.contains("timout"), "{e}");
    }

    #[test]
    fn missing_and_bad_values_are_refused() {
        let e = parse("name = \"x\"\ncommand = [\"a\"]\n").unwrap_err().to_string();
        assert!(e.contains("timeout_s"), "{e}");
        let e = parse("name = \"x\"\ncommand = []\ntimeout_s = 1\n").unwrap_err().to_string();
        assert!(e.contains("`command`"), "{e}");
        let e = parse("name = \"x\"\ncommand = [\"a\"]\ntimeout_s = -1\n").unwrap_err().to_string();
        assert!(e.contains("timeout_s"), "{e}");
        let e = parse("name = \"x\"\ncommand = [\"a\"]\ntimeout_s = 1\nprecision = \"fp8\"\n").unwrap_err().to_string();
        assert!(e.contains("fp8"), "{e}");
    }

    #[test]
    fn relative_paths_resolve_against_the_toml_directory() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("run.py"), "").unwrap();
        let toml = d.path().join("r.toml");
        let c = RunnerConfig::parse(
            "name = \"x\"\ncommand = [\"python3\", \"run.py\", \"--fast\"]\ntimeout_s = 1\n",
            &toml,
        )
        .unwrap();
        assert_eq!(c.command[0], "python3");
        assert_eq!(c.command[1], d.path().join("run.py").display().to_string());
        assert_eq!(c.command[2], "--fast");
    }
}
