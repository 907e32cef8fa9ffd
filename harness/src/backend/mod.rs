//! Where the math runs: the CPU through candle, or a vendor's runner over Runner Protocol v1
//! (`external:FILE.toml`, see [`external`]). `cuda:N` is parsed so that asking for it gives an
//! error that says what is missing, never a silent fall-back to the CPU.

pub mod external;

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    Cpu,
    /// A runner described by a TOML file; effbench's own reference math stays on the CPU.
    External(Box<external::RunnerConfig>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BackendError {
    #[error(
        "backend {0:?}: this effbench was built without CUDA support; rebuild with \
         `cargo build --release -p effbench --features cuda` on a machine with the CUDA toolkit, \
         or use --backend cpu"
    )]
    CudaNotCompiled(String),
    #[error("backend external: {0}")]
    External(String),
    #[error("unknown backend {0:?}; valid: cpu, cuda:N, external:PATH.toml")]
    Unknown(String),
}

impl FromStr for Backend {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Backend::Cpu),
            _ if s.starts_with("cuda") => Err(BackendError::CudaNotCompiled(s.to_string())),
            _ if s.starts_with("external:") => {
                external::RunnerConfig::load(std::path::Path::new(&s["external:".len()..]))
                    .map(|c| Backend::External(Box::new(c)))
                    .map_err(|e| BackendError::External(e.to_string()))
            }
            _ => Err(BackendError::Unknown(s.to_string())),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Cpu => f.write_str("cpu"),
            Backend::External(c) => write!(f, "external:{}", c.path.display()),
        }
    }
}

impl Backend {
    pub fn device(&self) -> candle_core::Device {
        match self {
            Backend::Cpu | Backend::External(_) => candle_core::Device::Cpu,
        }
    }

    /// Wait until queued work is done, so a window edge holds exactly its work.
    pub fn synchronize(&self) -> candle_core::Result<()> {
        self.device().synchronize()
    }

    /// The energy domains this backend's work draws on.
    pub fn domains(&self) -> &'static [&'static str] {
        match self {
            // A runner's own device reports through `stats`; the host CPU still does its share.
            Backend::Cpu | Backend::External(_) => &["cpu"],
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
        let e = "external:/nonexistent/r.toml".parse::<Backend>().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/r.toml") && e.contains("cannot read"), "{e}");
        assert!(matches!("tpu".parse::<Backend>(), Err(BackendError::Unknown(_))));
    }
}
