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
}
