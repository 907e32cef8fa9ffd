use super::*;

/// IDX bytes: u8 elements, `dims`, then `payload`.
fn idx(dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(payload);
    b
}

/// Writes a gzip-compressed split `{prefix}-images/labels` into `dir`.
fn write_split(dir: &Path, images: &[u8], labels: &[u8]) {
    use std::io::Write;
    for (name, bytes) in [("t-images-idx3-ubyte.gz", images), ("t-labels-idx1-ubyte.gz", labels)] {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        std::fs::write(dir.join(name), gz.finish().unwrap()).unwrap();
    }
}

fn split_error(images: Vec<u8>, labels: Vec<u8>) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    write_split(dir.path(), &images, &labels);
    let e = read_split(dir.path(), "t").unwrap_err().to_string();
    (dir, e)
}

fn images_path(dir: &tempfile::TempDir) -> String {
    dir.path().join("t-images-idx3-ubyte.gz").display().to_string()
}

fn labels_path(dir: &tempfile::TempDir) -> String {
    dir.path().join("t-labels-idx1-ubyte.gz").display().to_string()
}

#[test]
fn parses_a_small_file_and_rejects_bad_ones() {
    let b = idx(&[2, 3], &[1, 2, 3, 4, 5, 6]);
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
    let e = parse(Path::new("x"), &b[..6]).unwrap_err().to_string();
    assert_eq!(e, "x: truncated IDX header");
}

#[test]
fn idx_dimensions_whose_product_overflows_are_refused_before_allocating() {
    // 2^32-1 cubed overflows u64; 65536^3 does not but is 256 TiB: both are refused by the
    // check against the file's size, never allocated.
    for dims in [[u32::MAX; 3], [65_536; 3]] {
        let e = parse(Path::new("big.idx"), &idx(&dims, &[0; 16])).unwrap_err().to_string();
        assert!(e.starts_with("big.idx: IDX header says") && e.contains("more data than the file can hold"), "{e}");
    }
    // The same through a gzip file on disk (the bound is the compressed size x 1032).
    let (dir, e) = split_error(idx(&[u32::MAX, 65_536, 65_536], &[0; 64]), idx(&[1], &[0]));
    assert!(e.starts_with(&images_path(&dir)) && e.contains("more data than the file can hold"), "{e}");
}

#[test]
fn idx_with_zero_images_is_a_clear_error_not_a_panic() {
    let (dir, e) = split_error(idx(&[0, 28, 28], &[]), idx(&[0], &[]));
    assert_eq!(e, format!("{}: holds 0 images; a split needs at least one; {FIX}", images_path(&dir)));
}

#[test]
fn idx_images_not_28x28_are_refused_naming_the_file() {
    let (dir, e) = split_error(idx(&[2, 27, 29], &[0; 2 * 27 * 29]), idx(&[2], &[0, 1]));
    assert_eq!(e, format!("{}: images are 27x29, the workloads need 28x28; {FIX}", images_path(&dir)));
    let (dir, e) = split_error(idx(&[4, 28], &[0; 4 * 28]), idx(&[4], &[0; 4]));
    assert!(e.starts_with(&format!("{}: images have dimensions [4, 28]", images_path(&dir))), "{e}");
}

#[test]
fn idx_label_outside_0_to_9_is_refused_naming_the_file() {
    for bad in [10u8, 255] {
        let (dir, e) = split_error(idx(&[3, 28, 28], &[0; 3 * 784]), idx(&[3], &[1, bad, 2]));
        assert_eq!(e, format!("{}: label 1 is {bad}, outside 0..=9; {FIX}", labels_path(&dir)));
    }
}

#[test]
fn idx_image_and_label_counts_that_differ_name_both_files() {
    let (dir, e) = split_error(idx(&[3, 28, 28], &[0; 3 * 784]), idx(&[2], &[1, 2]));
    assert!(
        e.starts_with(&format!("{} holds 3 images but {} holds 2 labels", images_path(&dir), labels_path(&dir))),
        "{e}"
    );
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
