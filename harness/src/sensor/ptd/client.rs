//! One TCP connection to PTDaemon: send a command line, read its reply line(s) before a
//! deadline. Commands end with `\r\n`; replies end with `\n` (a trailing `\r` is stripped) and
//! may arrive in any number of TCP segments, so bytes are buffered until the newline.
//!
//! After a timeout or an I/O error the connection is marked broken: a late reply would
//! otherwise be taken as the answer to the next command. Every later call fails fast.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::log::{self, LogLine};
use super::proto::{self, PtdAddress, PtdError, PtdRange, PtdRanges, WattsStats};

/// The longest reply line accepted (a multichannel log line is a few hundred bytes); a longer
/// one is an error, so a daemon that never sends a newline cannot grow our buffer.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Which quantity `SR` sets.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Quantity {
    Volts,
    Amps,
}

impl Quantity {
    fn letter(self) -> char {
        match self {
            Quantity::Volts => 'V',
            Quantity::Amps => 'A',
        }
    }
}

/// The `RL` variants as power-dev uses them (`lib/server.py`, `grab_power_data`): `RL,*,*`
/// (multichannel: the sum, then each channel); on `Invalid number of parameters` a
/// single-channel AC analyzer is asked `RL`; on `Unknown command` a DC analyzer `DC-RL`.
const RL_MULTI: &str = "RL,*,*";
const RL_AC: &str = "RL";
const RL_DC: &str = "DC-RL";

pub struct PtdClient {
    addr: String,
    stream: TcpStream,
    buf: Vec<u8>,
    timeout: Duration,
    /// The reply timeout of `SR`: real analyzers take 5-6 s to change a range.
    range_timeout: Duration,
    broken: Option<String>,
    /// The ranges found at connect (`RR`), restored on drop when we changed them.
    original: Option<PtdRanges>,
    changed: [bool; 2],
    /// The `RL` variant this daemon accepted, once known.
    rl: Option<&'static str>,
}

impl PtdClient {
    /// Opens the connection; every address `addr` resolves to is tried within `connect_timeout`.
    pub fn connect(
        addr: &PtdAddress,
        connect_timeout: Duration,
        timeout: Duration,
        range_timeout: Duration,
    ) -> Result<PtdClient, PtdError> {
        let name = addr.to_string();
        let conn_err = |error| PtdError::Connect { addr: name.clone(), error };
        let mut last = std::io::Error::new(ErrorKind::NotFound, "the host resolved to no address");
        let mut stream = None;
        for sa in (addr.host.as_str(), addr.port).to_socket_addrs().map_err(conn_err)? {
            match TcpStream::connect_timeout(&sa, connect_timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or_else(|| conn_err(last))?;
        stream.set_nodelay(true).map_err(conn_err)?;
        stream.set_write_timeout(Some(timeout)).map_err(conn_err)?;
        Ok(PtdClient {
            addr: name,
            stream,
            buf: Vec::with_capacity(4096),
            timeout,
            range_timeout,
            broken: None,
            original: None,
            changed: [false; 2],
            rl: None,
        })
    }

    /// Sends one command and returns its one-line reply, without judging it.
    pub fn raw(&mut self, command: &str) -> Result<String, PtdError> {
        self.raw_within(command, self.timeout)
    }

    fn raw_within(&mut self, command: &str, timeout: Duration) -> Result<String, PtdError> {
        if let Some(cause) = &self.broken {
            return Err(PtdError::Broken { addr: self.addr.clone(), cause: cause.clone() });
        }
        let line = format!("{command}\r\n");
        if let Err(error) = self.stream.write_all(line.as_bytes()).and_then(|()| self.stream.flush()) {
            return Err(self.fail(PtdError::Io { addr: self.addr.clone(), command: command.into(), error }));
        }
        self.read_line(command, timeout)
    }

    /// Sends one command; a reply that means failure ([`proto::is_failure`]) is an error.
    pub fn cmd(&mut self, command: &str) -> Result<String, PtdError> {
        let reply = self.raw(command)?;
        if proto::is_failure(&reply) {
            return Err(PtdError::Refused { addr: self.addr.clone(), command: command.into(), reply });
        }
        Ok(reply)
    }

    fn bad(&self, command: &str, reply: String, expected: String) -> PtdError {
        PtdError::BadReply { addr: self.addr.clone(), command: command.into(), reply, expected }
    }

    /// `Hello` → must be exactly `Hello, PTDaemon here!`.
    pub fn hello(&mut self) -> Result<(), PtdError> {
        let reply = self.raw("Hello")?;
        proto::check_hello(&reply).map_err(|expected| self.bad("Hello", reply, expected))
    }

    /// `Identify` → free text naming the analyzer (logged, not interpreted).
    pub fn identify(&mut self) -> Result<String, PtdError> {
        self.cmd("Identify")
    }

    /// `RR` → the current ranges; the first result is remembered for restoring on drop.
    pub fn read_ranges(&mut self) -> Result<PtdRanges, PtdError> {
        let reply = self.cmd("RR")?;
        let ranges = proto::parse_ranges(&reply).map_err(|e| self.bad("RR", reply, e))?;
        self.original.get_or_insert(ranges);
        Ok(ranges)
    }

    /// `SR,V,<value|Auto>` or `SR,A,<value|Auto>` (reply `Range V changed`), with the longer
    /// range timeout.
    pub fn set_range(&mut self, q: Quantity, r: PtdRange) -> Result<(), PtdError> {
        let command = format!("SR,{},{r}", q.letter());
        let reply = self.raw_within(&command, self.range_timeout)?;
        if proto::is_failure(&reply) {
            return Err(PtdError::Refused { addr: self.addr.clone(), command, reply });
        }
        self.changed[q as usize] = true;
        Ok(())
    }

    /// `Go,<period_ms>,0,<mark>`: start logging samples tagged `mark` until `Stop`.
    pub fn go(&mut self, period_ms: u32, mark: &str) -> Result<String, PtdError> {
        proto::check_mark(mark)?;
        self.cmd(&format!("Go,{period_ms},0,{mark}"))
    }

    /// `Stop`: end the logging phase.
    pub fn stop(&mut self) -> Result<String, PtdError> {
        self.cmd("Stop")
    }

    /// `Watts` → the running statistics of the current (or last) measurement.
    pub fn watts(&mut self) -> Result<WattsStats, PtdError> {
        let reply = self.cmd("Watts")?;
        proto::parse_watts(&reply).map_err(|e| self.bad("Watts", reply, e))
    }

    /// `Uncertainty` → the reply verbatim (format [U]; see [`proto::parse_uncertainty`]).
    pub fn uncertainty(&mut self) -> Result<String, PtdError> {
        self.raw("Uncertainty")
    }

    /// Reads back the unread samples with the `RL` variant this daemon accepts (see
    /// [`RL_MULTI`]). Returns the parsed lines and, for each line that could not be parsed, a
    /// warning quoting it (at most 200 characters).
    pub fn read_log(&mut self) -> Result<(Vec<LogLine>, Vec<String>), PtdError> {
        let (command, header) = self.rl_header()?;
        let n = log::parse_rl_header(&header).map_err(|e| self.bad(command, header, e))?;
        let mut lines = Vec::with_capacity(n.min(100_000));
        let mut warnings = Vec::new();
        for _ in 0..n {
            // Each line gets the full timeout: a long log is slow, not stalled.
            let line = self.read_line(command, self.timeout)?;
            match log::parse_log_line(&line) {
                Ok(l) => lines.push(l),
                Err(expected) => {
                    let shown: String = line.chars().take(200).collect();
                    warnings.push(format!("skipped unparsable PTDaemon log line {shown:?} (expected {expected})"))
                }
            }
        }
        Ok((lines, warnings))
    }

    fn rl_header(&mut self) -> Result<(&'static str, String), PtdError> {
        if let Some(command) = self.rl {
            return Ok((command, self.cmd(command)?));
        }
        let reply = self.raw(RL_MULTI)?;
        let command = if reply.contains("Invalid number of parameters") {
            RL_AC
        } else if reply.starts_with("Unknown command") {
            RL_DC
        } else {
            RL_MULTI
        };
        let reply = if command == RL_MULTI { reply } else { self.raw(command)? };
        if proto::is_failure(&reply) {
            return Err(PtdError::Refused { addr: self.addr.clone(), command: command.into(), reply });
        }
        self.rl = Some(command);
        Ok((command, reply))
    }

    /// Reads one reply line before `timeout` elapses; a line over [`MAX_LINE_BYTES`] is an
    /// error that breaks the connection.
    fn read_line(&mut self, command: &str, timeout: Duration) -> Result<String, PtdError> {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                let text = String::from_utf8_lossy(&line[..nl]);
                return Ok(text.trim_end_matches('\r').to_string());
            }
            if self.buf.len() > MAX_LINE_BYTES {
                let e = PtdError::BadReply {
                    addr: self.addr.clone(),
                    command: command.into(),
                    reply: String::from_utf8_lossy(&self.buf[..200]).into_owned(),
                    expected: format!("a line of at most {MAX_LINE_BYTES} bytes"),
                };
                return Err(self.fail(e));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let partial = || String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)]).into_owned();
            if left.is_zero() {
                let e = PtdError::Timeout {
                    addr: self.addr.clone(),
                    command: command.into(),
                    timeout_s: timeout.as_secs_f64(),
                    partial: partial(),
                };
                return Err(self.fail(e));
            }
            if let Err(error) = self.stream.set_read_timeout(Some(left)) {
                return Err(self.fail(PtdError::Io { addr: self.addr.clone(), command: command.into(), error }));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    let e = PtdError::Closed { addr: self.addr.clone(), command: command.into(), partial: partial() };
                    return Err(self.fail(e));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(error) => {
                    return Err(self.fail(PtdError::Io { addr: self.addr.clone(), command: command.into(), error }));
                }
            }
        }
    }

    fn fail(&mut self, e: PtdError) -> PtdError {
        self.broken = Some(e.to_string());
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        e
    }
}

impl PtdClient {
    /// Puts back the ranges found at connect (`RR`) for each quantity we changed.
    pub fn restore_ranges(&mut self) -> Result<(), PtdError> {
        let Some(orig) = self.original else { return Ok(()) };
        for (q, r) in [(Quantity::Volts, orig.volts()), (Quantity::Amps, orig.amps())] {
            if let (true, Some(r)) = (self.changed[q as usize], r) {
                self.set_range(q, r)?;
                self.changed[q as usize] = false;
            }
        }
        Ok(())
    }
}

impl Drop for PtdClient {
    /// Puts back the ranges we changed (best effort: the daemon may be gone).
    fn drop(&mut self) {
        let _ = self.restore_ranges();
    }
}
