//! Where the math runs. This version has the CPU; `cuda:N` and `external:FILE` are parsed so
//! that asking for them gives an error that says what is missing, never a silent fall-back to
//! the CPU.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    Cpu,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BackendError {
    #[error(
        "backend {0:?}: this effbench was built without CUDA support; rebuild with \
         `cargo build --release -p effbench --features cuda` on a machine with the CUDA toolkit, \
         or use --backend cpu"
    )]
    CudaNotCompiled(String),
    #[error(
        "backend {0:?}: the runner protocol (external:FILE.toml) is not implemented in this version; use --backend cpu"
    )]
    ExternalNotImplemented(String),
    #[error("unknown backend {0:?}; valid: cpu, cuda:N, external:PATH.toml")]
    Unknown(String),
}

impl FromStr for Backend {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Backend::Cpu),
            _ if s.starts_with("cuda") => Err(BackendError::CudaNotCompiled(s.to_string())),
            _ if s.starts_with("external:") => Err(BackendError::ExternalNotImplemented(s.to_string())),
            _ => Err(BackendError::Unknown(s.to_string())),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Cpu => f.write_str("cpu"),
        }
    }
}

impl Backend {
    pub fn device(&self) -> candle_core::Device {
        match self {
            Backend::Cpu => candle_core::Device::Cpu,
        }
    }

    /// Wait until queued work is done, so a window edge holds exactly its work.
    pub fn synchronize(&self) -> candle_core::Result<()> {
        self.device().synchronize()
    }

    /// The energy domains this backend's work draws on.
    pub fn domains(&self) -> &'static [&'static str] {
        match self {
            Backend::Cpu => &["cpu"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_refuses_the_rest_with_reasons() {
        assert_eq!("cpu".parse::<Backend>(), Ok(Backend::Cpu));
        let e = "cuda:0".parse::<Backend>().unwrap_err().to_string();
        assert!(e.contains("--features cuda"), "{e}");
        let e = "external:r.toml".parse::<Backend>().unwrap_err().to_string();
        assert!(e.contains("not implemented"), "{e}");
        assert!(matches!("tpu".parse::<Backend>(), Err(BackendError::Unknown(_))));
    }
}
