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

    /// The directory of the full Fashion-MNIST training set, unless it is the shipped subset's
    /// own directory (`--data-dir models/data/fashion-mnist-subset`, however spelled): then
    /// the data are the shipped subset's, and say so.
    pub fn fmnist_train_elsewhere(&self) -> Option<&Path> {
        let d = self.fmnist_full.as_deref()?;
        let subset = self.shipped.join("fashion-mnist-subset");
        match (d.canonicalize(), subset.canonicalize()) {
            (Ok(a), Ok(b)) if a == b => None,
            _ => Some(d),
        }
    }

    /// How results name the shipped Fashion-MNIST subset's directory: as the repository's
    /// `models/data/fashion-mnist-subset` when the shipped data are this repository's (however
    /// the run reached them: by default or by `--data-dir`), else its path.
    pub fn fmnist_subset_label(&self) -> String {
        let own = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data"));
        match (self.shipped.canonicalize(), own.canonicalize()) {
            (Ok(a), Ok(b)) if a == b => "models/data/fashion-mnist-subset".into(),
            _ => self.shipped.join("fashion-mnist-subset").display().to_string(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_subset_named_as_a_data_dir_is_the_shipped_subset() {
        let shipped = DataConfig::shipped_only().shipped;
        let with = |d: PathBuf| DataConfig { shipped: shipped.clone(), fmnist_full: Some(d) };
        for spelled in [
            shipped.join("fashion-mnist-subset"),
            shipped.join("./fashion-mnist-subset/"),
            shipped.join("digits/../fashion-mnist-subset"),
        ] {
            assert_eq!(with(spelled.clone()).fmnist_train_elsewhere(), None, "{}", spelled.display());
        }
        let other = tempfile::tempdir().unwrap();
        assert_eq!(with(other.path().to_path_buf()).fmnist_train_elsewhere(), Some(other.path()));
        // A directory that does not exist is not the shipped one (reading it fails later, naming it).
        let gone = other.path().join("nope");
        assert_eq!(with(gone.clone()).fmnist_train_elsewhere(), Some(gone.as_path()));
        assert_eq!(DataConfig::shipped_only().fmnist_train_elsewhere(), None);
        // The label the shipped baselines carry, whichever way the subset was reached.
        assert_eq!(
            with(shipped.join("fashion-mnist-subset")).fmnist_subset_label(),
            "models/data/fashion-mnist-subset"
        );
        let moved = DataConfig { shipped: other.path().to_path_buf(), fmnist_full: None };
        assert_eq!(moved.fmnist_subset_label(), other.path().join("fashion-mnist-subset").display().to_string());
    }
}
