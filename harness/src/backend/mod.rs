//! Where the math runs: the CPU through candle, with the `cuda` feature an NVIDIA GPU through
//! candle, or a vendor's runner over Runner Protocol v1 (`external:FILE.toml`, see
//! [`external`]). Asking for a backend that cannot run gives an error that says why, never a
//! silent fall-back to the CPU.

pub mod external;

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Debug)]
pub enum Backend {
    Cpu,
    /// `cuda:N`: GPU N as NVML numbers them (effbench sets `CUDA_DEVICE_ORDER=PCI_BUS_ID` before
    /// CUDA starts, so CUDA's ordinal N and NVML's index N are the same card), opened once.
    #[cfg(feature = "cuda")]
    Cuda {
        ordinal: usize,
        device: candle_core::Device,
    },
    /// A runner described by a TOML file; effbench's own reference math stays on the CPU.
    External(Box<external::RunnerConfig>),
}

impl PartialEq for Backend {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Backend {}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BackendError {
    #[error(
        "backend {0:?}: this effbench was built without CUDA support; rebuild with \
         `cargo build --release -p effbench --features cuda` on a machine with the CUDA toolkit \
         (README.md, \"CUDA GPUs\"), or use --backend cpu"
    )]
    CudaNotCompiled(String),
    #[error("backend {0:?}: {1}; check `nvidia-smi`, pick another GPU with cuda:N, or use --backend cpu")]
    CudaUnavailable(String, String),
    #[error("backend external: {0}")]
    External(String),
    #[error("unknown backend {0:?}; valid: cpu, cuda:N, external:PATH.toml")]
    Unknown(String),
}

/// `cuda` or `cuda:N` -> N.
fn cuda_ordinal(s: &str) -> Option<Result<usize, BackendError>> {
    let rest = s.strip_prefix("cuda")?;
    Some(match rest {
        "" => Ok(0),
        _ => rest.strip_prefix(':').and_then(|n| n.parse().ok()).ok_or_else(|| BackendError::Unknown(s.to_string())),
    })
}

impl FromStr for Backend {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "cpu" {
            return Ok(Backend::Cpu);
        }
        if let Some(ordinal) = cuda_ordinal(s) {
            let ordinal = ordinal?;
            return open_cuda(s, ordinal);
        }
        if let Some(path) = s.strip_prefix("external:") {
            return external::RunnerConfig::load(std::path::Path::new(path))
                .map(|c| Backend::External(Box::new(c)))
                .map_err(|e| BackendError::External(e.to_string()));
        }
        Err(BackendError::Unknown(s.to_string()))
    }
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(s: &str, _ordinal: usize) -> Result<Backend, BackendError> {
    Err(BackendError::CudaNotCompiled(s.to_string()))
}

#[cfg(feature = "cuda")]
fn open_cuda(s: &str, ordinal: usize) -> Result<Backend, BackendError> {
    match candle_core::Device::new_cuda(ordinal) {
        Ok(device) => Ok(Backend::Cuda { ordinal, device }),
        Err(e) => Err(BackendError::CudaUnavailable(s.to_string(), format!("cannot open CUDA device {ordinal}: {e}"))),
    }
}

/// Makes CUDA number GPUs as NVML does (by PCI bus id), so `cuda:N` is metered by NVML's GPU
/// N. Must run before anything starts CUDA; a value the user set is kept (and then `cuda:N`
/// and `gpu:N` may be different cards: the result's NVML detail names the card metered).
pub fn align_gpu_numbering() {
    if std::env::var_os("CUDA_DEVICE_ORDER").is_none() {
        // Single-threaded at this point (called first thing in main).
        std::env::set_var("CUDA_DEVICE_ORDER", "PCI_BUS_ID");
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Cpu => f.write_str("cpu"),
            #[cfg(feature = "cuda")]
            Backend::Cuda { ordinal, .. } => write!(f, "cuda:{ordinal}"),
            Backend::External(c) => write!(f, "external:{}", c.path.display()),
        }
    }
}

impl Backend {
    pub fn device(&self) -> candle_core::Device {
        match self {
            Backend::Cpu | Backend::External(_) => candle_core::Device::Cpu,
            #[cfg(feature = "cuda")]
            Backend::Cuda { device, .. } => device.clone(),
        }
    }

    /// Wait until queued work is done, so a window edge holds exactly its work.
    pub fn synchronize(&self) -> candle_core::Result<()> {
        self.device().synchronize()
    }

    /// The energy domains this backend's work draws on. A GPU backend's host CPU is not
    /// among them: its energy is counted only where a sensor measures it (see
    /// [`Backend::host_domains`]), never estimated into a GPU figure.
    pub fn domains(&self) -> Vec<String> {
        match self {
            Backend::Cpu => vec!["cpu".into()],
            // The runner's device (its TOML's `domain`, metered by effbench's own sensors where
            // one covers it, such as a hwmon `npu` chip; else only through the runner's `stats`),
            // and the host CPU, which still does its share.
            Backend::External(c) => {
                let mut d = vec!["cpu".to_string()];
                d.extend(c.domain.iter().filter(|x| *x != "cpu").cloned());
                d
            }
            #[cfg(feature = "cuda")]
            Backend::Cuda { ordinal, .. } => vec![format!("gpu:{ordinal}")],
        }
    }

    /// Domains that also draw power for this backend's work and are metered when a measured
    /// source covers them (the host CPU that feeds a GPU), without an estimate standing in.
    pub fn host_domains(&self) -> Vec<String> {
        match self {
            Backend::Cpu | Backend::External(_) => vec![],
            #[cfg(feature = "cuda")]
            Backend::Cuda { .. } => vec!["cpu".into()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_refuses_the_rest_with_reasons() {
        assert_eq!("cpu".parse::<Backend>(), Ok(Backend::Cpu));
        let e = "external:/nonexistent/r.toml".parse::<Backend>().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/r.toml") && e.contains("cannot read"), "{e}");
        assert!(matches!("tpu".parse::<Backend>(), Err(BackendError::Unknown(_))));
        assert!(matches!("cuda:x".parse::<Backend>(), Err(BackendError::Unknown(_))));
        assert!(matches!("cudax".parse::<Backend>(), Err(BackendError::Unknown(_))));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_build_it() {
        for s in ["cuda", "cuda:0", "cuda:3"] {
            let e = s.parse::<Backend>().unwrap_err();
            assert_eq!(e, BackendError::CudaNotCompiled(s.to_string()));
            assert!(e.to_string().contains("--features cuda"), "{e}");
        }
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_device_that_does_not_exist_is_a_clear_error() {
        // No machine has 10,000 GPUs: opening fails with a message, never a CPU fall-back.
        let e = "cuda:9999".parse::<Backend>().unwrap_err();
        assert!(matches!(e, BackendError::CudaUnavailable(..)), "{e}");
        assert!(e.to_string().contains("nvidia-smi"), "{e}");
    }
}
