//! IDX files (the MNIST / Fashion-MNIST format): a big-endian header of magic (0x0000 + type
//! code 0x08 for u8 + number of dimensions) and the dimensions, then the data. Gzip-compressed
//! on disk.

use std::path::Path;

use super::{read_gz, ClassSet};
use crate::{ModelError, Result};

/// Returns the dimensions and the u8 payload.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<(Vec<usize>, Vec<u8>)> {
    let bad = |m: String| ModelError::bad_data(path, m);
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad("not an IDX file (bad magic number)".into()));
    }
    if bytes[2] != 0x08 {
        return Err(bad(format!("IDX element type 0x{:02x} unsupported (only u8, 0x08)", bytes[2])));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(bad("truncated IDX header".into()));
    }
    let dims: Vec<usize> =
        (0..ndim).map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize).collect();
    let n: usize = dims.iter().product();
    if bytes.len() - header != n {
        return Err(bad(format!("IDX payload is {} bytes, header says {:?} = {n}", bytes.len() - header, dims)));
    }
    Ok((dims, bytes[header..].to_vec()))
}

/// Reads `{prefix}-images-idx3-ubyte.gz` and `{prefix}-labels-idx1-ubyte.gz` from `dir`.
pub fn read_split(dir: &Path, prefix: &str) -> Result<ClassSet> {
    let ipath = dir.join(format!("{prefix}-images-idx3-ubyte.gz"));
    let lpath = dir.join(format!("{prefix}-labels-idx1-ubyte.gz"));
    let (idims, pixels) = parse(&ipath, &read_gz(&ipath)?)?;
    let (ldims, labels) = parse(&lpath, &read_gz(&lpath)?)?;
    if idims.len() != 3 || ldims.len() != 1 || idims[0] != ldims[0] {
        return Err(ModelError::bad_data(&ipath, format!("images {idims:?} do not match labels {ldims:?}")));
    }
    let classes = labels.iter().copied().max().map_or(0, |m| m as usize + 1);
    Ok(ClassSet {
        x: pixels.iter().map(|&p| p as f32 / 255.0).collect(),
        y: labels.iter().map(|&l| l as u32).collect(),
        dim: idims[1] * idims[2],
        classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_small_file_and_rejects_bad_ones() {
        let mut b = vec![0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        b.extend([1, 2, 3, 4, 5, 6]);
        let (dims, data) = parse(Path::new("x"), &b).unwrap();
        assert_eq!(dims, vec![2, 3]);
        assert_eq!(data, vec![1, 2, 3, 4, 5, 6]);
        let truncated = &b[..b.len() - 1];
        let e = parse(Path::new("x"), truncated).unwrap_err().to_string();
        assert!(e.contains("payload"), "{e}");
        assert!(parse(Path::new("x"), &[1, 2, 3, 4]).is_err());
        let mut float = b.clone();
        float[2] = 0x0d;
        assert!(parse(Path::new("x"), &float).unwrap_err().to_string().contains("unsupported"));
    }

    #[test]
    fn reads_the_shipped_subset() {
        let dir = crate::data::DataConfig::shipped_only().shipped.join("fashion-mnist-subset");
        let train = read_split(&dir, "train").unwrap();
        let test = read_split(&dir, "t10k").unwrap();
        assert_eq!((train.len(), train.dim, train.classes), (10_000, 784, 10));
        assert_eq!(test.len(), 2_000);
        assert!(train.x.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }
}
