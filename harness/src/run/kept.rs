//! How far a run got, for the error that ends it: before any repeat began, a failure is bad
//! input (exit 2); after, the run was cut short (exit 5) and the finished repeats are kept.

/// How far a run got, for the error that ends it.
#[derive(Default)]
pub(super) struct Kept {
    /// A repeat's work (or the wall meter's ranging pass) has begun.
    pub began: bool,
    /// Repeats finished and written.
    pub repeats: usize,
}

impl Kept {
    pub fn error(&self, e: anyhow::Error, planned: usize, out_dir: &std::path::Path) -> crate::error::Error {
        if !self.began {
            return e.into();
        }
        crate::error::Error::cut_short(e).context(format!(
            "run cut short: {} of {planned} repeats finished and are kept in {}",
            self.repeats,
            out_dir.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Exit;

    #[test]
    fn before_any_repeat_bad_input_after_cut_short_with_the_count() {
        let out = std::path::Path::new("results/x");
        let e = Kept::default().error(anyhow::anyhow!("no such runner"), 6, out);
        assert_eq!((e.exit(), e.to_string().as_str()), (Exit::BadInput, "no such runner"));
        let kept = Kept { began: true, repeats: 2 };
        let e = kept.error(anyhow::anyhow!("runner died"), 3, out);
        assert_eq!(e.exit(), Exit::CutShort);
        assert_eq!(e.to_string(), "run cut short: 2 of 3 repeats finished and are kept in results/x: runner died");
    }
}
