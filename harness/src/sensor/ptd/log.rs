//! The analyzer's log as PTDaemon sends it after `RL` / `RL,*,*` / `DC-RL`: a header
//! `Last N samples[ from sum channel and channels 1 - 3]`, then N lines. Pure functions, no
//! sockets.
//!
//! **The wire form** (recorded PTDaemon 1.10 sessions in mlcommons/inference_results_v4.1,
//! `server.log` "Reply from ptd:" lines; see sensors.md §4.2) carries no `Mark` and no channel
//! labels:
//!
//! ```text
//! single channel (WT210):  Time,07-23-2024 13:28:10.096,Watts,167.300000,Volts,118.600000,Amps,1.623000,PF,0.869000
//! multichannel (WT333E):   Time,<ts>,Watts,<sum>,Volts,<v>,Amps,<a>,PF,<pf>,Watts,<ch1>,Volts,...,PF,<pf1>,Watts,<ch2>,...
//! ```
//!
//! The first `Watts,Volts,Amps,PF` group is the analyzer's total (the sum over its channels on
//! a multichannel meter); every later group, which starts again at `Watts`, is one channel.
//! **The `spl.txt` form** that power-dev writes to disk after inserting `Mark,<id>` and `ChN,`
//! labels itself (power-dev `tests/unit/test_server.py`) is read too, for saved logs.

use std::fmt;

/// The most samples one `RL` reply may announce: a 24-hour window at 10 ms. More is refused
/// before anything is read, so a corrupt header cannot make effbench wait or allocate.
pub const MAX_RL_SAMPLES: usize = 8_640_000;

/// One channel of a multichannel sample.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PtdChannel {
    pub watts: f64,
    /// -1 means "not reported" in PTDaemon's convention; kept as sent.
    pub volts: f64,
    pub amps: f64,
    pub pf: f64,
}

/// One logged sample: the analyzer's reading over its last update interval.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PtdSample {
    /// The daemon's timestamp text (`07-23-2024 13:28:10.096`, MM-DD-YYYY), kept verbatim: it
    /// is the director's wall clock, not ours.
    pub time: String,
    /// The analyzer's total: the sum over channels on a multichannel meter.
    pub watts: f64,
    /// -1 means "not reported" (e.g. on merged logs); kept as sent.
    pub volts: f64,
    pub amps: f64,
    /// -1 or NaN when the line has no PF field (kept as sent).
    pub pf: f64,
    /// Only in the `spl.txt` form: the wire form carries no mark.
    pub mark: Option<String>,
    /// Per channel, in the daemon's order (multichannel meters only).
    pub channels: Vec<PtdChannel>,
}

impl PtdSample {
    /// The highest volts and amps of this sample over its total and its channels, for choosing
    /// fixed ranges after a ranging window. -1 ("not reported") never wins.
    pub fn max_volts_amps(&self) -> (f64, f64) {
        let groups = std::iter::once((self.volts, self.amps)).chain(self.channels.iter().map(|c| (c.volts, c.amps)));
        groups.fold((f64::NEG_INFINITY, f64::NEG_INFINITY), |(v, a), (gv, ga)| (v.max(gv), a.max(ga)))
    }

    /// Seconds since 1970 of [`PtdSample::time`] on the director's clock, if it parses.
    pub fn seconds(&self) -> Option<f64> {
        parse_time(&self.time)
    }
}

/// A log line that is a sample, or the daemon's own error line in the log's place.
#[derive(Clone, Debug, PartialEq)]
pub enum LogLine {
    Sample(PtdSample),
    /// `Time,<ts>,ERROR,<message>` (e.g. `Bad volts reading nan from WT310`).
    DaemonError {
        time: String,
        message: String,
    },
}

/// Parses the `RL` header `Last N samples[ ...]`; returns N, at most [`MAX_RL_SAMPLES`].
pub fn parse_rl_header(reply: &str) -> Result<usize, String> {
    let mut t = reply.split_whitespace();
    match (t.next(), t.next().map(str::parse::<usize>), t.next()) {
        (Some("Last"), Some(Ok(n)), Some("samples")) if n <= MAX_RL_SAMPLES => Ok(n),
        (Some("Last"), Some(Ok(n)), Some("samples")) => {
            Err(format!("at most {MAX_RL_SAMPLES} samples (the header announces {n})"))
        }
        _ => Err("\"Last <N> samples\" (e.g. \"Last 916 samples\")".into()),
    }
}

/// Parses a `MM-DD-YYYY HH:MM:SS.mmm` timestamp (the director's clock) to seconds since 1970.
pub fn parse_time(text: &str) -> Option<f64> {
    let t = chrono::NaiveDateTime::parse_from_str(text.trim(), "%m-%d-%Y %H:%M:%S%.f").ok()?;
    Some(t.and_utc().timestamp_micros() as f64 / 1e6)
}

const EXPECTED: &str = "Time,<ts>,Watts,<W>,Volts,<V>,Amps,<A>,PF,<pf>[,Watts,... per channel]";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Field {
    Watts,
    Volts,
    Amps,
    Pf,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Watts => "Watts",
            Field::Volts => "Volts",
            Field::Amps => "Amps",
            Field::Pf => "PF",
        })
    }
}

/// One `Watts,…,Volts,…,Amps,…,PF,…` group while it is being read.
#[derive(Default)]
struct Group {
    watts: Option<f64>,
    volts: Option<f64>,
    amps: Option<f64>,
    pf: Option<f64>,
}

impl Group {
    fn set(&mut self, field: Field, v: f64) -> Result<(), String> {
        let slot = match field {
            Field::Watts => &mut self.watts,
            Field::Volts => &mut self.volts,
            Field::Amps => &mut self.amps,
            Field::Pf => &mut self.pf,
        };
        if slot.replace(v).is_some() {
            return Err(format!("{EXPECTED} ({field} twice in one group)"));
        }
        Ok(())
    }
    fn channel(&self) -> PtdChannel {
        PtdChannel {
            watts: self.watts.unwrap_or(f64::NAN),
            volts: self.volts.unwrap_or(-1.0),
            amps: self.amps.unwrap_or(-1.0),
            pf: self.pf.unwrap_or(-1.0),
        }
    }
}

/// Parses one line read back by `RL`, in the wire form or the `spl.txt` form (module docs).
/// Fields other than Watts/Volts/Amps/PF/Mark and channel labels are skipped as key-value
/// pairs, so a newer daemon's extra field does not lose the sample; a Watts that is missing,
/// not a number or not finite does.
pub fn parse_log_line(line: &str) -> Result<LogLine, String> {
    let f: Vec<&str> = line.trim().split(',').map(str::trim).collect();
    if f.len() < 3 || f[0] != "Time" {
        return Err(EXPECTED.into());
    }
    let time = f[1].to_string();
    if f[2].eq_ignore_ascii_case("error") {
        return Ok(LogLine::DaemonError { time, message: f[3..].join(",") });
    }
    let mut groups: Vec<Group> = Vec::new();
    let mut mark = None;
    let mut i = 2;
    while i < f.len() {
        let key = f[i];
        // `Ch1,` / `Analyzer1,` labels (spl.txt form) only name the group that follows.
        if is_label(key) {
            i += 1;
            continue;
        }
        let value = *f.get(i + 1).ok_or_else(|| format!("{EXPECTED} (field {key:?} has no value)"))?;
        let field = match key {
            "Mark" => {
                mark = Some(value.to_string());
                i += 2;
                continue;
            }
            "Watts" => Field::Watts,
            "Volts" => Field::Volts,
            "Amps" => Field::Amps,
            "PF" => Field::Pf,
            _ => {
                i += 2; // unknown field: skipped
                continue;
            }
        };
        let v = value.parse::<f64>().map_err(|_| format!("{EXPECTED} ({key} value {value:?} is not a number)"))?;
        if field == Field::Watts || groups.is_empty() {
            groups.push(Group::default());
        }
        groups.last_mut().expect("pushed above").set(field, v)?;
        i += 2;
    }
    let Some(total) = groups.first() else { return Err(format!("{EXPECTED} (no Watts field)")) };
    let Some(watts) = total.watts else { return Err(format!("{EXPECTED} (no Watts field)")) };
    if !watts.is_finite() {
        return Err(format!("{EXPECTED} (Watts is {watts})"));
    }
    let t = total.channel();
    Ok(LogLine::Sample(PtdSample {
        time,
        watts,
        volts: t.volts,
        amps: t.amps,
        pf: t.pf,
        mark,
        channels: groups[1..].iter().map(Group::channel).collect(),
    }))
}

fn is_label(key: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    key.strip_prefix("Ch").is_some_and(digits) || key.strip_prefix("Analyzer").is_some_and(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real wire lines: a WT210 (UntetherAI h13_u3_slim resnet50, inference_results_v4.1,
    /// `power/server.log`, "Reply from ptd:" after `RL`) and a WT333E (NVIDIA
    /// H200-SXM-141GBx8_TRT_MaxQ 3d-unet-99.9, same release, quoted in sensors.md §4.2).
    const WT210: &str = "Time,07-23-2024 13:28:10.096,Watts,167.300000,Volts,118.600000,Amps,1.623000,PF,0.869000";
    const WT333E: &str = "Time,07-12-2024 07:18:53.356,Watts,2366.200000,Volts,239.186667,Amps,3.416333,PF,0.965169,\
        Watts,784.100000,Volts,239.380000,Amps,3.395000,PF,0.964700";

    #[test]
    fn real_single_channel_wire_line_has_no_mark_and_is_a_sample() {
        let LogLine::Sample(s) = parse_log_line(WT210).unwrap() else { panic!("not a sample") };
        assert_eq!((s.watts, s.volts, s.amps, s.pf), (167.3, 118.6, 1.623, 0.869));
        assert_eq!(s.mark, None);
        assert!(s.channels.is_empty());
        assert_eq!(s.time, "07-23-2024 13:28:10.096");
        let t = s.seconds().unwrap();
        assert!((t - 1_721_741_290.096).abs() < 1e-3, "{t}");
    }

    #[test]
    fn real_multichannel_wire_line_gives_the_sum_then_each_channel() {
        let LogLine::Sample(s) = parse_log_line(WT333E).unwrap() else { panic!("not a sample") };
        assert_eq!(s.watts, 2366.2, "the first group is the sum channel");
        assert_eq!(s.channels, vec![PtdChannel { watts: 784.1, volts: 239.38, amps: 3.395, pf: 0.9647 }]);
        assert_eq!(s.max_volts_amps(), (239.38, 3.416333));
    }

    #[test]
    fn spl_txt_form_with_mark_and_channel_labels_still_reads() {
        // power-dev tests/unit/test_server.py, the post-processed form.
        let spl = "Time,11-13-2020 22:38:59.240,Watts,272.930000,Volts,-1.000000,Amps,-1.000000,PF,-1.000000,\
                   Mark,notset,Ch1,Watts,91.060000,Volts,120.950000,Amps,0.832100,PF,0.938900,\
                   Ch2,Watts,181.870000,Volts,121.000000,Amps,1.600000,PF,0.940000";
        let LogLine::Sample(s) = parse_log_line(spl).unwrap() else { panic!("not a sample") };
        assert_eq!((s.watts, s.mark.as_deref(), s.channels.len()), (272.93, Some("notset"), 2));
        assert_eq!(s.channels[1].volts, 121.0);
        assert_eq!(s.max_volts_amps(), (121.0, 1.6), "-1 (not reported) never wins");
    }

    #[test]
    fn daemon_error_lines_and_bad_lines() {
        let err = parse_log_line("Time,11-07-2020 17:54:49.071,ERROR,Bad volts reading nan from WT310").unwrap();
        assert_eq!(
            err,
            LogLine::DaemonError {
                time: "11-07-2020 17:54:49.071".into(),
                message: "Bad volts reading nan from WT310".into()
            }
        );
        // A line without PF (a DC analyzer may send none) is still a sample.
        assert!(matches!(parse_log_line("Time,t,Watts,12.5,Volts,48.0,Amps,0.26"), Ok(LogLine::Sample(_))));
        for bad in [
            "",
            "Last 3 samples",
            "Time,t,Watts,abc,Volts,1",
            "Time,t,Volts,230.0",
            "Time,t,Watts,nan,Volts,1",
            "Time,t,Watts",
            "Time,t,Watts,1,Watts",
            "Time,t,Watts,1,Volts,2,Volts,3",
        ] {
            assert!(parse_log_line(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rl_headers_from_real_sessions_and_bounds() {
        assert_eq!(parse_rl_header("Last 916 samples").unwrap(), 916);
        assert_eq!(parse_rl_header("Last 756 samples from sum channel and channels 1 - 3").unwrap(), 756);
        assert!(parse_rl_header("Invalid number of parameters").is_err());
        assert!(parse_rl_header("Last many samples").is_err());
        let e = parse_rl_header(&format!("Last {} samples", MAX_RL_SAMPLES + 1)).unwrap_err();
        assert!(e.contains("at most"), "{e}");
    }
}
