//! `--power-command "CMD"`: power or energy printed by a vendor tool we cannot link against
//! (an NPU SMI, a PDU script). The command runs through `sh -c`; its output format is ours to
//! define, since no vendor document covers it:
//!
//! - The **last non-empty line** of stdout is the value (headers above it are ignored).
//! - A value is a number with an optional unit: `12.5`, `12.5 W`, `12500 mW`, `12500000 uW`,
//!   `0.0125 kW` (power) or `3600 J`, `3600000 mJ`, `uJ`/`µJ`, `kJ`, `1 Wh` (cumulative energy).
//! - [`CommandUnit`] (`--power-command-unit auto|W|mW|J|mJ|uJ`) gives the unit of a bare
//!   number; `auto` (default) means watts. A suffix always wins over the option, but must be
//!   the same quantity (a `J` line with `--power-command-unit W` is an error).
//! - Power becomes [`Reading::Power`]; energy becomes a [`Reading::Counter`] in µJ that never
//!   wraps, so the command must print energy that only grows (a meter-side reset is rejected
//!   and reported by the counter helper). The first value fixes the quantity for good.
//!
//! Modes ([`CommandMode`]):
//! - `OneShot { interval }` (default, 1 s): the command is started once per interval.
//! - `Stream`: the command is started once and prints one value per line for as long as it
//!   runs (e.g. `vendor-smi --loop 1`); each line replaces the latest value.
//!
//! In both modes a background thread runs the command and keeps the latest value, so
//! [`Sensor::read`] never waits on a process (the meter's ~50 ms rule). The value is as fresh
//! as the interval: the meter holds it between updates. A value older than
//! `timeout + 2 × interval` is reported as stale. Provenance is `vendor-reported`: we cannot
//! inspect how the tool gets its numbers.
//!
//! A one-shot command that outlives `timeout`, or that floods its output (more than 64 KiB a
//! run, or a line over 4 KiB; see [`pipe`]), is killed with its whole process group; messages
//! quote at most 200 bytes of what it printed.

mod pipe;

use std::io::BufReader;
use std::path::PathBuf;
use std::process::Child;
use std::str::FromStr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::latest::{lock, Latest};
use super::{Provenance, Reading, Sensor, SensorError, SourceInfo};
use crate::units::{Joules, Watts};

use pipe::{drain, kill_group, quote, quote_tail, spawn_sh, Keep, Line, MAX_LINE_BYTES, MAX_OUTPUT_BYTES};

/// The unit of a bare number printed by the command.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum CommandUnit {
    /// Suffix decides; a bare number is watts.
    #[default]
    Auto,
    Watts,
    Milliwatts,
    Joules,
    Millijoules,
    Microjoules,
}

impl FromStr for CommandUnit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => CommandUnit::Auto,
            "W" | "w" => CommandUnit::Watts,
            "mW" => CommandUnit::Milliwatts,
            "J" | "j" => CommandUnit::Joules,
            "mJ" => CommandUnit::Millijoules,
            "uJ" | "µJ" => CommandUnit::Microjoules,
            _ => return Err(format!("unknown power command unit {s:?}; use one of auto, W, mW, J, mJ, uJ")),
        })
    }
}

impl CommandUnit {
    /// The name `--power-command-unit` takes.
    pub fn label(self) -> &'static str {
        match self {
            CommandUnit::Auto => "auto",
            u => u.suffix(),
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            CommandUnit::Auto | CommandUnit::Watts => "W",
            CommandUnit::Milliwatts => "mW",
            CommandUnit::Joules => "J",
            CommandUnit::Millijoules => "mJ",
            CommandUnit::Microjoules => "uJ",
        }
    }
}

/// One value printed by a command.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum CommandValue {
    Power(Watts),
    /// Cumulative energy.
    Energy(Joules),
}

/// Suffixes, longest first so `mW` is not read as `W`: (suffix, is energy, scale to W or J).
const SUFFIXES: [(&str, bool, f64); 11] = [
    ("mW", false, 1e-3),
    ("uW", false, 1e-6),
    ("µW", false, 1e-6),
    ("kW", false, 1e3),
    ("mJ", true, 1e-3),
    ("uJ", true, 1e-6),
    ("µJ", true, 1e-6),
    ("kJ", true, 1e3),
    ("Wh", true, 3600.0),
    ("W", false, 1.0),
    ("J", true, 1.0),
];

/// Parses one printed value. Errors say what was expected (the caller quotes the text).
pub fn parse_value(text: &str, unit: CommandUnit) -> Result<CommandValue, String> {
    let t = text.trim();
    let (unit_energy, unit_scale) = match unit {
        CommandUnit::Auto | CommandUnit::Watts => (false, 1.0),
        CommandUnit::Milliwatts => (false, 1e-3),
        CommandUnit::Joules => (true, 1.0),
        CommandUnit::Millijoules => (true, 1e-3),
        CommandUnit::Microjoules => (true, 1e-6),
    };
    let (number, energy, scale) = SUFFIXES
        .iter()
        .find_map(|&(suffix, energy, scale)| t.strip_suffix(suffix).map(|n| (n.trim_end(), energy, scale)))
        .unwrap_or((t, unit_energy, unit_scale));
    if unit != CommandUnit::Auto && energy != unit_energy {
        let (want, got) = if unit_energy { ("an energy", "a power") } else { ("a power", "an energy") };
        return Err(format!("{want} (--power-command-unit is {}), not {got}", unit.suffix()));
    }
    let v: f64 = number.parse().map_err(|_| {
        "a number with an optional unit: 12.5, 12.5 W, 12500 mW, or cumulative energy 3600 J".to_string()
    })?;
    if !(v.is_finite() && v >= 0.0) {
        return Err("a finite, non-negative number".into());
    }
    Ok(if energy { CommandValue::Energy(Joules(v * scale)) } else { CommandValue::Power(Watts(v * scale)) })
}

/// How the command is run.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum CommandMode {
    /// Start the command once per `interval`; each run prints one value.
    OneShot { interval: Duration },
    /// Start the command once; it prints one value per line until effbench stops it.
    Stream,
}

/// Everything but the command line. `CommandOptions::new(domain, timeout)` gives the defaults:
/// unit `auto`, one-shot every 1 s, id `command:<domain>`.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandOptions {
    /// The energy domain the value belongs to (`npu:0`, `gpu:0`, `system`).
    pub domain: String,
    /// One-shot: the longest one run may take. Stream: the longest gap between two lines.
    pub timeout: Duration,
    pub unit: CommandUnit,
    pub mode: CommandMode,
    /// Source id; defaults to `command:<domain>`.
    pub id: Option<String>,
}

impl CommandOptions {
    pub fn new(domain: &str, timeout: Duration) -> Self {
        CommandOptions {
            domain: domain.into(),
            timeout,
            unit: CommandUnit::Auto,
            mode: CommandMode::OneShot { interval: Duration::from_secs(1) },
            id: None,
        }
    }
}

/// Runs `sh -c cmd` once, waits at most `timeout`, and returns its stdout. A command still
/// running at the deadline, or printing more than [`MAX_OUTPUT_BYTES`], is killed with its
/// process group. Non-zero exit is an error that quotes the end of stderr (or the start of
/// stdout when stderr is empty).
pub fn run_once(source_id: &str, cmd: &str, timeout: Duration) -> Result<String, SensorError> {
    let unavailable = |reason: String| SensorError::Unavailable { source_id: source_id.into(), reason };
    let flood = |out: &str| {
        unavailable(format!(
            "power command `{cmd}` printed more than {} KiB in one run and was killed (its output \
             begins {}); a one-shot command prints one value per run (a tool that keeps printing \
             needs --power-command-mode stream)",
            MAX_OUTPUT_BYTES / 1024,
            quote(out)
        ))
    };
    let mut child = spawn_sh(cmd).map_err(|e| unavailable(format!("cannot start `sh -c {cmd:?}`: {e}")))?;
    // Pipes are drained on their own threads so a chatty command cannot fill one and stall.
    let stdout = drain(child.stdout.take(), Keep::Head);
    let stderr = drain(child.stderr.take(), Keep::Tail);
    let deadline = Instant::now() + timeout;
    // The command has exited (or was killed); a grandchild holding the pipes open gets at
    // most 1 s more.
    let grace = Duration::from_secs(1);
    let status = loop {
        if stdout.flooded() {
            kill_group(&mut child);
            return Err(flood(&stdout.text.recv_timeout(grace).unwrap_or_default()));
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                crate::interrupt::untrack_group(child.id());
                break status;
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                kill_group(&mut child);
                return Err(SensorError::Transient {
                    source_id: source_id.into(),
                    message: format!(
                        "power command `{cmd}` did not finish within {:.3} s and was killed; raise \
                         --power-command-timeout or use a faster command",
                        timeout.as_secs_f64()
                    ),
                });
            }
            Err(e) => {
                kill_group(&mut child);
                return Err(unavailable(format!("cannot wait for power command `{cmd}`: {e}")));
            }
        }
    };
    let out = stdout.text.recv_timeout(grace).unwrap_or_default();
    if stdout.flooded() {
        return Err(flood(&out));
    }
    let err = stderr.text.recv_timeout(grace).unwrap_or_default();
    if !status.success() {
        let what = if err.trim().is_empty() {
            format!("stdout: {}", quote(&out))
        } else {
            format!("stderr: {}", quote_tail(&err))
        };
        return Err(unavailable(format!("power command `{cmd}` failed ({status}); {what}")));
    }
    Ok(out)
}

/// Parses the command's output (its last non-empty line) into a reading.
fn to_reading(source_id: &str, cmd: &str, stdout: &str, unit: CommandUnit) -> Result<Reading, SensorError> {
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    let parse_error = |expected: String| SensorError::Parse {
        source_id: source_id.into(),
        path: PathBuf::from(format!("the output of `{cmd}`")),
        raw: pipe::clip(if line.is_empty() { stdout } else { line }),
        expected,
    };
    if line.len() > MAX_LINE_BYTES {
        return Err(parse_error(format!("one value on a line of at most {MAX_LINE_BYTES} bytes")));
    }
    let value = parse_value(line, unit).map_err(parse_error)?;
    Ok(match value {
        CommandValue::Power(w) => Reading::Power(w),
        // µJ in a u64 reach 1.8e13 J: no wrap for any real device.
        CommandValue::Energy(j) => {
            Reading::Counter { raw: (j.0 * 1e6).round() as u64, wrap_at: 0, joules_per_unit: 1e-6 }
        }
    })
}

/// A copy of an error for the repeated reads that report it (`SensorError` is not `Clone`).
fn copy_err(e: &SensorError) -> SensorError {
    let source_id = e.source_id().to_string();
    match e {
        SensorError::Unavailable { reason, .. } => SensorError::Unavailable { source_id, reason: reason.clone() },
        SensorError::Parse { path, raw, expected, .. } => {
            SensorError::Parse { source_id, path: path.clone(), raw: raw.clone(), expected: expected.clone() }
        }
        SensorError::OutOfRange { raw, reason, .. } => {
            SensorError::OutOfRange { source_id, raw: raw.clone(), reason: reason.clone() }
        }
        other => SensorError::Transient { source_id, message: other.to_string() },
    }
}

struct Shared {
    latest: Arc<Latest<Result<Reading, SensorError>>>,
    /// The stream-mode process, killed on drop.
    child: Mutex<Option<Child>>,
}

/// A [`Sensor`] fed by an external command. Kind `command`, provenance `vendor-reported`.
pub struct CommandSensor {
    shared: Arc<Shared>,
    info: SourceInfo,
    stale_after: Duration,
    /// Power or counter, fixed by the first value.
    counter: bool,
}

impl CommandSensor {
    /// One-shot mode every 1 s, unit `auto`. Runs the command once now, so a command that
    /// fails, hangs or prints garbage fails here with that error.
    pub fn new(cmd: &str, domain: &str, timeout: Duration) -> Result<CommandSensor, SensorError> {
        Self::with_options(cmd, CommandOptions::new(domain, timeout))
    }

    pub fn with_options(cmd: &str, opts: CommandOptions) -> Result<CommandSensor, SensorError> {
        let id = opts.id.clone().unwrap_or_else(|| format!("command:{}", opts.domain));
        let shared = Arc::new(Shared {
            latest: Latest::new(Err(SensorError::Transient { source_id: id.clone(), message: "no value yet".into() })),
            child: Mutex::new(None),
        });
        let (first, interval) = match opts.mode {
            CommandMode::OneShot { interval } => {
                let first = run_once(&id, cmd, opts.timeout).and_then(|out| to_reading(&id, cmd, &out, opts.unit))?;
                let (c, i, u, t) = (cmd.to_string(), id.clone(), opts.unit, opts.timeout);
                shared
                    .latest
                    .spawn_poller("effbench-power-command", interval, move || {
                        run_once(&i, &c, t).and_then(|out| to_reading(&i, &c, &out, u))
                    })
                    .map_err(|e| SensorError::Unavailable {
                        source_id: id.clone(),
                        reason: format!("cannot start a thread: {e}"),
                    })?;
                (first, interval)
            }
            CommandMode::Stream => (start_stream(&shared, &id, cmd, &opts)?, Duration::ZERO),
        };
        let counter = matches!(first, Reading::Counter { .. });
        shared.latest.set(Ok(first));
        let info = SourceInfo {
            id,
            kind: "command".into(),
            domain: opts.domain.clone(),
            provenance: Provenance::VendorReported,
            sample_hz: 0.0,
            update_period_s: interval.as_secs_f64(),
            detail: json!({
                "command": cmd,
                "mode": match opts.mode { CommandMode::OneShot { .. } => "one-shot", CommandMode::Stream => "stream" },
                "interval_s": interval.as_secs_f64(),
                "timeout_s": opts.timeout.as_secs_f64(),
                "unit": opts.unit.label(),
                "quantity": if counter { "cumulative energy" } else { "power" },
                "note": "vendor power semantics undocumented",
            }),
        };
        Ok(CommandSensor { shared, info, stale_after: opts.timeout + interval * 2, counter })
    }
}

/// Starts a stream-mode command and waits (up to `timeout`) for its first value.
fn start_stream(shared: &Arc<Shared>, id: &str, cmd: &str, opts: &CommandOptions) -> Result<Reading, SensorError> {
    let unavailable = |reason: String| SensorError::Unavailable { source_id: id.into(), reason };
    let mut child = spawn_sh(cmd).map_err(|e| unavailable(format!("cannot start `sh -c {cmd:?}`: {e}")))?;
    let Some(stdout) = child.stdout.take() else {
        kill_group(&mut child);
        return Err(unavailable("the command's stdout could not be captured".into()));
    };
    let stderr = drain(child.stderr.take(), Keep::Tail);
    *lock(&shared.child) = Some(child);
    let (tx, rx) = mpsc::channel();
    let (s, c, i, unit) = (Arc::clone(shared), cmd.to_string(), id.to_string(), opts.unit);
    std::thread::spawn(move || {
        let mut first = Some(tx);
        let mut deliver = |r: Result<Reading, SensorError>| match first.take() {
            Some(tx) => {
                let _ = tx.send(r);
            }
            None => s.latest.set(r),
        };
        let mut stdout = BufReader::new(stdout);
        loop {
            match pipe::read_line(&mut stdout) {
                Line::End => break,
                Line::Text(line) if line.trim().is_empty() => {}
                Line::Text(line) => deliver(to_reading(&i, &c, &line, unit)),
                Line::TooLong(start) => {
                    // A flood: stop it rather than buffer it.
                    if let Some(mut child) = lock(&s.child).take() {
                        kill_group(&mut child);
                    }
                    deliver(Err(SensorError::Unavailable {
                        source_id: i.clone(),
                        reason: format!(
                            "power command `{c}` printed a line longer than {MAX_LINE_BYTES} bytes \
                             (it begins {}) and was killed; print one value per line",
                            quote(&start)
                        ),
                    }));
                    return;
                }
            }
        }
        let err = stderr.text.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
        deliver(Err(SensorError::Unavailable {
            source_id: i.clone(),
            reason: format!("power command `{c}` stopped printing values (it exited); stderr: {}", quote_tail(&err)),
        }));
    });
    match rx.recv_timeout(opts.timeout) {
        Ok(r) => r,
        Err(_) => Err(SensorError::Transient {
            source_id: id.into(),
            message: format!(
                "power command `{cmd}` printed no value within {:.3} s; raise --power-command-timeout",
                opts.timeout.as_secs_f64()
            ),
        }),
    }
    .inspect_err(|_| {
        if let Some(mut child) = lock(&shared.child).take() {
            kill_group(&mut child);
        }
    })
}

impl Sensor for CommandSensor {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    /// Copies the latest value from the background thread: never waits on the command.
    fn read(&mut self) -> Result<Reading, SensorError> {
        self.shared.latest.with(|age, latest| match latest {
            Err(e) => Err(copy_err(e)),
            Ok(_) if age > self.stale_after => Err(SensorError::Transient {
                source_id: self.info.id.clone(),
                message: format!(
                    "latest value from `{}` is {:.1} s old (is the command stuck?)",
                    self.info.detail["command"].as_str().unwrap_or("?"),
                    age.as_secs_f64()
                ),
            }),
            Ok(r) if matches!(r, Reading::Counter { .. }) != self.counter => Err(SensorError::OutOfRange {
                source_id: self.info.id.clone(),
                raw: format!("{r:?}"),
                reason: format!(
                    "the command first printed {} and now prints {}; print one quantity only",
                    if self.counter { "energy" } else { "power" },
                    if self.counter { "power" } else { "energy" }
                ),
            }),
            Ok(r) => Ok(*r),
        })
    }
}

impl Drop for CommandSensor {
    /// Stops the background thread (a one-shot run in progress finishes or times out on its
    /// own; the thread is not joined, so drop never waits) and kills a stream-mode command.
    fn drop(&mut self) {
        self.shared.latest.stop();
        if let Some(mut child) = lock(&self.shared.child).take() {
            kill_group(&mut child);
        }
    }
}

#[cfg(test)]
mod tests;
