//! Errors of the models crate. Each variant carries what a user needs to fix the problem.

use std::path::PathBuf;

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),

    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{path}: {message}")]
    BadData { path: PathBuf, message: String },

    #[error(
        "{images} holds {n_images} images but {labels} holds {n_labels} labels; the two files of a \
         split must have one label per image (are they from the same download?)"
    )]
    SplitMismatch { images: PathBuf, n_images: usize, labels: PathBuf, n_labels: usize },

    #[error("{path}:{line}:{column}: {message}")]
    BadRecipe { path: PathBuf, line: usize, column: usize, message: String },

    #[error("{path}: recipe {name:?}: {message}")]
    InvalidRecipe { path: PathBuf, name: String, message: String },

    #[error("unknown workload {id:?}; valid ids: {valid}")]
    UnknownWorkload { id: String, valid: String },

    #[error(
        "unknown recipe {name:?} for workload {workload}; shipped recipes: {valid} (or give a path to a .toml file)"
    )]
    UnknownRecipe { name: String, workload: String, valid: String },

    #[error("{0}")]
    Unsupported(String),
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io { path: path.into(), source }
    }
    pub(crate) fn bad_data(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ModelError::BadData { path: path.into(), message: message.into() }
    }
}
