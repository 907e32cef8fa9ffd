//! Physical units as types, so a joule is never added to a watt by accident.
//!
//! Every type serialises as its bare number (`#[serde(transparent)]`): the unit lives in the
//! field name of the JSON (`wall_s`, `energy_j`, `avg_power_w`, `peak_rss_bytes`), the type in
//! the Rust code. Raw sensor units (µJ, mJ, µW) exist only inside the sensor that parses them.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, Mul, Sub, SubAssign};

use serde::{Deserialize, Serialize};

macro_rules! float_unit {
    ($(#[$doc:meta])* $name:ident, $suffix:literal) => {
        $(#[$doc])*
        #[derive(Copy, Clone, Debug, PartialEq, PartialOrd, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub f64);

        impl $name {
            /// The bare number, in this type's unit.
            pub fn value(self) -> f64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            /// Honours the caller's precision: `format!("{:.2}", Joules(1.0))` is `1.00 J`.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match f.precision() {
                    Some(p) => write!(f, "{:.*} {}", p, self.0, $suffix),
                    None => write!(f, "{} {}", self.0, $suffix),
                }
            }
        }

        impl Add for $name {
            type Output = $name;
            fn add(self, rhs: $name) -> $name {
                $name(self.0 + rhs.0)
            }
        }

        impl Sub for $name {
            type Output = $name;
            fn sub(self, rhs: $name) -> $name {
                $name(self.0 - rhs.0)
            }
        }

        impl AddAssign for $name {
            fn add_assign(&mut self, rhs: $name) {
                self.0 += rhs.0;
            }
        }

        impl SubAssign for $name {
            fn sub_assign(&mut self, rhs: $name) {
                self.0 -= rhs.0;
            }
        }

        /// Scaling by a dimensionless factor.
        impl Mul<f64> for $name {
            type Output = $name;
            fn mul(self, rhs: f64) -> $name {
                $name(self.0 * rhs)
            }
        }

        /// Scaling by a dimensionless factor (e.g. energy per unit of work).
        impl Div<f64> for $name {
            type Output = $name;
            fn div(self, rhs: f64) -> $name {
                $name(self.0 / rhs)
            }
        }

        /// The ratio of two quantities of the same unit is dimensionless.
        impl Div for $name {
            type Output = f64;
            fn div(self, rhs: $name) -> f64 {
                self.0 / rhs.0
            }
        }

        impl Sum for $name {
            fn sum<I: Iterator<Item = $name>>(iter: I) -> $name {
                $name(iter.map(|x| x.0).sum())
            }
        }

        impl<'a> Sum<&'a $name> for $name {
            fn sum<I: Iterator<Item = &'a $name>>(iter: I) -> $name {
                $name(iter.map(|x| x.0).sum())
            }
        }
    };
}

float_unit!(
    /// Energy in joules.
    Joules,
    "J"
);
float_unit!(
    /// Power in watts (joules per second).
    Watts,
    "W"
);
float_unit!(
    /// A duration in seconds. Use `std::time::Duration` for timing and this for reporting.
    Seconds,
    "s"
);

impl From<std::time::Duration> for Seconds {
    fn from(d: std::time::Duration) -> Seconds {
        Seconds(d.as_secs_f64())
    }
}

/// Power sustained for a duration is energy.
impl Mul<Seconds> for Watts {
    type Output = Joules;
    fn mul(self, rhs: Seconds) -> Joules {
        Joules(self.0 * rhs.0)
    }
}

impl Mul<Watts> for Seconds {
    type Output = Joules;
    fn mul(self, rhs: Watts) -> Joules {
        Joules(self.0 * rhs.0)
    }
}

/// Energy over a duration is average power.
impl Div<Seconds> for Joules {
    type Output = Watts;
    fn div(self, rhs: Seconds) -> Watts {
        Watts(self.0 / rhs.0)
    }
}

/// Energy over average power is the duration it was sustained for.
impl Div<Watts> for Joules {
    type Output = Seconds;
    fn div(self, rhs: Watts) -> Seconds {
        Seconds(self.0 / rhs.0)
    }
}

/// A size in bytes. Integer, because bytes are counted, not measured.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bytes(pub u64);

impl Bytes {
    /// The bare count.
    pub fn value(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} B", self.0)
    }
}

impl Add for Bytes {
    type Output = Bytes;
    fn add(self, rhs: Bytes) -> Bytes {
        Bytes(self.0 + rhs.0)
    }
}

/// Saturates at zero: a byte count never goes negative.
impl Sub for Bytes {
    type Output = Bytes;
    fn sub(self, rhs: Bytes) -> Bytes {
        Bytes(self.0.saturating_sub(rhs.0))
    }
}

impl AddAssign for Bytes {
    fn add_assign(&mut self, rhs: Bytes) {
        self.0 += rhs.0;
    }
}

impl Mul<u64> for Bytes {
    type Output = Bytes;
    fn mul(self, rhs: u64) -> Bytes {
        Bytes(self.0 * rhs)
    }
}

impl Sum for Bytes {
    fn sum<I: Iterator<Item = Bytes>>(iter: I) -> Bytes {
        Bytes(iter.map(|x| x.0).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_times_time_is_energy_and_back() {
        let e = Watts(50.0) * Seconds(0.3);
        assert!((e.0 - 15.0).abs() < 1e-12);
        assert_eq!(Seconds(2.0) * Watts(3.0), Joules(6.0));
        assert_eq!(Joules(10.0) / Seconds(4.0), Watts(2.5));
        assert_eq!(Joules(10.0) / Watts(4.0), Seconds(2.5));
        assert_eq!(Joules(10.0) / 4.0, Joules(2.5));
        assert_eq!(Joules(10.0) / Joules(4.0), 2.5);
    }

    #[test]
    fn add_sub_assign_and_sum() {
        let mut e = Joules(1.0) + Joules(2.0) - Joules(0.5);
        e += Joules(1.5);
        assert_eq!(e, Joules(4.0));
        e -= Joules(1.0);
        assert_eq!(e, Joules(3.0));
        let total: Joules = [Joules(1.0), Joules(2.0), Joules(3.5)].into_iter().sum();
        assert_eq!(total, Joules(6.5));
        let by_ref: Joules = [Joules(1.0), Joules(2.0)].iter().sum();
        assert_eq!(by_ref, Joules(3.0));
        assert_eq!(Bytes(3) - Bytes(5), Bytes(0));
        assert_eq!([Bytes(3), Bytes(5)].into_iter().sum::<Bytes>(), Bytes(8));
        assert!(Watts(1.0) < Watts(2.0));
    }

    #[test]
    fn display_carries_the_unit() {
        assert_eq!(Joules(1.5).to_string(), "1.5 J");
        assert_eq!(format!("{:.2}", Watts(12.3456)), "12.35 W");
        assert_eq!(Seconds(2.0).to_string(), "2 s");
        assert_eq!(Bytes(1024).to_string(), "1024 B");
    }

    #[test]
    fn serialises_as_a_bare_number() {
        assert_eq!(serde_json::to_string(&Joules(2.5)).unwrap(), "2.5");
        assert_eq!(serde_json::to_string(&Bytes(7)).unwrap(), "7");
        let w: Watts = serde_json::from_str("12.0").unwrap();
        assert_eq!(w, Watts(12.0));
        let s: Seconds = std::time::Duration::from_millis(1500).into();
        assert_eq!(s, Seconds(1.5));
    }
}
