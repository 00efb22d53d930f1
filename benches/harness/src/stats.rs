//! Order statistics for latency samples.

/// The `q`-quantile (0 ≤ q ≤ 1) of `values` by linear interpolation between
/// the closest ranks (the same definition as numpy's default and as
/// PromQL's `quantile`): position `q * (n - 1)` in the sorted values.
/// `None` for no values or a `q` outside [0, 1]; NaNs sort last.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    Some(v[lo] + (v[hi] - v[lo]) * frac)
}

pub fn median(values: &[f64]) -> Option<f64> {
    quantile(values, 0.5)
}

/// The median across repeats of each repeat's `q`-quantile: with R
/// repeats of N runs each, a median latency is the median of R medians, so
/// one noisy repeat (other work on the machine) moves it little. Repeats
/// without values are skipped; `None` if none has any.
pub fn median_of_quantiles(repeats: &[Vec<f64>], q: f64) -> Option<f64> {
    let per: Vec<f64> = repeats.iter().filter_map(|r| quantile(r, q)).collect();
    median(&per)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_and_even() {
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn p90_interpolates() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        // position 0.9 * 9 = 8.1 -> 9 + 0.1 * (10 - 9)
        assert!((quantile(&v, 0.9).unwrap() - 9.1).abs() < 1e-12);
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&v, 1.0), Some(10.0));
        assert_eq!(quantile(&v, 1.5), None);
        // Order of the input does not matter.
        let mut r = v.clone();
        r.reverse();
        assert_eq!(quantile(&r, 0.9), quantile(&v, 0.9));
    }

    #[test]
    fn median_of_repeat_medians() {
        // Medians 2, 20 and 3: the noisy repeat does not pull the result.
        let reps = vec![vec![1.0, 2.0, 3.0], vec![10.0, 20.0, 30.0], vec![3.0, 3.0, 4.0]];
        assert_eq!(median_of_quantiles(&reps, 0.5), Some(3.0));
        // p90 of each: 2.8, 28, 3.8 -> median 3.8.
        assert!((median_of_quantiles(&reps, 0.9).unwrap() - 3.8).abs() < 1e-12);
        // Empty repeats are skipped, an even count of repeats interpolates.
        let reps = vec![vec![1.0], vec![], vec![5.0]];
        assert_eq!(median_of_quantiles(&reps, 0.5), Some(3.0));
        assert_eq!(median_of_quantiles(&[vec![], vec![]], 0.5), None);
        assert_eq!(median_of_quantiles(&[], 0.5), None);
    }
}
