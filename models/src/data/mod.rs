//! Readers for the data the workloads use. Each reader is ours and small: IDX (Fashion-MNIST),
//! CSV (scikit-learn's digits), plain text (Pride and Prejudice), and a seeded generator for
//! the machine-hum frames. Nothing is downloaded at run time.

pub mod digits;
pub mod hum;
pub mod idx;
pub mod text;

use std::path::{Path, PathBuf};

/// Where the Debian package `dataset-fashion-mnist` installs the full set.
pub const FMNIST_DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// A labelled classification set: `x` row-major (len = n * dim), scaled to [0, 1].
#[derive(Clone, Debug)]
pub struct ClassSet {
    pub x: Vec<f32>,
    pub y: Vec<u32>,
    pub dim: usize,
    pub classes: usize,
}

impl ClassSet {
    pub fn len(&self) -> usize {
        self.y.len()
    }
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }
    /// The first `n` rows.
    pub fn head(&self, n: usize) -> ClassSet {
        let n = n.min(self.len());
        ClassSet { x: self.x[..n * self.dim].to_vec(), y: self.y[..n].to_vec(), dim: self.dim, classes: self.classes }
    }
}

/// Where the readers look.
#[derive(Clone, Debug)]
pub struct DataConfig {
    /// The shipped data (`models/data` of this repository unless overridden).
    pub shipped: PathBuf,
    /// A directory holding the full Fashion-MNIST IDX files, used instead of the shipped
    /// 10k/2k subset when present.
    pub fmnist_full: Option<PathBuf>,
}

impl DataConfig {
    /// The shipped data dir (`EFFBENCH_DATA_DIR` or this crate's `data/`), and the full
    /// Fashion-MNIST from `fmnist_dir` if given, else from the Debian package's path if
    /// installed.
    pub fn discover(fmnist_dir: Option<&Path>) -> DataConfig {
        let shipped = std::env::var_os("EFFBENCH_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data")));
        let fmnist_full = match fmnist_dir {
            Some(d) => Some(d.to_path_buf()),
            None => {
                let d = PathBuf::from(FMNIST_DEBIAN_DIR);
                d.join("train-images-idx3-ubyte.gz").exists().then_some(d)
            }
        };
        DataConfig { shipped, fmnist_full }
    }

    /// Only the shipped data (what tests and CI use: the same bytes on every machine).
    pub fn shipped_only() -> DataConfig {
        DataConfig { shipped: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data")), fmnist_full: None }
    }
}

pub(crate) fn read_gz(path: &Path) -> crate::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| crate::ModelError::io(path, e))?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(f).read_to_end(&mut out).map_err(|e| crate::ModelError::io(path, e))?;
    Ok(out)
}
