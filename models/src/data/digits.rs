//! scikit-learn's copy of the UCI optical-digits test set: 1,797 rows of 64 integer pixels
//! (0..16) and a label, as `digits.csv.gz`. The file is ordered by writer, so the split is a
//! fixed shuffle (seed `SPLIT_SEED`, part of the workload's definition): 1,437 train, 360 test.

use std::path::Path;

use super::{read_gz, ClassSet};
use crate::{ModelError, Result};

pub const TRAIN_ROWS: usize = 1437;
pub const SPLIT_SEED: u64 = 1797;

pub fn read(path: &Path) -> Result<(ClassSet, ClassSet)> {
    let text = String::from_utf8(read_gz(path)?).map_err(|_| ModelError::bad_data(path, "not UTF-8 text"))?;
    let mut x = Vec::new();
    let mut y = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 65 {
            return Err(ModelError::bad_data(path, format!("line {}: {} fields, expected 65", i + 1, fields.len())));
        }
        for (j, f) in fields.iter().enumerate() {
            let v: f32 = f.trim().parse().map_err(|_| {
                ModelError::bad_data(path, format!("line {}: field {} is {f:?}, not a number", i + 1, j + 1))
            })?;
            if j < 64 {
                x.push(v / 16.0);
            } else {
                y.push(v as u32);
            }
        }
    }
    let n = y.len();
    if n <= TRAIN_ROWS {
        return Err(ModelError::bad_data(path, format!("{n} rows, expected 1797")));
    }
    let order = crate::rng::permutation(&mut crate::rng::rng(SPLIT_SEED, crate::rng::Stream::Data), n);
    let take = |rows: &[usize]| ClassSet {
        x: rows.iter().flat_map(|&i| x[i * 64..(i + 1) * 64].iter().copied()).collect(),
        y: rows.iter().map(|&i| y[i]).collect(),
        dim: 64,
        classes: 10,
    };
    Ok((take(&order[..TRAIN_ROWS]), take(&order[TRAIN_ROWS..])))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_shipped_csv() {
        let p = crate::data::DataConfig::shipped_only().shipped.join("digits/digits.csv.gz");
        let (train, test) = super::read(&p).unwrap();
        assert_eq!((train.len(), test.len()), (1437, 360));
        assert!(train.y.iter().all(|&c| c < 10));
        assert_eq!(train.x.iter().cloned().fold(0.0, f32::max), 1.0);
    }
}
