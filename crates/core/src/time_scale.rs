//! How much faster than real time a service's clock runs: 1 for PicWish, more for a sped-up
//! emulator. Checked once, applied the same way everywhere (the client's windows, backoffs,
//! expected times and poll interval; the emulator's timings).

use std::fmt;
use std::time::Duration;

/// A time scale: a finite factor from [`TimeScale::MIN`] to [`TimeScale::MAX`]. A duration of
/// the service's clock lasts `duration / factor` of real time ([`to_real`](Self::to_real)),
/// saturating instead of overflowing.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct TimeScale(f64);

/// Why a factor is not a time scale.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "the time scale {0} is not a number from 0.001 to 1000000 (1 is real time; a sped-up emulator's factor is above 1)"
)]
pub struct TimeScaleError(pub f64);

impl TimeScale {
    /// Real time: the service's own clock.
    pub const REAL: TimeScale = TimeScale(1.0);
    /// The slowest accepted scale.
    pub const MIN: f64 = 1e-3;
    /// The fastest accepted scale.
    pub const MAX: f64 = 1e6;

    /// The scale `factor`, when it is a finite number from [`MIN`](Self::MIN) to
    /// [`MAX`](Self::MAX).
    pub fn new(factor: f64) -> Result<TimeScale, TimeScaleError> {
        if factor.is_finite() && (Self::MIN..=Self::MAX).contains(&factor) {
            Ok(TimeScale(factor))
        } else {
            Err(TimeScaleError(factor))
        }
    }

    /// The factor.
    pub fn factor(self) -> f64 {
        self.0
    }

    /// How long `duration` of the service's clock lasts in real time: divided by the factor,
    /// at most [`Duration::MAX`].
    pub fn to_real(self, duration: Duration) -> Duration {
        Duration::try_from_secs_f64(duration.as_secs_f64() / self.0).unwrap_or(Duration::MAX)
    }

    /// How long `duration` of real time lasts on the service's clock: multiplied by the
    /// factor, at most [`Duration::MAX`].
    pub fn to_service(self, duration: Duration) -> Duration {
        Duration::try_from_secs_f64(duration.as_secs_f64() * self.0).unwrap_or(Duration::MAX)
    }
}

impl Default for TimeScale {
    fn default() -> Self {
        TimeScale::REAL
    }
}

impl fmt::Display for TimeScale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_are_checked_once_and_applied_saturating() {
        for bad in [0.0, -1.0, 1e-300, f64::NAN, f64::INFINITY, 1e7] {
            assert!(TimeScale::new(bad).is_err(), "{bad}");
        }
        let ten = TimeScale::new(10.0).unwrap();
        assert_eq!(
            ten.to_real(Duration::from_secs(5)),
            Duration::from_millis(500)
        );
        assert_eq!(
            ten.to_service(Duration::from_millis(500)),
            Duration::from_secs(5)
        );
        let slow = TimeScale::new(TimeScale::MIN).unwrap();
        assert_eq!(slow.to_real(Duration::MAX), Duration::MAX);
        assert_eq!(
            TimeScale::REAL.to_real(Duration::from_secs(3)),
            Duration::from_secs(3)
        );
    }
}
