//! IDX files (the MNIST / Fashion-MNIST format): a big-endian header of magic (0x0000 + type
//! code 0x08 for u8 + number of dimensions) and the dimensions, then the data. Gzip-compressed
//! on disk.
//!
//! These files may come from a user's `--data-dir`, so nothing in a header is believed before
//! it is checked: the dimensions' product is computed with checked arithmetic and compared with
//! what the file can hold before anything is allocated, the payload is read through a bounded
//! reader, and a split must be 28x28 images with labels 0..=9, as many of one as of the other.

use std::io::Read;
use std::path::Path;

use super::ClassSet;
use crate::{ModelError, Result};

/// Fashion-MNIST's image side, in pixels.
pub const SIDE: usize = 28;
/// Fashion-MNIST's classes: labels are 0..CLASSES.
pub const CLASSES: usize = 10;
/// DEFLATE cannot expand data by more than about 1032:1, so a gzip file of `n` bytes holds at
/// most this many times `n` bytes: a header claiming more is refused before allocating.
const MAX_GZIP_RATIO: u64 = 1032;

/// What to tell a user whose file is not what the workload expects.
const FIX: &str = "expected the Fashion-MNIST IDX files (28x28 u8 images, labels 0-9); re-download them";

/// Returns the dimensions and the u8 payload of IDX bytes already in memory.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<(Vec<usize>, Vec<u8>)> {
    read_from(path, bytes, bytes.len() as u64)
}

/// Reads an IDX stream whose payload can be at most `max_payload` bytes.
fn read_from(path: &Path, mut r: impl Read, max_payload: u64) -> Result<(Vec<usize>, Vec<u8>)> {
    let bad = |m: String| ModelError::bad_data(path, m);
    let mut magic = [0u8; 4];
    read_exact(path, &mut r, &mut magic, "not an IDX file (shorter than its magic number)")?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(bad("not an IDX file (bad magic number)".into()));
    }
    if magic[2] != 0x08 {
        return Err(bad(format!("IDX element type 0x{:02x} unsupported (only u8, 0x08)", magic[2])));
    }
    let ndim = magic[3] as usize;
    let mut header = vec![0u8; 4 * ndim];
    read_exact(path, &mut r, &mut header, "truncated IDX header")?;
    let dims: Vec<usize> =
        header.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let n = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64)).filter(|&n| n <= max_payload).ok_or_else(
        || bad(format!("IDX header says {dims:?}, more data than the file can hold ({max_payload} bytes at most)")),
    )?;
    let mut payload = Vec::new();
    r.take(n + 1).read_to_end(&mut payload).map_err(|e| ModelError::io(path, e))?;
    if payload.len() as u64 != n {
        let got = if payload.len() as u64 > n { "more than".to_string() } else { payload.len().to_string() };
        return Err(bad(format!("IDX payload is {got} bytes, header says {dims:?} = {n}")));
    }
    Ok((dims, payload))
}

/// `read_exact`, with a file that ends early reported as `short`.
fn read_exact(path: &Path, r: &mut impl Read, buf: &mut [u8], short: &str) -> Result<()> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => ModelError::bad_data(path, short),
        _ => ModelError::io(path, e),
    })
}

/// Reads one gzip-compressed IDX file with a bounded reader.
fn read_file(path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let f = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let len = f.metadata().map_err(|e| ModelError::io(path, e))?.len();
    read_from(path, flate2::read::GzDecoder::new(f), len.saturating_mul(MAX_GZIP_RATIO))
}

/// Reads `{prefix}-images-idx3-ubyte.gz` and `{prefix}-labels-idx1-ubyte.gz` from `dir`.
pub fn read_split(dir: &Path, prefix: &str) -> Result<ClassSet> {
    let ipath = dir.join(format!("{prefix}-images-idx3-ubyte.gz"));
    let lpath = dir.join(format!("{prefix}-labels-idx1-ubyte.gz"));
    let (idims, pixels) = read_file(&ipath)?;
    let (ldims, labels) = read_file(&lpath)?;
    check_split(&ipath, &idims, &lpath, &ldims, &labels)?;
    Ok(ClassSet {
        x: pixels.iter().map(|&p| p as f32 / 255.0).collect(),
        y: labels.iter().map(|&l| l as u32).collect(),
        dim: SIDE * SIDE,
        classes: CLASSES,
    })
}

/// A split the workloads can use: n >= 1 images of 28x28 and n labels in 0..10.
fn check_split(ipath: &Path, idims: &[usize], lpath: &Path, ldims: &[usize], labels: &[u8]) -> Result<()> {
    let &[n_images, rows, cols] = idims else {
        return Err(ModelError::bad_data(ipath, format!("images have dimensions {idims:?}, not [n, 28, 28]; {FIX}")));
    };
    let &[n_labels] = ldims else {
        return Err(ModelError::bad_data(lpath, format!("labels have dimensions {ldims:?}, not [n]; {FIX}")));
    };
    if (rows, cols) != (SIDE, SIDE) {
        return Err(ModelError::bad_data(ipath, format!("images are {rows}x{cols}, the workloads need 28x28; {FIX}")));
    }
    if n_images == 0 {
        return Err(ModelError::bad_data(ipath, format!("holds 0 images; a split needs at least one; {FIX}")));
    }
    if n_images != n_labels {
        return Err(ModelError::SplitMismatch {
            images: ipath.to_path_buf(),
            n_images,
            labels: lpath.to_path_buf(),
            n_labels,
        });
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l as usize >= CLASSES) {
        return Err(ModelError::bad_data(lpath, format!("label {i} is {l}, outside 0..={}; {FIX}", CLASSES - 1)));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
