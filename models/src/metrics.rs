//! Quality metrics: accuracy, mean loss, ROC-AUC.

/// Fraction of rows whose arg-max equals the label.
pub fn accuracy(logits: &[f32], classes: usize, labels: &[u32]) -> f64 {
    let correct = logits.chunks_exact(classes).zip(labels).filter(|(row, &y)| argmax(row) == y as usize).count();
    correct as f64 / labels.len().max(1) as f64
}

pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

/// Area under the ROC curve of `scores` (higher = more anomalous) against `positive`, by the
/// rank-sum (Mann-Whitney U) formula with ties counted as one half.
pub fn roc_auc(scores: &[f32], positive: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks over ties.
    let mut ranks = vec![0f64; scores.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[order[k]] = r;
        }
        i = j + 1;
    }
    let n_pos = positive.iter().filter(|&&p| p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return f64::NAN;
    }
    let rank_sum: f64 = ranks.iter().zip(positive).filter(|(_, &p)| p).map(|(r, _)| r).sum();
    (rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_counts_argmax_hits() {
        let logits = [0.1, 0.9, 0.8, 0.2, 0.3, 0.7];
        assert_eq!(accuracy(&logits, 2, &[1, 0, 0]), 2.0 / 3.0);
    }

    #[test]
    fn auc_known_answers() {
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]), 1.0);
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]), 0.0);
        assert_eq!(roc_auc(&[0.5, 0.5, 0.5, 0.5], &[false, true, false, true]), 0.5);
        // one inversion out of four pairs
        assert_eq!(roc_auc(&[0.1, 0.6, 0.5, 0.9], &[false, false, true, true]), 0.75);
    }
}
