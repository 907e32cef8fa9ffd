//! Is what the runner returned the workload's answer? Two rules (docs/runner-protocol.md,
//! "What effbench checks"):
//!
//! - **f32**: every output value is within a relative error of [`F32_MAX_REL`] of effbench's
//!   own answer. The relative error of value `i` of one query's output row is
//!   `|got_i - want_i| / max(|want_i|, FLOOR × max_j |want_j|)`: values near zero are measured
//!   against 1% of the row's largest magnitude, so summation-order noise on a logit close to 0
//!   does not count as a wrong answer, while an error the size of the row's own values does.
//!   NaN or infinity is an infinite error. Why a floor: f32 rounding error of a sum scales with
//!   its terms, not its result, so an output near zero (large terms that cancel) carries an
//!   absolute error of a few ulps of the row's magnitude whoever computes it; candle's own
//!   answers at batch 1 and at batch 250 differ by up to 7e-7 of the largest value. A wrong
//!   weight or a transposed matrix gives errors of 1e-2 and more. The same rule checks an
//!   exported model against onnxruntime (`effbench export`, runners/reference/check_export.py).
//! - **int8 / bf16 / f16** (declared by the runner): the workload's quality on the query set must
//!   stay within 1% of effbench's f32 answers: `q >= 0.99 × q_ref` where higher is better
//!   (accuracy, AUC); `q <= q_ref / 0.99` where lower is better (the language model's loss).

/// f32 tolerance on the maximum relative error.
pub const F32_MAX_REL: f64 = 1e-4;
/// Fraction of a row's largest magnitude below which values are compared on that scale.
pub const FLOOR: f64 = 1e-2;
/// Quality a lower precision must keep, as a fraction of the f32 reference (MLPerf's 99%).
pub const QUALITY_KEPT: f64 = 0.99;

/// The worst value in a set of outputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Deviation {
    pub max_rel: f64,
    /// Query (row) and position within its output where the worst error is.
    pub query: usize,
    pub index: usize,
    pub got: f32,
    pub want: f32,
}

/// Compares `got` with `want`, both `per_query` values per query. Lengths must match.
pub fn compare(got: &[f32], want: &[f32], per_query: usize) -> Deviation {
    assert_eq!(got.len(), want.len(), "compare: lengths differ");
    let per_query = per_query.max(1);
    let mut worst = Deviation { max_rel: 0.0, query: 0, index: 0, got: 0.0, want: 0.0 };
    for (q, (g_row, w_row)) in got.chunks(per_query).zip(want.chunks(per_query)).enumerate() {
        let scale = w_row.iter().fold(0.0f64, |m, w| m.max(w.abs() as f64)) * FLOOR;
        for (i, (&g, &w)) in g_row.iter().zip(w_row).enumerate() {
            let rel = if !g.is_finite() {
                f64::INFINITY
            } else {
                let denom = (w.abs() as f64).max(scale).max(f64::MIN_POSITIVE);
                (g as f64 - w as f64).abs() / denom
            };
            if rel > worst.max_rel || (rel.is_infinite() && !worst.max_rel.is_infinite()) {
                worst = Deviation { max_rel: rel, query: q, index: i, got: g, want: w };
            }
        }
    }
    worst
}

/// Why a repeat's outputs fail the rule for `precision`, or `None` when they pass.
/// `quality`/`reference_quality` are the workload's metric on the runner's answers and on
/// effbench's own.
pub fn verdict(
    precision: &str,
    dev: &Deviation,
    quality: f64,
    reference_quality: f64,
    higher_is_better: bool,
) -> Option<String> {
    if precision == "f32" {
        if dev.max_rel <= F32_MAX_REL {
            return None;
        }
        return Some(format!(
            "outputs differ from effbench's reference: max relative error {:.3e} > {F32_MAX_REL:e} (f32) at query {}, \
             value {}: got {}, expected {}",
            dev.max_rel, dev.query, dev.index, dev.got, dev.want
        ));
    }
    let (ok, bound) = if higher_is_better {
        let b = QUALITY_KEPT * reference_quality;
        (quality >= b, format!(">= {b:.4} (99% of the f32 reference {reference_quality:.4})"))
    } else {
        let b = reference_quality / QUALITY_KEPT;
        (quality <= b, format!("<= {b:.4} (the f32 reference {reference_quality:.4} / 0.99)"))
    };
    (!ok || !quality.is_finite()).then(|| {
        format!(
            "{precision} answers' quality {quality:.4} must be {bound}; worst value: max relative error {:.3e} at query {}, value {}",
            dev.max_rel, dev.query, dev.index
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_outputs_have_zero_error() {
        let w = [1.0, -2.0, 0.5, 3.0];
        assert_eq!(compare(&w, &w, 2).max_rel, 0.0);
    }

    #[test]
    fn small_values_are_measured_against_the_row_scale() {
        // 1e-6 off on a value of 1e-4 in a row whose largest value is 5: 1e-6 / 0.05 = 2e-5.
        let want = [5.0, 1e-4];
        let got = [5.0, 1e-4 + 1e-6];
        let d = compare(&got, &want, 2);
        assert!(d.max_rel < F32_MAX_REL, "{d:?}");
        // The same absolute error on the large value is tiny too; a 1% error is not.
        let got = [5.05, 1e-4];
        let d = compare(&got, &want, 2);
        assert!((d.max_rel - 0.01).abs() < 1e-6, "{d:?}");
        assert_eq!((d.query, d.index), (0, 0));
    }

    #[test]
    fn nan_is_an_infinite_error_and_is_located() {
        let want = [1.0, 2.0, 3.0, 4.0];
        let got = [1.0, 2.0, 3.0, f32::NAN];
        let d = compare(&got, &want, 2);
        assert!(d.max_rel.is_infinite());
        assert_eq!((d.query, d.index), (1, 1));
        assert!(verdict("f32", &d, 0.9, 0.9, true).unwrap().contains("query 1"));
    }

    #[test]
    fn lower_precision_is_judged_by_quality_in_both_directions() {
        let d = Deviation { max_rel: 0.05, query: 0, index: 0, got: 0.0, want: 0.0 };
        assert!(verdict("int8", &d, 0.85, 0.858, true).is_none()); // 0.85 >= 0.8494
        assert!(verdict("int8", &d, 0.85, 0.87, true).is_some()); // 0.85 < 0.8613
        assert!(verdict("bf16", &d, 2.02, 2.0, false).is_none()); // 2.02 <= 2.0202
        let e = verdict("bf16", &d, 2.03, 2.0, false).unwrap();
        assert!(e.contains("2.0202"), "{e}");
        assert!(verdict("f32", &d, 0.9, 0.9, true).is_some()); // f32 uses the value rule
    }
}
