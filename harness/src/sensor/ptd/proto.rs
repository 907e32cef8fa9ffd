//! The PTDaemon reply grammar, as pure functions: no sockets, so every reply shape is unit-tested.
//!
//! Source: SPEC PTDaemon's TCP text protocol as MLCommons power-dev's client uses it
//! (`ptd_client_server/lib/common.py`, `lib/server.py`, `tests/unit/test_server.py`), summarised
//! in sensors.md §4.2. Formats marked [U] there (the `Watts` and `Uncertainty` replies) are
//! parsed leniently and kept verbatim so a real capture can correct us.

use std::fmt;

/// The exact greeting PTDaemon answers `Hello` with.
pub const HELLO_REPLY: &str = "Hello, PTDaemon here!";

/// What went wrong talking to PTDaemon. Every variant that concerns a reply quotes it.
#[derive(Debug, thiserror::Error)]
pub enum PtdError {
    #[error(
        "PTDaemon at {addr}: cannot connect: {error}; is PTDaemon running and listening there (default port 8888)?"
    )]
    Connect {
        addr: String,
        #[source]
        error: std::io::Error,
    },
    #[error("PTDaemon at {addr}: no complete reply to {command:?} within {timeout_s} s (received so far: {partial:?}); the daemon or its analyzer is stalled, or the network dropped; the connection is closed")]
    Timeout { addr: String, command: String, timeout_s: f64, partial: String },
    #[error("PTDaemon at {addr}: connection lost during {command:?}: {error}")]
    Io {
        addr: String,
        command: String,
        #[source]
        error: std::io::Error,
    },
    #[error("PTDaemon at {addr}: connection closed by the daemon during {command:?} (received so far: {partial:?})")]
    Closed { addr: String, command: String, partial: String },
    #[error("PTDaemon at {addr}: {command:?} failed: the daemon replied {reply:?}")]
    Refused { addr: String, command: String, reply: String },
    #[error("PTDaemon at {addr}: cannot parse the reply {reply:?} to {command:?}: expected {expected}")]
    BadReply { addr: String, command: String, reply: String, expected: String },
    #[error("PTDaemon at {addr}: the connection is unusable after an earlier error ({cause}); reconnect")]
    Broken { addr: String, cause: String },
    #[error("invalid PTDaemon window mark {mark:?}: {reason}")]
    BadMark { mark: String, reason: String },
    #[error("PTDaemon window {mark:?}: {reason}")]
    WindowState { mark: String, reason: String },
}

/// An analyzer range for `SR,V,…` / `SR,A,…`.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum PtdRange {
    /// Let the analyzer pick (not allowed in MLPerf testing runs, fine for ranging).
    Auto,
    /// A fixed range in volts or amps.
    Value(f64),
}

impl fmt::Display for PtdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PtdRange::Auto => f.write_str("Auto"),
            PtdRange::Value(v) => write!(f, "{v}"),
        }
    }
}

/// The reply to `RR`: `Ranges,{AmpAutorange},{AmpRange},{VoltAutorange},{VoltRange}`.
/// Autorange: -1 unknown, 0 off, 1 on. Range: -1.0 unknown.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct PtdRanges {
    pub amp_autorange: i32,
    pub amp_range: f64,
    pub volt_autorange: i32,
    pub volt_range: f64,
}

impl PtdRanges {
    /// The setting that restores the current range, if it is known.
    pub fn amps(&self) -> Option<PtdRange> {
        restorable(self.amp_autorange, self.amp_range)
    }
    /// The setting that restores the voltage range, if it is known.
    pub fn volts(&self) -> Option<PtdRange> {
        restorable(self.volt_autorange, self.volt_range)
    }
}

fn restorable(auto: i32, range: f64) -> Option<PtdRange> {
    match auto {
        1 => Some(PtdRange::Auto),
        0 if range > 0.0 => Some(PtdRange::Value(range)),
        _ => None,
    }
}

/// One channel of a multichannel sample (`Ch1,Watts,…,Volts,…,Amps,…,PF,…`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PtdChannel {
    pub watts: f64,
    /// -1 means "not reported" in PTD's convention; kept as sent.
    pub volts: f64,
    pub amps: f64,
    pub pf: f64,
}

/// One logged sample: `Time,<ts>,Watts,<W>,Volts,<V>,Amps,<A>,PF,<pf>,Mark,<mark>[,Ch1,…]`.
/// For multichannel analyzers the top-level figures are the sum over channels.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PtdSample {
    /// The daemon's timestamp text (`01-22-2021 15:05:14.313`), kept verbatim: it is the
    /// director's wall clock, not ours.
    pub time: String,
    pub watts: f64,
    /// -1 means "not reported" (multichannel sums); kept as sent.
    pub volts: f64,
    pub amps: f64,
    pub pf: f64,
    pub mark: String,
    pub channels: Vec<PtdChannel>,
}

/// A log line that is not a sample: `Time,<ts>,ERROR,<message>`, or one we cannot parse.
#[derive(Clone, Debug, PartialEq)]
pub enum LogLine {
    Sample(PtdSample),
    /// An `ERROR` line from the daemon (e.g. `Bad volts reading nan from WT310`).
    DaemonError {
        time: String,
        message: String,
    },
}

/// True when a reply means the command failed: it starts with `Error`, `Unknown command` or
/// `Invalid`, or contains `Error` anywhere (power-dev's rule for `SR`). Case-insensitive.
pub fn is_failure(reply: &str) -> bool {
    let r = reply.trim().to_ascii_lowercase();
    r.starts_with("unknown command") || r.starts_with("invalid") || r.contains("error")
}

/// Checks the `Hello` reply.
pub fn check_hello(reply: &str) -> Result<(), String> {
    if reply.trim() == HELLO_REPLY {
        Ok(())
    } else {
        Err(format!("exactly {HELLO_REPLY:?} (is this port really a PTDaemon?)"))
    }
}

/// Parses the `RR` reply.
pub fn parse_ranges(reply: &str) -> Result<PtdRanges, String> {
    const EXPECTED: &str = "Ranges,<AmpAutorange>,<AmpRange>,<VoltAutorange>,<VoltRange>";
    let f: Vec<&str> = reply.trim().split(',').map(str::trim).collect();
    if f.len() < 5 || f[0] != "Ranges" {
        return Err(EXPECTED.into());
    }
    let int = |s: &str| s.parse::<i32>().map_err(|_| EXPECTED.to_string());
    let num = |s: &str| s.parse::<f64>().map_err(|_| EXPECTED.to_string());
    Ok(PtdRanges {
        amp_autorange: int(f[1])?,
        amp_range: num(f[2])?,
        volt_autorange: int(f[3])?,
        volt_range: num(f[4])?,
    })
}

/// Parses the `RL` header `Last N samples`; returns N.
pub fn parse_rl_header(reply: &str) -> Result<usize, String> {
    let mut t = reply.split_whitespace();
    match (t.next(), t.next().map(str::parse::<usize>)) {
        (Some("Last"), Some(Ok(n))) => Ok(n),
        _ => Err("\"Last <N> samples\"".into()),
    }
}

/// Parses the `Watts` reply. Its exact format is undocumented [U]: accepted are a bare number
/// (`22.97`), `Watts,22.97`, `Watts: 22.97`, `Watts 22.97`, `22.97 W`, and a full sample line.
pub fn parse_watts(reply: &str) -> Result<f64, String> {
    const EXPECTED: &str = "a power in watts (`22.97`, `Watts,22.97` or a sample line)";
    let r = reply.trim();
    let fields: Vec<&str> = r.split(',').map(str::trim).collect();
    let candidate = match fields.iter().position(|f| f.eq_ignore_ascii_case("watts")) {
        Some(i) => fields.get(i + 1).copied().unwrap_or(""),
        None => {
            let r = r.strip_prefix("Watts").map(|s| s.trim_start_matches([':', ' '])).unwrap_or(r);
            r.strip_suffix('W').unwrap_or(r).trim()
        }
    };
    match candidate.parse::<f64>() {
        Ok(w) if w.is_finite() => Ok(w),
        _ => Err(EXPECTED.into()),
    }
}

/// Parses the `Uncertainty` reply; returns the first number in it, taken as percent (the
/// format is undocumented [U]; the fake and the sensors.md sketch use `Uncertainty,0.20`).
/// `None` when the reply holds no number (e.g. uncertainty checking is off).
pub fn parse_uncertainty(reply: &str) -> Option<f64> {
    reply.split([',', ' ', ':', '%']).filter_map(|t| t.trim().parse::<f64>().ok()).find(|v| v.is_finite())
}

/// Parses one line read back by `RL`.
pub fn parse_log_line(line: &str) -> Result<LogLine, String> {
    const EXPECTED: &str = "Time,<ts>,Watts,<W>,Volts,<V>,Amps,<A>,PF,<pf>,Mark,<mark>[,Ch1,...]";
    let f: Vec<&str> = line.trim().split(',').map(str::trim).collect();
    if f.len() < 3 || f[0] != "Time" {
        return Err(EXPECTED.into());
    }
    let time = f[1].to_string();
    if f[2].eq_ignore_ascii_case("error") {
        return Ok(LogLine::DaemonError { time, message: f[3..].join(",") });
    }
    let mut s = PtdSample { time, ..PtdSample::default() };
    let (mut seen_watts, mut seen_mark) = (false, false);
    let mut i = 2;
    while i < f.len() {
        let key = f[i];
        if key.len() > 2 && key.starts_with("Ch") && key[2..].bytes().all(|b| b.is_ascii_digit()) {
            s.channels.push(PtdChannel::default());
            i += 1;
            continue;
        }
        let value = *f.get(i + 1).ok_or_else(|| format!("{EXPECTED} (key {key:?} has no value)"))?;
        let num = || value.parse::<f64>().map_err(|_| format!("{EXPECTED} ({key} value {value:?} is not a number)"));
        match (key, s.channels.last_mut()) {
            ("Mark", _) => {
                s.mark = value.to_string();
                seen_mark = true;
            }
            ("Watts", Some(ch)) => ch.watts = num()?,
            ("Volts", Some(ch)) => ch.volts = num()?,
            ("Amps", Some(ch)) => ch.amps = num()?,
            ("PF", Some(ch)) => ch.pf = num()?,
            ("Watts", None) => {
                s.watts = num()?;
                seen_watts = true;
            }
            ("Volts", None) => s.volts = num()?,
            ("Amps", None) => s.amps = num()?,
            ("PF", None) => s.pf = num()?,
            _ => {} // Unknown fields are allowed: newer daemons may add some.
        }
        i += 2;
    }
    if !(seen_watts && seen_mark) {
        return Err(format!("{EXPECTED} (no Watts or no Mark field)"));
    }
    if !s.watts.is_finite() {
        return Err(format!("{EXPECTED} (Watts is {})", s.watts));
    }
    Ok(LogLine::Sample(s))
}

/// Checks a window mark: it tags every log line, comma-separated, so it must be one plain
/// token. Allowed: ASCII letters, digits, `_`, `-`, `.`; 1 to 64 characters.
pub fn check_mark(mark: &str) -> Result<(), PtdError> {
    let bad = |reason: &str| Err(PtdError::BadMark { mark: mark.into(), reason: reason.into() });
    if mark.is_empty() || mark.len() > 64 {
        return bad("must be 1 to 64 characters");
    }
    if !mark.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        return bad(
            "only ASCII letters, digits, '_', '-' and '.' are allowed (it is a field of a comma-separated log)",
        );
    }
    if mark == "notset" {
        return bad("\"notset\" is what PTDaemon logs outside any window");
    }
    Ok(())
}

/// Turns free text (`resnet/base repeat 3`) into a valid mark: every disallowed character
/// becomes `_`, and the result is cut to 64 characters (`""` becomes `window`). Callers still
/// make marks unique, e.g. by including the repeat index.
pub fn make_mark(text: &str) -> String {
    let mark: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' })
        .take(64)
        .collect();
    match mark.as_str() {
        "" => "window".into(),
        "notset" => "notset_".into(),
        _ => mark,
    }
}

/// Where a PTDaemon listens: `host:port` (port 8888 when omitted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PtdAddress {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for PtdAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// PTDaemon's default port.
pub const DEFAULT_PORT: u16 = 8888;

/// Parses `--meter ptd://HOST[:PORT]` (IPv6 as `ptd://[::1]:8888`). Also accepts a bare
/// `HOST[:PORT]`. The host is not resolved here.
pub fn parse_meter_url(url: &str) -> Result<PtdAddress, String> {
    let err = |why: &str| {
        Err(format!("invalid meter {url:?}: {why}; expected ptd://HOST:PORT, e.g. ptd://192.168.1.20:8888"))
    };
    let rest = match url.split_once("://") {
        Some(("ptd", rest)) => rest,
        Some((scheme, _)) => return err(&format!("unknown scheme {scheme:?} (only ptd:// is supported)")),
        None => url,
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') || rest.contains('?') || rest.contains('@') {
        return err("a meter address has no path, query or user");
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else { return err("unclosed '[' in an IPv6 address") };
        match after {
            "" => (host, None),
            p if p.starts_with(':') => (host, Some(&p[1..])),
            _ => return err("junk after the IPv6 address"),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => return err("write an IPv6 address in brackets: ptd://[::1]:8888"),
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return err("the host is empty");
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return err(&format!("port {p:?} is not a number in 1..=65535")),
        },
    };
    Ok(PtdAddress { host: host.to_string(), port })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptd_url_forms() {
        assert_eq!(parse_meter_url("ptd://10.0.0.5:8889").unwrap(), PtdAddress { host: "10.0.0.5".into(), port: 8889 });
        assert_eq!(parse_meter_url("ptd://director").unwrap().port, DEFAULT_PORT);
        assert_eq!(parse_meter_url("localhost:9000").unwrap().to_string(), "localhost:9000");
        assert_eq!(parse_meter_url("ptd://[::1]:8888/").unwrap().to_string(), "[::1]:8888");
        for bad in
            ["http://h:1", "ptd://:8888", "ptd://h:0", "ptd://h:99999", "ptd://h:1/x", "ptd://::1:8888", "ptd://[::1"]
        {
            let e = parse_meter_url(bad).unwrap_err();
            assert!(e.contains(bad) && e.contains("ptd://HOST:PORT"), "{e}");
        }
    }

    #[test]
    fn replies_that_mean_failure() {
        for r in ["Error: bad range", "Unknown command", "Invalid number of parameters", "SR failed, Error 3"] {
            assert!(is_failure(r), "{r}");
        }
        for r in ["OK", "Hello, PTDaemon here!", "Starting untimed measurement", "Ranges,0,2,0,300"] {
            assert!(!is_failure(r), "{r}");
        }
    }

    #[test]
    fn ranges_reply() {
        let r = parse_ranges("Ranges,0,2.0,1,300.0").unwrap();
        assert_eq!(r, PtdRanges { amp_autorange: 0, amp_range: 2.0, volt_autorange: 1, volt_range: 300.0 });
        assert_eq!(r.amps(), Some(PtdRange::Value(2.0)));
        assert_eq!(r.volts(), Some(PtdRange::Auto));
        assert_eq!(parse_ranges("Ranges,-1,-1.0,0,-1.0").unwrap().amps(), None);
        assert!(parse_ranges("Ranges,0,2.0").is_err());
        assert!(parse_ranges("Ranges,x,2,0,1").is_err());
    }

    #[test]
    fn watts_reply_forms() {
        for r in ["22.97", "Watts,22.97", "Watts: 22.97", "22.97 W", "Time,t,Watts,22.97,Volts,1,Mark,m"] {
            assert_eq!(parse_watts(r).unwrap(), 22.97, "{r}");
        }
        for r in ["", "Watts", "nan", "Watts,abc", "hello"] {
            assert!(parse_watts(r).is_err(), "{r}");
        }
    }

    #[test]
    fn uncertainty_reply() {
        assert_eq!(parse_uncertainty("Uncertainty,0.20"), Some(0.2));
        assert_eq!(parse_uncertainty("Uncertainty: 1.5%"), Some(1.5));
        assert_eq!(parse_uncertainty("Uncertainty checking is off"), None);
    }

    #[test]
    fn log_lines_single_multi_and_error() {
        let one = "Time,01-22-2021 15:05:14.313,Watts,22.970000,Volts,227.370000,Amps,0.204340,PF,0.494400,Mark,run_1";
        let LogLine::Sample(s) = parse_log_line(one).unwrap() else { panic!() };
        assert_eq!((s.watts, s.volts, s.amps, s.pf, s.mark.as_str()), (22.97, 227.37, 0.20434, 0.4944, "run_1"));
        assert_eq!(s.time, "01-22-2021 15:05:14.313");
        let multi = "Time,t,Watts,272.93,Volts,-1.0,Amps,-1.0,PF,-1.0,Mark,notset,\
                     Ch1,Watts,91.06,Volts,120.95,Amps,0.8321,PF,0.9389,Ch2,Watts,181.87,Volts,121.0,Amps,1.6,PF,0.94";
        let LogLine::Sample(s) = parse_log_line(multi).unwrap() else { panic!() };
        assert_eq!(s.watts, 272.93);
        assert_eq!(s.channels.len(), 2);
        assert_eq!((s.channels[0].watts, s.channels[1].volts), (91.06, 121.0));
        let err = parse_log_line("Time,11-07-2020 17:54:49.071,ERROR,Bad volts reading nan from WT310").unwrap();
        assert_eq!(
            err,
            LogLine::DaemonError {
                time: "11-07-2020 17:54:49.071".into(),
                message: "Bad volts reading nan from WT310".into()
            }
        );
        for bad in [
            "",
            "Last 3 samples",
            "Time,t,Watts,abc,Mark,m",
            "Time,t,Watts,1.0",
            "Time,t,Watts,nan,Mark,m",
            "Time,t,Watts",
        ] {
            assert!(parse_log_line(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rl_header_and_marks() {
        assert_eq!(parse_rl_header("Last 12 samples").unwrap(), 12);
        assert!(parse_rl_header("Invalid number of parameters").is_err());
        assert!(check_mark("resnet_base-1.v2").is_ok());
        for bad in ["", "a,b", "a b", "notset", &"x".repeat(65)] {
            assert!(check_mark(bad).is_err(), "{bad}");
            assert!(check_mark(&make_mark(bad)).is_ok(), "{bad}");
        }
        assert_eq!(make_mark("resnet/base repeat,3"), "resnet_base_repeat_3");
    }
}
