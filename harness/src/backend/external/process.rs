//! The runner as a child process: its own process group, a writer thread for stdin (so a runner
//! that stops reading cannot block effbench), a reader thread for stdout (lines into a channel,
//! so every wait has a deadline), and stderr copied to a log file with its tail kept for error
//! messages. Stopping is SIGTERM to the group, then SIGKILL after [`KILL_GRACE`].

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::proto::{Op, ReplyHead, Request, PROTOCOL};
use super::RunnerError;

/// Time between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);
/// A reply line longer than this is refused (bulk data travels in files, never inline).
const MAX_LINE: u64 = 1 << 20;
/// How much of the runner's stderr an error quotes.
const STDERR_TAIL: usize = 1500;
/// How much of a message an error quotes.
const QUOTE: usize = 300;
/// How often a wait for a reply checks whether the runner itself has exited.
const EXIT_POLL: Duration = Duration::from_millis(50);
/// After the runner exited, how long lines it wrote before may still take to arrive.
const EXIT_DRAIN: Duration = Duration::from_millis(200);

enum Line {
    Text(String),
    TooLong,
    Eof,
    Failed(String),
}

pub struct RunnerProcess {
    name: String,
    child: Child,
    to_stdin: Option<Sender<String>>,
    lines: Receiver<Line>,
    stderr_tail: Arc<Mutex<VecDeque<u8>>>,
    next_id: u64,
    /// Replies that arrived while waiting for another id (issues may complete out of order).
    early: HashMap<u64, (ReplyHead, serde_json::Value)>,
    /// Outstanding requests by id: the op's name.
    outstanding: HashMap<u64, &'static str>,
    last_sent: String,
    last_received: String,
    /// The last id of a runner request (runner ids are their own increasing space).
    runner_last_id: u64,
    stopped: bool,
}

/// A message from the runner during `train`.
pub enum Incoming {
    /// A runner request (`fetch`): its id, op and the whole object.
    Request { id: u64, op: String, value: serde_json::Value },
    /// A reply (already checked `ok`) to an outstanding effbench request.
    Reply { re: u64, value: serde_json::Value },
}

impl RunnerProcess {
    /// Starts `argv` in `cwd` with `env` added; stderr goes to `log`.
    pub fn spawn(
        name: &str,
        argv: &[String],
        env: &std::collections::BTreeMap<String, String>,
        cwd: &Path,
        log: &Path,
    ) -> Result<RunnerProcess, RunnerError> {
        let fail = |what: String| RunnerError::new(name, what, "nothing yet", "nothing yet", String::new());
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .envs(env)
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| {
                fail(format!(
                    "cannot start {:?}: {e}; check `command` in the runner TOML (relative paths are \
                     resolved against its directory; the reference runner needs `bash runners/reference/setup.sh`)",
                    argv.join(" ")
                ))
            })?;
        crate::interrupt::track_group(child.id());
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");

        let (tx_in, rx_in) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut stdin = stdin;
            for line in rx_in {
                if stdin.write_all(line.as_bytes()).and_then(|_| stdin.flush()).is_err() {
                    break; // the runner has gone; the reader sees EOF and reports it
                }
            }
        });

        let (tx_lines, lines) = mpsc::channel();
        std::thread::spawn(move || read_lines(stdout, tx_lines));

        let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let tail = Arc::clone(&stderr_tail);
        let mut log_file = File::create(log).ok();
        std::thread::spawn(move || {
            let mut stderr = stderr;
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Some(f) = log_file.as_mut() {
                    let _ = f.write_all(&buf[..n]);
                }
                let mut t = tail.lock().unwrap_or_else(PoisonError::into_inner);
                t.extend(&buf[..n]);
                let excess = t.len().saturating_sub(STDERR_TAIL);
                t.drain(..excess);
            }
        });

        Ok(RunnerProcess {
            name: name.to_string(),
            child,
            to_stdin: Some(tx_in),
            lines,
            stderr_tail,
            next_id: 1,
            early: HashMap::new(),
            outstanding: HashMap::new(),
            last_sent: "nothing yet".into(),
            last_received: "nothing yet".into(),
            runner_last_id: 0,
            stopped: false,
        })
    }

    /// Sends a request without waiting; returns its id.
    pub fn send(&mut self, op: &Op) -> Result<u64, RunnerError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_string(&Request { v: PROTOCOL, id, op }).expect("requests serialise");
        self.last_sent = quote(&line);
        line.push('\n');
        let sent = self.to_stdin.as_ref().is_some_and(|tx| tx.send(line).is_ok());
        if !sent {
            return Err(self.fail(format!("cannot send `{}`: the runner's stdin is closed", op.name())));
        }
        self.outstanding.insert(id, op.name());
        Ok(id)
    }

    /// Waits at most `timeout` for the reply to request `id`. An `ok:false` reply is an error
    /// naming the runner's code and message. Returns the whole reply object. A runner request
    /// (`fetch`) while effbench waits for a reply is a protocol error.
    pub fn wait(&mut self, id: u64, timeout: Duration) -> Result<serde_json::Value, RunnerError> {
        let op = self.outstanding.get(&id).copied().unwrap_or("?");
        let deadline = Instant::now() + timeout;
        let awaited = format!("the reply to `{op}` (id {id})");
        let (head, value) = loop {
            if let Some(r) = self.early.remove(&id) {
                break r;
            }
            let value = self.recv(deadline, timeout, &awaited)?;
            if value.get("re").is_none() && value.get("op").is_some() {
                return Err(self.fail(format!(
                    "the runner sent a `{}` request while effbench waited for {awaited}; a runner sends requests \
                     only during `train`, and only while no evaluate is outstanding",
                    value["op"].as_str().unwrap_or("?")
                )));
            }
            let (head, _) = self.head(&value)?;
            if head.re == id {
                break (head, value);
            }
            self.early.insert(head.re, (head, value));
        };
        self.outstanding.remove(&id);
        self.refused(head, op, id)?;
        Ok(value)
    }

    /// During `train` (protocol 1.1): the next message, a runner request or a reply to an
    /// outstanding request, within `timeout`. `awaited` says what effbench waits for, for the
    /// watchdog's message. A runner request must have `op` and an `id` greater than its last.
    pub fn next_message(&mut self, timeout: Duration, awaited: &str) -> Result<Incoming, RunnerError> {
        let value = self.recv(Instant::now() + timeout, timeout, awaited)?;
        if value.get("re").is_none() {
            let (Some(op), Some(id)) = (value.get("op").and_then(|o| o.as_str()), value.get("id")) else {
                return Err(self.fail("malformed message: neither a reply (re) nor a request (op and id)".into()));
            };
            let op = op.to_string();
            let id = match id.as_u64() {
                Some(i)
                    if i > self.runner_last_id && value.get("v").and_then(|v| v.as_u64()) == Some(PROTOCOL.into()) =>
                {
                    i
                }
                _ => {
                    return Err(self.fail(format!(
                    "malformed `{op}` request: needs \"v\":{PROTOCOL} and an integer id above the runner's last ({})",
                    self.runner_last_id
                )))
                }
            };
            self.runner_last_id = id;
            return Ok(Incoming::Request { id, op, value });
        }
        let (head, op) = self.head(&value)?;
        let re = head.re;
        self.refused(head, op, re)?;
        Ok(Incoming::Reply { re, value })
    }

    /// Answers a runner request: `{"v":1,"re":re,"ok":true, ...fields}`.
    pub fn answer(&mut self, re: u64, fields: serde_json::Value) -> Result<(), RunnerError> {
        let mut obj = serde_json::json!({ "v": PROTOCOL, "re": re, "ok": true });
        if let (Some(o), serde_json::Value::Object(f)) = (obj.as_object_mut(), fields) {
            o.extend(f);
        }
        let mut line = obj.to_string();
        self.last_sent = quote(&line);
        line.push('\n');
        if self.to_stdin.as_ref().is_none_or(|tx| tx.send(line).is_err()) {
            return Err(self.fail(format!("cannot answer request {re}: the runner's stdin is closed")));
        }
        Ok(())
    }

    /// A reply's head, checked (version, an outstanding id, which it no longer is), and the
    /// op it answers.
    fn head(&mut self, value: &serde_json::Value) -> Result<(ReplyHead, &'static str), RunnerError> {
        let head: ReplyHead = match serde_json::from_value(value.clone()) {
            Ok(h) => h,
            Err(e) => return Err(self.fail(format!("malformed reply ({e}); every reply needs v, re and ok"))),
        };
        if head.v != PROTOCOL {
            return Err(self.fail(format!(
                "reply in protocol version {} but effbench speaks version {PROTOCOL}; update the runner",
                head.v
            )));
        }
        match self.outstanding.remove(&head.re) {
            None => Err(self.fail(format!("reply to id {} which is not an outstanding request", head.re))),
            Some(op) => Ok((head, op)),
        }
    }

    fn refused(&mut self, head: ReplyHead, op: &str, id: u64) -> Result<(), RunnerError> {
        if !head.ok {
            let e = head.error.unwrap_or(super::proto::ReplyError { code: String::new(), msg: String::new() });
            return Err(self.fail(format!("the runner refused `{op}` (id {id}): [{}] {}", e.code, e.msg)));
        }
        Ok(())
    }

    /// The next JSON object on the runner's stdout before `deadline`; every failure (the
    /// watchdog, an exit, EOF, a line that is not a JSON object) stops the runner.
    fn recv(&mut self, deadline: Instant, timeout: Duration, awaited: &str) -> Result<serde_json::Value, RunnerError> {
        // When the runner itself exited: a process it started may hold its stdout open, so EOF
        // may never come; the exit is the news then, not the watchdog.
        let mut exited: Option<(ExitStatus, Instant)> = None;
        loop {
            if exited.is_none() {
                if let Ok(Some(s)) = self.child.try_wait() {
                    exited = Some((s, Instant::now()));
                }
            }
            let until = exited.map_or(deadline, |(_, at)| deadline.min(at + EXIT_DRAIN));
            let left = until.saturating_duration_since(Instant::now()).min(EXIT_POLL);
            let line = match self.lines.recv_timeout(left) {
                Ok(l) => l,
                Err(RecvTimeoutError::Timeout) if Instant::now() < until => continue,
                Err(RecvTimeoutError::Timeout) => {
                    if let Some((status, _)) = exited {
                        return Err(self.fail(format!(
                            "the runner exited with {} while effbench waited for {awaited}; \
                             a process it started still holds its stdout and was stopped",
                            describe_exit(status)
                        )));
                    }
                    return Err(self.fail(format!(
                        "no {} within {:.3} s (the watchdog); the runner was stopped",
                        awaited.strip_prefix("the ").unwrap_or(awaited),
                        timeout.as_secs_f64()
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => Line::Eof,
            };
            let text = match line {
                Line::Text(t) => t,
                Line::TooLong => {
                    return Err(self.fail(format!(
                        "a line on stdout is longer than {MAX_LINE} bytes while waiting for {awaited}; \
                         bulk data must travel in files"
                    )))
                }
                Line::Failed(e) => return Err(self.fail(format!("cannot read the runner's stdout: {e}"))),
                Line::Eof => {
                    let status = self.exit_status(Duration::from_millis(500));
                    return Err(self.fail(format!(
                        "the runner closed stdout ({}) while effbench waited for {awaited}",
                        status.map_or("still running".into(), |s| format!("exited: {s}"))
                    )));
                }
            };
            self.last_received = quote(&text);
            return match serde_json::from_str(&text) {
                Ok(v @ serde_json::Value::Object(_)) => Ok(v),
                _ => Err(self.fail(format!(
                    "the runner printed something that is not a JSON object on stdout: {}; \
                     stdout carries protocol messages only (logs go to stderr)",
                    quote(&text)
                ))),
            };
        }
    }

    /// Sends `op` and waits for its reply.
    pub fn call(&mut self, op: &Op, timeout: Duration) -> Result<serde_json::Value, RunnerError> {
        let id = self.send(op)?;
        self.wait(id, timeout)
    }

    /// Polite end: `shutdown`, then wait for the exit; a runner that does not go is stopped.
    pub fn shutdown(&mut self, timeout: Duration) -> Result<(), RunnerError> {
        let r = self.call(&Op::Shutdown, timeout);
        self.to_stdin = None; // EOF on its stdin
        if r.is_ok() && self.exit_status(timeout).is_none() {
            return Err(self.fail(format!(
                "the runner answered `shutdown` but did not exit within {:.3} s; it was stopped",
                timeout.as_secs_f64()
            )));
        }
        self.stop();
        r.map(|_| ())
    }

    /// SIGTERM to the process group, SIGKILL after [`KILL_GRACE`], then reap. Idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.to_stdin = None;
        let group = self.child.id();
        // The group may hold children even after the leader exited; signal it either way.
        crate::fsutil::signal_process_group(group, "-TERM");
        if self.exit_status(KILL_GRACE).is_none() {
            crate::fsutil::signal_process_group(group, "-KILL");
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        crate::interrupt::untrack_group(group);
    }

    fn exit_status(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => return Some(s),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                _ => return None,
            }
        }
    }

    /// Stops the runner and builds the error: the runner's name, what went wrong, the last
    /// message each way and the tail of its stderr.
    pub fn fail(&mut self, what: String) -> RunnerError {
        self.stop();
        // Give the stderr thread a moment to collect the runner's last words.
        std::thread::sleep(Duration::from_millis(20));
        let tail = self.stderr_tail.lock().unwrap_or_else(PoisonError::into_inner);
        let tail = String::from_utf8_lossy(&tail.iter().copied().collect::<Vec<u8>>()).trim().to_string();
        RunnerError::new(&self.name, what, &self.last_sent, &self.last_received, tail)
    }
}

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// "status 3" or "signal 9".
fn describe_exit(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("status {c}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => s.to_string(),
    }
}

fn read_lines(stdout: impl Read, tx: Sender<Line>) {
    let mut reader = BufReader::new(stdout);
    loop {
        let mut buf = Vec::new();
        match reader.by_ref().take(MAX_LINE).read_until(b'\n', &mut buf) {
            Ok(0) => {
                let _ = tx.send(Line::Eof);
                return;
            }
            Ok(_) if buf.last() != Some(&b'\n') && buf.len() as u64 >= MAX_LINE => {
                let _ = tx.send(Line::TooLong);
                return;
            }
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf).trim_end().to_string();
                if text.is_empty() {
                    continue;
                }
                if tx.send(Line::Text(text)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Line::Failed(e.to_string()));
                return;
            }
        }
    }
}

fn quote(s: &str) -> String {
    if s.chars().count() <= QUOTE {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(QUOTE).collect::<String>())
    }
}

/// The log file for a runner's stderr next to a workload's result.
pub fn log_path(out_dir: &Path, workload: &str) -> PathBuf {
    out_dir.join(format!("{workload}.runner.log"))
}

/// The copy of the runner TOML's bytes next to a workload's result (`backend.runner_config_sha256`
/// is their SHA-256), so a bundle can carry it and `effbench check` re-derive the hash.
pub fn config_copy_path(out_dir: &Path, workload: &str) -> PathBuf {
    out_dir.join(format!("{workload}.runner.toml"))
}

#[cfg(test)]
mod tests;
