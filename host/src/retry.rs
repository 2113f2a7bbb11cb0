//! How long to wait before trying again: the one doubling backoff the host
//! uses for lease revocations, webhook deliveries and rotations.

use std::time::Duration;

/// The wait before attempt `failures + 1`, after `failures` failures (at
/// least 1): `initial`, doubling with each further failure, at most `max`.
pub(crate) fn backoff(failures: u32, initial: Duration, max: Duration) -> Duration {
    let shift = failures.saturating_sub(1).min(20);
    initial.saturating_mul(1 << shift).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_longest() {
        let ms = |f| backoff(f, Duration::from_millis(100), Duration::from_millis(1000)).as_millis();
        assert_eq!(
            [ms(0), ms(1), ms(2), ms(3), ms(4), ms(5), ms(99)],
            [100, 100, 200, 400, 800, 1000, 1000]
        );
    }
}
