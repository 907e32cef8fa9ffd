//! Student's t distribution: its CDF through the regularized incomplete beta function, and its
//! quantile by bisection on the CDF. Used by the gate from history (a prediction interval over
//! a handful of run means needs t, not the normal, quantiles).
//!
//! The incomplete beta is evaluated by its continued fraction (modified Lentz), with ln Γ by the
//! Lanczos approximation (g = 7, 9 coefficients); both are textbook (Abramowitz and Stegun
//! 26.5.8 and 6.1). Accuracy is checked against published t tables in the tests.

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error below 1e-13 on the range used).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 - x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Continued fraction of the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        for aa in [m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))] {
            d = 1.0 + aa * d;
            if d.abs() < TINY {
                d = TINY;
            }
            c = 1.0 + aa / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// The regularized incomplete beta function I_x(a, b), for a, b > 0 and x in [0, 1].
fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    // The fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_cf(a, b, x) / a
    } else {
        1.0 - ln_front.exp() * beta_cf(b, a, 1.0 - x) / b
    }
}

/// P(T <= t) for T with `df` degrees of freedom (df > 0).
pub fn cdf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * inc_beta(df / 2.0, 0.5, df / (df + t * t));
    if t >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// The `p` quantile of Student's t with `df` degrees of freedom (`df >= 1`, 0 < p < 1), to
/// about 1e-10, by bisection on [`cdf`]. NaN for arguments outside those ranges.
pub fn quantile(p: f64, df: f64) -> f64 {
    if !(p > 0.0 && p < 1.0 && df >= 1.0) {
        return f64::NAN;
    }
    if p < 0.5 {
        return -quantile(1.0 - p, df);
    }
    // t(1) = Cauchy has the heaviest tail; its quantile bounds every other df's from above.
    let (mut lo, mut hi) = (0.0, (std::f64::consts::PI * (p - 0.5)).tan().max(1.0));
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-12 * hi.max(1.0) {
            break;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_sided_95_quantiles_match_published_tables() {
        // Two-sided 95% critical values (the 0.975 quantile), as printed in every t table
        // (e.g. NIST/SEMATECH e-Handbook of Statistical Methods, section 1.3.6.7.2).
        for (df, t) in [
            (1.0, 12.706),
            (2.0, 4.303),
            (3.0, 3.182),
            (4.0, 2.776),
            (9.0, 2.262),
            (19.0, 2.093),
            (29.0, 2.045),
            (100.0, 1.984),
        ] {
            let q = quantile(0.975, df);
            assert!((q - t).abs() < 5e-4, "df {df}: {q} against the table's {t}");
        }
        // More digits where the closed form is known: df = 1 is Cauchy, df = 2 has
        // t = (2p - 1) / sqrt(2p(1 - p)).
        assert!((quantile(0.975, 1.0) - (std::f64::consts::PI * 0.475).tan()).abs() < 1e-8);
        let p: f64 = 0.975;
        assert!((quantile(p, 2.0) - (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt()).abs() < 1e-8);
        // Large df tends to the normal's 1.959964.
        assert!((quantile(0.975, 1e7) - 1.959_964).abs() < 1e-5);
    }

    #[test]
    fn cdf_is_symmetric_and_quantile_inverts_it() {
        for df in [1.0, 3.0, 9.0, 50.0] {
            assert!((cdf(0.0, df) - 0.5).abs() < 1e-12);
            for t in [0.3, 1.0, 2.5, 7.0] {
                assert!((cdf(t, df) + cdf(-t, df) - 1.0).abs() < 1e-12);
                assert!((quantile(cdf(t, df), df) - t).abs() < 1e-7, "df {df}, t {t}");
            }
        }
        assert!(quantile(0.025, 9.0) < 0.0);
        assert!(quantile(1.0, 9.0).is_nan() && quantile(0.5, 0.5).is_nan());
    }
}
