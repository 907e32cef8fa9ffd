//! The one place the fused ops call the `gemm` crate: `dst += A B` on strided operands, with
//! the thread count candle uses.

use candle_core::Result;

use super::Real;

/// A read-only matrix operand: element (i, j) is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub(crate) struct Operand<'a, T> {
    pub data: &'a [T],
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<T> Operand<'_, T> {
    /// The last element an (rows, cols) view reads, plus one (0 for an empty view).
    fn extent(&self, rows: usize, cols: usize) -> usize {
        if rows == 0 || cols == 0 {
            return 0;
        }
        (rows - 1) * self.row_stride + (cols - 1) * self.col_stride + 1
    }
}

/// `dst (n, m, row-major, contiguous) += a (n, k) · b (k, m)`.
pub(crate) fn accumulate<T: Real>(
    dst: &mut [T],
    dims: (usize, usize, usize),
    a: Operand<T>,
    b: Operand<T>,
) -> Result<()> {
    gemm_into(dst, dims, a, b, parallelism())
}

/// As [`accumulate`], on the calling thread only: for callers that run jobs in parallel
/// themselves (the convolution's images).
pub(crate) fn accumulate_serial<T: Real>(
    dst: &mut [T],
    dims: (usize, usize, usize),
    a: Operand<T>,
    b: Operand<T>,
) -> Result<()> {
    gemm_into(dst, dims, a, b, gemm::Parallelism::None)
}

/// `dst = a · b` on the calling thread: as [`accumulate_serial`], but `dst`'s old values are
/// never read, so it needs no zeroing first.
pub(crate) fn product_serial<T: Real>(
    dst: &mut [T],
    dims: (usize, usize, usize),
    a: Operand<T>,
    b: Operand<T>,
) -> Result<()> {
    gemm_with(dst, dims, a, b, gemm::Parallelism::None, false)
}

fn gemm_into<T: Real>(
    dst: &mut [T],
    dims: (usize, usize, usize),
    a: Operand<T>,
    b: Operand<T>,
    par: gemm::Parallelism,
) -> Result<()> {
    gemm_with(dst, dims, a, b, par, true)
}

/// `dst = a · b`, plus `dst`'s old values when `read_dst`.
fn gemm_with<T: Real>(
    dst: &mut [T],
    (n, m, k): (usize, usize, usize),
    a: Operand<T>,
    b: Operand<T>,
    par: gemm::Parallelism,
    read_dst: bool,
) -> Result<()> {
    if dst.len() != n * m || a.data.len() < a.extent(n, k) || b.data.len() < b.extent(k, m) {
        candle_core::bail!("gemm: operands too small for ({n} x {k}) x ({k} x {m})");
    }
    if n == 0 || m == 0 {
        return Ok(());
    }
    // SAFETY: every index the kernel touches was checked against the slices' lengths above,
    // and `dst` is a distinct, exclusively borrowed n x m buffer.
    unsafe {
        gemm::gemm(
            n,
            m,
            k,
            dst.as_mut_ptr(),
            1,
            m as isize,
            read_dst,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            T::from_f64(1.0),
            T::from_f64(1.0),
            false,
            false,
            false,
            par,
        );
    }
    Ok(())
}

fn parallelism() -> gemm::Parallelism {
    match candle_core::utils::get_num_threads() {
        n if n > 1 => gemm::Parallelism::Rayon(n),
        _ => gemm::Parallelism::None,
    }
}
