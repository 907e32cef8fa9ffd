//! What one analyzer window (`Go` … `Stop`) measured, computed from the daemon's own samples:
//! pure functions over the parsed replies, so every rule is unit-tested without a socket.
//!
//! **Energy** is the mean of the window's samples times the window's length on effbench's
//! clock (from the `Go` reply to sending `Stop`), as MLPerf Power takes average power over
//! its run. The analyzer free-runs: each sample is its reading over its last update interval,
//! not aligned with `Go` (a real WT210's first sample came 0.21 s after `Go`, its last 0.26 s
//! before `Stop`), so Σ W × period would be off by up to one period at each edge; the mean
//! over the window is off only by the difference between the edge samples' power and the
//! mean, times the uncovered fraction of a period.
//!
//! **Resolution**: a window is a measurement only when it holds at least `min_samples`
//! samples, the count agrees with its length (samples were not lost), the daemon's own count
//! (`Watts`) agrees with what `RL` returned, and at most 1% of the log lines were rejected.
//! Otherwise the energy is `None` with the reason: never a small number.

use super::log::{LogLine, PtdSample};
use super::proto::{self, UncertaintyStats};
use crate::units::{Joules, Seconds};

/// At most this fraction of a window's log lines may be daemon errors or unparsable lines
/// before its energy is unresolved.
pub const MAX_LOST_FRACTION: f64 = 0.01;

/// The analyzer's uncertainty over one window.
#[derive(Clone, Debug, PartialEq)]
pub enum Uncertainty {
    /// Every sample's uncertainty was known (fixed ranges).
    Known { avg_pct: f64, max_pct: f64, stats: UncertaintyStats },
    /// Some or all samples' uncertainty is unknown: the analyzer was auto-ranging.
    Unknown { stats: UncertaintyStats },
    /// The daemon refused `Uncertainty` or sent something we cannot read (quoted).
    Unavailable { reply: String },
}

impl Uncertainty {
    /// Reads the reply to `Uncertainty`.
    pub fn from_reply(reply: &str) -> Uncertainty {
        match proto::parse_uncertainty(reply) {
            Err(_) => Uncertainty::Unavailable { reply: reply.to_string() },
            Ok(stats) => match (stats.unknown, stats.avg_pct(), stats.max_pct()) {
                (0, Some(avg_pct), Some(max_pct)) => Uncertainty::Known { avg_pct, max_pct, stats },
                _ => Uncertainty::Unknown { stats },
            },
        }
    }

    /// `Some(true)` when every sample is known to be within `limit_pct` and none was invalid,
    /// `Some(false)` when a sample is above it (or invalid), `None` when it cannot be told.
    pub fn within(&self, limit_pct: f64) -> Option<bool> {
        match self {
            Uncertainty::Known { max_pct, stats, .. } => Some(*max_pct <= limit_pct && stats.invalid == 0),
            Uncertainty::Unknown { stats } => {
                (stats.invalid > 0 || stats.max_pct().is_some_and(|m| m > limit_pct)).then_some(false)
            }
            Uncertainty::Unavailable { .. } => None,
        }
    }

    /// `known`, `unknown` or `unavailable`.
    pub fn status(&self) -> &'static str {
        match self {
            Uncertainty::Known { .. } => "known",
            Uncertainty::Unknown { .. } => "unknown",
            Uncertainty::Unavailable { .. } => "unavailable",
        }
    }
}

/// What the analyzer logged for one window ([`super::PtdWindows::end_window`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PtdWindowReport {
    pub mark: String,
    /// The window's samples, in the daemon's order.
    pub samples: Vec<PtdSample>,
    /// Log lines that were not samples: daemon `ERROR` lines and lines we could not parse.
    pub lost_lines: usize,
    /// The analyzer's sample period, as the daemon confirmed it in its reply to `Go`.
    pub period_s: f64,
    /// From the `Go` reply to sending `Stop`, on effbench's clock.
    pub window_s: Seconds,
    /// Mean power of the samples.
    pub mean_w: Option<f64>,
    /// `mean_w × window_s`; `None` when the window is not resolved (see `unresolved`).
    pub energy: Option<Joules>,
    /// Why `energy` is not a measurement; `None` when it is.
    pub unresolved: Option<String>,
    /// Highest volts / amps over every channel, for choosing fixed ranges after ranging.
    pub max_volts: Option<f64>,
    pub max_amps: Option<f64>,
    pub uncertainty: Uncertainty,
    /// The daemon's `Uncertainty` reply, verbatim.
    pub uncertainty_reply: String,
    /// The daemon's own running average and sample count (`Watts` after `Stop`): a cross-check.
    pub daemon_avg_w: Option<f64>,
    pub daemon_samples: Option<u64>,
    /// Daemon error lines, rejected lines, a cross-check that disagrees, unknown uncertainty.
    pub warnings: Vec<String>,
}

/// The raw material of one window, as the client gathered it.
pub struct WindowInput {
    pub mark: String,
    pub lines: Vec<LogLine>,
    /// Warnings for lines that could not be parsed (one per line).
    pub unparsed: Vec<String>,
    pub period_s: f64,
    pub window_s: Seconds,
    pub uncertainty_reply: String,
    pub watts_reply: Option<String>,
    pub min_samples: usize,
}

/// Builds the report: energy, resolution, uncertainty and cross-checks (module docs).
pub fn report(input: WindowInput) -> PtdWindowReport {
    let WindowInput { mark, lines, unparsed, period_s, window_s, uncertainty_reply, watts_reply, min_samples } = input;
    let mut warnings = Vec::new();
    let mut samples = Vec::with_capacity(lines.len());
    let mut lost = unparsed.len();
    for line in lines {
        match line {
            LogLine::Sample(s) => samples.push(s),
            LogLine::DaemonError { time, message } => {
                lost += 1;
                warnings.push(format!("PTDaemon logged an error at {time}: {message}; that sample is missing"));
            }
        }
    }
    warnings.extend(unparsed);
    let mean_w = (!samples.is_empty()).then(|| samples.iter().map(|s| s.watts).sum::<f64>() / samples.len() as f64);
    let daemon = watts_reply.as_deref().map(proto::parse_watts);
    let (daemon_avg_w, daemon_samples) = match &daemon {
        Some(Ok(w)) => (Some(w.avg), Some(w.samples)),
        Some(Err(e)) => {
            warnings
                .push(format!("cannot read the daemon's Watts reply {watts_reply:?} (expected {e}); no cross-check"));
            (None, None)
        }
        None => (None, None),
    };
    let counts = Counts { samples: samples.len(), lost, daemon_samples, period_s, window_s: window_s.0, min_samples };
    let unresolved = counts.unresolved();
    if let (Some(ours), Some(theirs)) = (mean_w, daemon_avg_w) {
        if unresolved.is_none() && lost == 0 && (ours - theirs).abs() > 0.005 * theirs.abs().max(1.0) {
            warnings.push(format!(
                "the samples' mean, {ours:.3} W, differs from the daemon's own average, {theirs:.3} W, by more than 0.5%"
            ));
        }
    }
    let uncertainty = Uncertainty::from_reply(&uncertainty_reply);
    let uncertainty_reply: String = uncertainty_reply.chars().take(200).collect();
    warnings.extend(uncertainty_warning(&uncertainty));
    let fold = |f: fn(&PtdSample) -> f64| samples.iter().map(f).filter(|v| *v >= 0.0).reduce(f64::max);
    PtdWindowReport {
        mark,
        lost_lines: lost,
        period_s,
        window_s,
        energy: mean_w.filter(|_| unresolved.is_none()).map(|w| Joules(w * window_s.0)),
        mean_w,
        unresolved,
        max_volts: fold(|s| s.max_volts_amps().0),
        max_amps: fold(|s| s.max_volts_amps().1),
        uncertainty,
        uncertainty_reply,
        daemon_avg_w,
        daemon_samples,
        samples,
        warnings,
    }
}

struct Counts {
    samples: usize,
    lost: usize,
    daemon_samples: Option<u64>,
    period_s: f64,
    window_s: f64,
    min_samples: usize,
}

impl Counts {
    fn unresolved(&self) -> Option<String> {
        let Counts { samples: n, lost, period_s: p, window_s: t, min_samples, .. } = *self;
        let lines = n + lost;
        let expected = t / p;
        let slack = (0.02 * expected).max(2.0);
        if n == 0 {
            return Some(format!("the analyzer logged no sample in this {t:.3} s window"));
        }
        if t < min_samples as f64 * p {
            return Some(format!(
                "{n} analyzer sample(s) at {p} s: a {t:.3} s window is shorter than the {min_samples} sample periods \
                 ({:.0} s) needed to resolve its energy with this analyzer",
                min_samples as f64 * p
            ));
        }
        if (lines as f64) < expected - slack || (lines as f64) > expected + slack {
            return Some(format!(
                "the analyzer logged {lines} line(s) in {t:.3} s at {p} s per sample (expected about {expected:.0}): \
                 samples were lost or the log mixes windows"
            ));
        }
        if n < min_samples {
            return Some(format!("{n} analyzer sample(s), fewer than the {min_samples} a measurement needs"));
        }
        if let Some(d) = self.daemon_samples.filter(|d| *d != lines as u64) {
            return Some(format!("the daemon counted {d} samples in this window, but RL returned {lines} line(s)"));
        }
        if lost as f64 > MAX_LOST_FRACTION * lines as f64 {
            return Some(format!(
                "{lost} of {lines} log line(s) were errors or unreadable, more than {:.0}%",
                MAX_LOST_FRACTION * 100.0
            ));
        }
        None
    }
}

fn uncertainty_warning(u: &Uncertainty) -> Option<String> {
    match u {
        Uncertainty::Known { .. } => None,
        Uncertainty::Unknown { stats } => Some(format!(
            "the analyzer's uncertainty is unknown for {} of {} sample(s): it was auto-ranging; use --meter-ranging \
             (or fixed ranges) for a window whose accuracy is known",
            stats.unknown, stats.samples
        )),
        Uncertainty::Unavailable { reply } => Some(format!(
            "PTDaemon gave no readable uncertainty ({reply:?}); the analyzer's accuracy for this window is unchecked"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensor::ptd::log::parse_log_line;

    fn lines(watts: &[f64]) -> Vec<LogLine> {
        watts
            .iter()
            .map(|w| {
                parse_log_line(&format!("Time,07-23-2024 13:28:10.096,Watts,{w},Volts,118.6,Amps,1.6,PF,0.9")).unwrap()
            })
            .collect()
    }

    fn input(watts: &[f64], window_s: f64) -> WindowInput {
        let n = watts.len();
        WindowInput {
            mark: "m".into(),
            lines: lines(watts),
            unparsed: Vec::new(),
            period_s: 1.0,
            window_s: Seconds(window_s),
            // Real testing-window reply (UntetherAI h13_u3_slim, inference_results_v4.1).
            uncertainty_reply: format!("Uncertainty,0.004572,0.003929,0.006985,{n},0,{n},0"),
            watts_reply: None,
            min_samples: 60,
        }
    }

    #[test]
    fn energy_is_the_mean_times_the_window_also_across_a_power_step() {
        // 100 W for 30 s, then 400 W for 30.5 s: 3000 + 12200 = 15200 J.
        let mut w = vec![100.0; 30];
        w.extend(vec![400.0; 30]);
        let r = report(input(&w, 60.5));
        let e = r.energy.unwrap().0;
        assert!((e - 15200.0).abs() < 0.02 * 15200.0, "{e}");
        assert_eq!(r.unresolved, None);
        assert!(matches!(r.uncertainty, Uncertainty::Known { .. }));
        assert_eq!(r.uncertainty.within(1.0), Some(true));
    }

    #[test]
    fn a_window_shorter_than_the_minimum_samples_is_unresolved_never_small() {
        let r = report(input(&[400.0], 0.5));
        assert_eq!(r.energy, None);
        assert!(r.unresolved.as_deref().unwrap().contains("shorter than the 60 sample periods"), "{:?}", r.unresolved);
        assert_eq!(r.mean_w, Some(400.0), "the mean is kept for the record");
    }

    #[test]
    fn lost_samples_and_a_disagreeing_daemon_count_are_unresolved() {
        let r = report(input(&[200.0; 60], 80.0));
        assert!(r.unresolved.as_deref().unwrap().contains("expected about 80"), "{:?}", r.unresolved);
        let mut i = input(&[200.0; 60], 60.2);
        i.watts_reply = Some("Watts,200.000000,200.000000,200.000000,64,0,64".into());
        let r = report(i);
        assert!(r.unresolved.as_deref().unwrap().contains("daemon counted 64"), "{:?}", r.unresolved);
        let mut i = input(&[200.0; 60], 61.0);
        i.lines.push(parse_log_line("Time,t,ERROR,Bad volts reading nan from WT310").unwrap());
        i.lines.push(parse_log_line("Time,t,ERROR,Bad volts reading nan from WT310").unwrap());
        let r = report(i);
        assert!(r.unresolved.as_deref().unwrap().contains("2 of 62"), "{:?}", r.unresolved);
        assert!(r.warnings.iter().any(|w| w.contains("Bad volts")), "{:?}", r.warnings);
    }

    #[test]
    fn uncertainty_above_the_limit_unknown_and_unavailable() {
        let mut i = input(&[200.0; 60], 60.0);
        i.uncertainty_reply = "Uncertainty,0.012000,0.011000,0.015000,60,0,60,0".into();
        let r = report(i);
        assert_eq!(r.uncertainty.within(1.0), Some(false), "1.5% worst sample is above 1%");
        assert_eq!(r.uncertainty.within(2.0), Some(true));
        let mut i = input(&[200.0; 60], 60.0);
        // The real auto-ranging reply (ranging window of the same session).
        i.uncertainty_reply = "Uncertainty,-1.0,10000000.000000,0.000000,60,0,0,60".into();
        let r = report(i);
        assert_eq!((r.uncertainty.status(), r.uncertainty.within(1.0)), ("unknown", None));
        assert!(r.warnings.iter().any(|w| w.contains("auto-ranging")), "{:?}", r.warnings);
        let mut i = input(&[200.0; 60], 60.0);
        i.uncertainty_reply = "Unknown command".into();
        assert_eq!(report(i).uncertainty.status(), "unavailable");
    }

    #[test]
    fn daemon_average_is_a_cross_check_only() {
        let mut i = input(&[200.0; 60], 60.0);
        i.watts_reply = Some("Watts,150.000000,100.000000,200.000000,60,0,60".into());
        let r = report(i);
        assert_eq!(r.energy, Some(Joules(12000.0)), "energy comes from the samples, not from Watts");
        assert!(r.warnings.iter().any(|w| w.contains("daemon's own average")), "{:?}", r.warnings);
    }
}
