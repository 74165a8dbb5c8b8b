//! Summary statistics shared by the benchmarks.

use std::time::Duration;

/// p50, p99 and mean of a set of timed samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Median (the sample at the 50th percentile, nearest-rank).
    pub p50: Duration,
    /// The sample at the 99th percentile, nearest-rank.
    pub p99: Duration,
    /// Arithmetic mean.
    pub mean: Duration,
}

impl Stats {
    /// The statistics of `samples`.
    ///
    /// # Panics
    /// When `samples` is empty.
    #[must_use]
    pub fn of(samples: &[Duration]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let at = |percent: usize| sorted[(sorted.len() * percent / 100).min(sorted.len() - 1)];
        let total: Duration = sorted.iter().sum();
        Self {
            p50: at(50),
            p99: at(99),
            mean: total / u32::try_from(sorted.len()).unwrap_or(u32::MAX),
        }
    }

    /// The statistics of the samples each divided by `k` (percentiles and means scale).
    #[must_use]
    pub fn divided_by(self, k: usize) -> Self {
        let k = u32::try_from(k).unwrap_or(u32::MAX);
        Self {
            p50: self.p50 / k,
            p99: self.p99 / k,
            mean: self.mean / k,
        }
    }
}

/// `duration` as milliseconds with three decimals, e.g. `0.345 ms`.
#[must_use]
pub fn ms(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1000.0)
}

/// `a / b` as a float (`b` of zero counts as the smallest positive float).
#[must_use]
pub fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(f64::EPSILON)
}
