//! A description of the machine a run happened on, recorded in every result, and the short
//! host class that names baseline folders.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

/// The machine, as far as the harness can tell without privileges. Collecting it never fails:
/// what cannot be read is left empty (or 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemInfo {
    pub hostname: String,
    /// Distribution and version, e.g. `Linux (Ubuntu 24.04)`.
    pub os: String,
    pub kernel: String,
    pub cpu_model: String,
    /// 0 when unknown.
    pub physical_cores: usize,
    pub logical_cores: usize,
    pub memory_bytes: u64,
    /// One entry per accelerator: `NVIDIA H100 80GB HBM3 (0000:01:00.0)`.
    #[serde(default)]
    pub accelerators: Vec<String>,
    /// Cargo features the binary was built with (`cuda`, ...).
    #[serde(default)]
    pub compiled_features: Vec<String>,
    /// The global allocator, e.g. `mimalloc` or `system`.
    pub allocator: String,
    /// Worker threads the run used.
    pub threads: usize,
}

impl SystemInfo {
    /// Describes this machine. `compiled_features`, `allocator` and `threads` are facts of the
    /// binary and the run, so the caller passes them in. Cost: one sysinfo CPU and memory
    /// refresh plus a few small file reads; call once per run.
    pub fn collect(compiled_features: Vec<String>, allocator: &str, threads: usize) -> SystemInfo {
        let sys = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        );
        let cpu_model = sys.cpus().first().map(|c| c.brand().trim().to_string()).unwrap_or_default();
        let os = match (System::name(), System::long_os_version()) {
            (_, Some(long)) => long,
            (Some(name), None) => name,
            (None, None) => std::env::consts::OS.to_string(),
        };
        SystemInfo {
            hostname: System::host_name().unwrap_or_default(),
            os,
            kernel: System::kernel_version().unwrap_or_default(),
            cpu_model,
            physical_cores: System::physical_core_count().unwrap_or(0),
            logical_cores: sys.cpus().len(),
            memory_bytes: sys.total_memory(),
            accelerators: nvidia_gpus(Path::new("/proc/driver/nvidia/gpus")),
            compiled_features,
            allocator: allocator.to_string(),
            threads,
        }
    }

    /// This machine's host class; see [`host_class`].
    pub fn host_class(&self) -> String {
        host_class(&self.cpu_model, self.logical_cores)
    }
}

/// NVIDIA GPUs listed by the driver under `root` (normally `/proc/driver/nvidia/gpus`, one
/// folder per PCI bus id, each with an `information` file holding `Model: <name>`), sorted by
/// bus id. Empty when the folder is absent or unreadable; never fails.
pub fn nvidia_gpus(root: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut gpus: Vec<(String, String)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let bus = e.file_name().to_string_lossy().into_owned();
            let text = fs::read_to_string(e.path().join("information")).ok()?;
            let model = text
                .lines()
                .find_map(|l| l.strip_prefix("Model:"))
                .map(|m| m.trim().to_string())
                .unwrap_or_else(|| "NVIDIA GPU (model unknown)".to_string());
            Some((bus, model))
        })
        .collect();
    gpus.sort();
    gpus.into_iter().map(|(bus, model)| format!("{model} ({bus})")).collect()
}

/// This machine's host class (the folder `baseline record` and `run --baseline auto` use),
/// from the first CPU's model and the logical CPUs visible.
pub fn this_host_class() -> String {
    let s = System::new_with_specifics(RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing()));
    let model = s.cpus().first().map(|c| c.brand().to_string()).unwrap_or_default();
    host_class(&model, s.cpus().len())
}

/// A short, filesystem-safe name for a class of machines, from the CPU model and the logical
/// CPUs visible: `cpu-amd-epyc-2t`, `cpu-intel-xeon-platinum-8380-80t`. Trademark marks,
/// clock speeds, "Processor", "CPU", "N-Core" and "Nth Gen" are dropped; only `[a-z0-9]`
/// words joined by `-` remain. Used for baseline folder names, so it must stay stable.
pub fn host_class(cpu_model: &str, logical_cores: usize) -> String {
    let lower = cpu_model.to_ascii_lowercase().replace("(r)", " ").replace("(tm)", " ");
    // Everything after '@' is the clock speed.
    let lower = lower.split('@').next().unwrap_or("");
    let mut words: Vec<String> = Vec::new();
    for raw in lower.split_whitespace() {
        let is_noise = matches!(raw, "processor" | "cpu" | "gen" | "with")
            || raw.ends_with("-core")
            || raw.ends_with("ghz")
            || (raw.ends_with("th") && raw[..raw.len() - 2].chars().all(|c| c.is_ascii_digit()));
        if is_noise {
            continue;
        }
        let slug: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        words.extend(slug.split('-').filter(|w| !w.is_empty()).map(str::to_string));
    }
    let model = if words.is_empty() { "unknown".to_string() } else { words.join("-") };
    format!("cpu-{model}-{logical_cores}t")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_class_examples() {
        assert_eq!(host_class("AMD EPYC", 2), "cpu-amd-epyc-2t");
        assert_eq!(host_class("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz", 80), "cpu-intel-xeon-platinum-8380-80t");
        assert_eq!(host_class("AMD EPYC 7763 64-Core Processor", 128), "cpu-amd-epyc-7763-128t");
        assert_eq!(host_class("13th Gen Intel(R) Core(TM) i9-13900K", 32), "cpu-intel-core-i9-13900k-32t");
        assert_eq!(host_class("", 4), "cpu-unknown-4t");
        assert_eq!(host_class("Weird/Thing: x_y", 1), "cpu-weird-thing-x-y-1t");
    }

    #[test]
    fn host_class_is_filesystem_safe() {
        let c = host_class("Some  ../../CPU (R) \"name\" @ 3GHz", 8);
        assert!(c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-'), "{c}");
        assert!(!c.contains("--"), "{c}");
    }

    #[test]
    fn nvidia_gpus_from_a_fake_proc_tree() {
        let dir = tempfile::tempdir().unwrap();
        for (bus, model) in [("0000:41:00.0", "NVIDIA A100"), ("0000:01:00.0", "NVIDIA H100")] {
            let d = dir.path().join(bus);
            fs::create_dir(&d).unwrap();
            fs::write(d.join("information"), format!("Model: \t\t {model}\nIRQ:   42\nBus Location: {bus}\n")).unwrap();
        }
        assert_eq!(nvidia_gpus(dir.path()), vec!["NVIDIA H100 (0000:01:00.0)", "NVIDIA A100 (0000:41:00.0)"]);
        assert!(nvidia_gpus(&dir.path().join("absent")).is_empty());
    }

    #[test]
    fn collect_describes_this_machine() {
        let info = SystemInfo::collect(vec!["cuda".into()], "mimalloc", 3);
        assert!(info.logical_cores >= 1);
        assert!(info.memory_bytes > 0);
        assert_eq!(info.compiled_features, vec!["cuda"]);
        assert_eq!((info.allocator.as_str(), info.threads), ("mimalloc", 3));
        assert!(info.host_class().ends_with(&format!("-{}t", info.logical_cores)));
        let json = serde_json::to_string(&info).unwrap();
        let back: SystemInfo = serde_json::from_str(&json).unwrap();
        assert_eq!(back, info);
    }
}
