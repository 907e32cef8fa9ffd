//! The PTDaemon reply grammar, as pure functions: no sockets, so every reply shape is unit-tested.
//!
//! Source: SPEC PTDaemon's TCP text protocol as MLCommons power-dev's client uses it
//! (`ptd_client_server/lib/common.py`, `lib/server.py`, `tests/unit/test_server.py`), summarised
//! in sensors.md §4.2. The reply formats of `Watts`, `Uncertainty`, `Go`, `RR` and `SR` are
//! taken from recorded real sessions (PTDaemon 1.10 in mlcommons/inference_results_v4.1; each
//! test names its source), not guessed. The log lines read back by `RL` are in [`super::log`].

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

/// `Watts,<avg>,<min>,<max>,<samples>,<errors>,<valid>`: PTDaemon's running statistics of
/// the current measurement (between `Go` and `Stop`), or of the last one after `Stop`. **Not**
/// the latest sample: e.g. `Watts,343.822162,167.300000,403.700000,916,0,916` after a 916 s
/// window whose power went from 167 W to 403 W (UntetherAI h13_u3_slim, inference_results_v4.1,
/// `power/server.log`).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct WattsStats {
    pub avg: f64,
    pub min: f64,
    pub max: f64,
    pub samples: u64,
    pub errors: u64,
    pub valid: u64,
}

/// `Uncertainty,<avg>,<min>,<max>,<samples>,<invalid>,<valid>,<unknown>`: the analyzer's
/// uncertainty over the current (or last) measurement, as **fractions** (`0.004572` = 0.46%).
/// While the analyzer auto-ranges it cannot say: `Uncertainty,-1.0,10000000.000000,0.000000,
/// 916,0,0,916` (same session, the ranging window).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct UncertaintyStats {
    pub avg: f64,
    pub min: f64,
    pub max: f64,
    pub samples: u64,
    pub invalid: u64,
    pub valid: u64,
    pub unknown: u64,
}

impl UncertaintyStats {
    /// The average over the samples whose uncertainty is known, in percent; `None` when no
    /// sample's is (auto-ranging: the daemon sends -1).
    pub fn avg_pct(&self) -> Option<f64> {
        (self.valid > 0 && self.avg >= 0.0).then_some(self.avg * 100.0)
    }
    /// The worst sample's, in percent; `None` when no sample's is known.
    pub fn max_pct(&self) -> Option<f64> {
        (self.valid > 0 && self.max >= 0.0).then_some(self.max * 100.0)
    }
}

fn numbers<const N: usize>(reply: &str, head: &str, expected: &str) -> Result<[f64; N], String> {
    let f: Vec<&str> = reply.trim().split(',').map(str::trim).collect();
    if f.len() != N + 1 || f[0] != head {
        return Err(expected.into());
    }
    let mut out = [0.0; N];
    for (o, t) in out.iter_mut().zip(&f[1..]) {
        *o = t.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| expected.to_string())?;
    }
    Ok(out)
}

fn count(v: f64, expected: &str) -> Result<u64, String> {
    (v >= 0.0 && v.fract() == 0.0 && v < 1e15).then_some(v as u64).ok_or_else(|| expected.to_string())
}

/// Parses the `Watts` reply.
pub fn parse_watts(reply: &str) -> Result<WattsStats, String> {
    const EXPECTED: &str = "Watts,<avg>,<min>,<max>,<samples>,<errors>,<valid>";
    let [avg, min, max, n, e, v] = numbers::<6>(reply, "Watts", EXPECTED)?;
    Ok(WattsStats {
        avg,
        min,
        max,
        samples: count(n, EXPECTED)?,
        errors: count(e, EXPECTED)?,
        valid: count(v, EXPECTED)?,
    })
}

/// Parses the `Uncertainty` reply.
pub fn parse_uncertainty(reply: &str) -> Result<UncertaintyStats, String> {
    const EXPECTED: &str = "Uncertainty,<avg>,<min>,<max>,<samples>,<invalid>,<valid>,<unknown> (fractions)";
    let [avg, min, max, n, inv, v, u] = numbers::<7>(reply, "Uncertainty", EXPECTED)?;
    Ok(UncertaintyStats {
        avg,
        min,
        max,
        samples: count(n, EXPECTED)?,
        invalid: count(inv, EXPECTED)?,
        valid: count(v, EXPECTED)?,
        unknown: count(u, EXPECTED)?,
    })
}

/// The sample period the daemon says it uses, from its reply to `Go`: `Starting untimed
/// measurement, maximum 500000 samples at 1000ms with 0 rampup samples` gives 1000.
pub fn parse_go_period_ms(reply: &str) -> Option<u32> {
    let mut words = reply.split_whitespace();
    while let Some(w) = words.next() {
        if w == "at" {
            return words.next()?.strip_suffix("ms")?.parse().ok();
        }
    }
    None
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
    fn real_watts_replies() {
        // UntetherAI h13_u3_slim resnet50 (WT210), inference_results_v4.1, power/server.log.
        let w = parse_watts("Watts,343.822162,167.300000,403.700000,916,0,916").unwrap();
        assert_eq!(w, WattsStats { avg: 343.822162, min: 167.3, max: 403.7, samples: 916, errors: 0, valid: 916 });
        // NVIDIA H200 MaxQ 3d-unet (WT333E), quoted in sensors.md §4.2.
        assert_eq!(parse_watts("Watts,4420.344901,2360.000000,4692.200000,755,0,755").unwrap().samples, 755);
        for bad in [
            "",
            "22.97",
            "Watts,22.97",
            "Watts: 22.97",
            "Watts,1,2,3,4.5,0,4",
            "Watts,nan,1,2,3,0,3",
            "Power,1,2,3,4,0,4",
        ] {
            assert!(parse_watts(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn real_uncertainty_replies_are_fractions() {
        // Same session: the testing window (fixed ranges), then the ranging window (auto).
        let u = parse_uncertainty("Uncertainty,0.004572,0.003929,0.006985,916,0,916,0").unwrap();
        assert!((u.avg_pct().unwrap() - 0.4572).abs() < 1e-9, "{u:?}");
        assert!((u.max_pct().unwrap() - 0.6985).abs() < 1e-9, "{u:?}");
        let auto = parse_uncertainty("Uncertainty,-1.0,10000000.000000,0.000000,916,0,0,916").unwrap();
        assert_eq!((auto.avg_pct(), auto.max_pct(), auto.unknown), (None, None, 916));
        // sensors.md §4.2: 0.002445 is 0.24%, not 0.002445%.
        let m = parse_uncertainty("Uncertainty,0.002445,0.002100,0.003000,755,0,755,0").unwrap();
        assert!((m.avg_pct().unwrap() - 0.2445).abs() < 1e-9);
        for bad in ["Uncertainty,0.20", "Uncertainty: 1.5%", "Uncertainty checking is off", ""] {
            assert!(parse_uncertainty(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn go_reply_names_the_period() {
        let real = "Starting untimed measurement, maximum 500000 samples at 1000ms with 0 rampup samples";
        assert_eq!(parse_go_period_ms(real), Some(1000));
        assert_eq!(parse_go_period_ms("Starting untimed measurement"), None);
    }

    #[test]
    fn marks() {
        assert!(check_mark("resnet_base-1.v2").is_ok());
        for bad in ["", "a,b", "a b", "notset", &"x".repeat(65)] {
            assert!(check_mark(bad).is_err(), "{bad}");
            assert!(check_mark(&make_mark(bad)).is_ok(), "{bad}");
        }
        assert_eq!(make_mark("resnet/base repeat,3"), "resnet_base_repeat_3");
    }
}
