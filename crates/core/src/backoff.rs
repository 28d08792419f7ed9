//! Waiting longer after each failure, written once: the client's retries, the Lambda's delays
//! between deliveries of a message, the day page's rebuilds after a lost race.

use std::time::Duration;

use crate::time_scale::TimeScale;

/// An exponential backoff: `first × 2^(attempt − 1)`, at most `longest`, jittered as `jitter`
/// says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub first: Duration,
    /// The longest wait.
    pub longest: Duration,
    /// How the wait is spread.
    pub jitter: Jitter,
}

/// How a backoff's waits are spread, so that clients failing together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Exactly the exponential value (a schedule others read, such as a message's visibility).
    None,
    /// Uniformly between half the exponential value and all of it.
    Half,
    /// Uniformly between zero and the exponential value.
    Full,
}

impl Backoff {
    /// The wait after failure number `attempt` (from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        let full = self
            .first
            .saturating_mul(1u32 << doublings)
            .min(self.longest);
        match self.jitter {
            Jitter::None => full,
            Jitter::Half => full.mul_f64(rand::random_range(0.5..=1.0)),
            Jitter::Full => full.mul_f64(rand::random_range(0.0..=1.0)),
        }
    }

    /// The same backoff on a clock `scale` times faster.
    pub fn scaled(self, scale: TimeScale) -> Self {
        Backoff {
            first: scale.to_real(self.first),
            longest: scale.to_real(self.longest),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_longest_and_stay_in_their_jitter() {
        let backoff = Backoff {
            first: Duration::from_secs(30),
            longest: Duration::from_secs(600),
            jitter: Jitter::None,
        };
        let waits: Vec<u64> = (1..=7).map(|n| backoff.delay(n).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 600, 600]);
        assert_eq!(backoff.delay(0).as_secs(), 30);
        assert_eq!(backoff.delay(u32::MAX).as_secs(), 600);
        let half = Backoff {
            jitter: Jitter::Half,
            ..backoff
        };
        for _ in 0..100 {
            let wait = half.delay(2);
            assert!(wait >= Duration::from_secs(30) && wait <= Duration::from_secs(60));
        }
        let scaled = backoff.scaled(TimeScale::new(10.0).unwrap());
        assert_eq!(scaled.delay(1), Duration::from_secs(3));
    }
}
