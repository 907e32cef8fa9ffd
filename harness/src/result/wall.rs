//! The wall meter's part of a repeat (`--meter ptd://`), and energy that could not be resolved.

use serde::{Deserialize, Serialize};

use crate::units::{Joules, Seconds, Watts};

/// A domain whose energy in this repeat is not a measurement (too few samples, samples lost,
/// readings rejected), with the reason. Its figure is left out of `energy_j`, and `compare`
/// and `gate` treat the repeat's energy as unresolved: never as a small number.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnresolvedEnergy {
    pub domain: String,
    pub reason: String,
}

/// The analyzer's uncertainty over one window, in percent (PTDaemon sends fractions).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WallUncertainty {
    /// `known` (fixed ranges), `unknown` (auto-ranging), `unavailable` (refused or unreadable).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_pct: Option<f64>,
    /// The worst sample's; this is what the limit is checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pct: Option<f64>,
    pub limit_pct: f64,
    /// `true` when every sample is known to be within the limit, `false` when one is above
    /// it, absent when that cannot be told (unknown or unavailable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_limit: Option<bool>,
    /// The daemon's reply, verbatim.
    pub reply: String,
}

/// What the analyzer measured for a repeat: one `Go` … `Stop` window covering `passes`
/// back-to-back runs of the repeat's work.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WallMeterRepeat {
    /// The window's mark in the analyzer's log.
    pub mark: String,
    /// Energy of one pass: `window_energy_j / passes`. Absent when unresolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_j: Option<Joules>,
    /// Mean of the window's samples × `window_s`. Absent when unresolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_energy_j: Option<Joules>,
    /// Why the window's energy is not a measurement; absent when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unresolved: Option<String>,
    /// Samples the analyzer logged in the window, and log lines that were not samples.
    #[serde(default)]
    pub samples: u64,
    #[serde(default)]
    pub lost_lines: u64,
    /// The analyzer's sample period, as the daemon confirmed it.
    #[serde(default)]
    pub sample_period_s: f64,
    /// From the `Go` reply to `Stop`, on effbench's clock.
    #[serde(default)]
    pub window_s: Seconds,
    /// How many runs of the repeat's work the window holds (training repeats are run again,
    /// same seed, until the window resolves).
    #[serde(default = "one")]
    pub passes: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_power_w: Option<Watts>,
    /// The daemon's own running average (`Watts`), a cross-check only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon_avg_w: Option<f64>,
    #[serde(default)]
    pub uncertainty: WallUncertainty,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_volts: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_amps: Option<f64>,
    /// The analyzer samples are in `<workload>.wall.csv` under this mark.
    #[serde(default)]
    pub method: String,
}

fn one() -> u32 {
    1
}
