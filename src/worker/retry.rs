//! The retry schedule: INITIAL_RETRY_DELAY × RETRY_BACKOFF^(n−1), ±10 % jitter, capped.

use std::time::Duration;

/// Delay before the retry that follows failed attempt number `n` (1-based). `jitter` is a
/// uniform sample from [0, 1); it spreads retries of tasks that failed together.
pub fn delay(n: u32, initial: Duration, backoff: f64, cap: Duration, jitter: f64) -> Duration {
    let exp = n.saturating_sub(1).min(1000) as i32;
    let base = initial.as_secs_f64() * backoff.powi(exp);
    let spread = 0.9 + 0.2 * jitter.clamp(0.0, 1.0);
    let secs = (base * spread).min(cap.as_secs_f64());
    if secs.is_finite() && secs > 0.0 {
        Duration::from_secs_f64(secs)
    } else if secs.is_nan() {
        cap
    } else {
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(f64) -> Duration = Duration::from_secs_f64;

    #[test]
    fn exponential_without_jitter_midpoint() {
        let d = |n| delay(n, S(1.0), 2.0, S(300.0), 0.5);
        assert_eq!(d(1), S(1.0));
        assert_eq!(d(2), S(2.0));
        assert_eq!(d(3), S(4.0));
        assert_eq!(d(10), S(300.0).min(S(512.0)));
    }

    #[test]
    fn jitter_bounds_and_cap() {
        assert_eq!(delay(1, S(10.0), 2.0, S(300.0), 0.0), S(9.0));
        assert!(delay(1, S(10.0), 2.0, S(300.0), 0.999_999) <= S(11.0));
        assert_eq!(delay(60, S(1.0), 10.0, S(5.0), 0.7), S(5.0));
        assert_eq!(delay(u32::MAX, S(1.0), 2.0, S(7.0), 0.1), S(7.0));
        assert_eq!(delay(1, Duration::ZERO, 2.0, S(7.0), 0.1), Duration::ZERO);
    }
}
