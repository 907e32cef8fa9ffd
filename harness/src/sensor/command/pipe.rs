//! Running a power command and reading its pipes with bounded memory. A vendor tool is outside
//! effbench's control: a wrong command (`yes`, `cat /dev/zero`) must not fill memory, and an
//! error message must not quote megabytes of its output.
//!
//! - stdout of a one-shot run keeps at most [`MAX_OUTPUT_BYTES`]; past that the run is a flood
//!   (the caller kills the process group). stderr keeps its last [`MAX_OUTPUT_BYTES`].
//! - A line (one value) is at most [`MAX_LINE_BYTES`].
//! - Messages quote at most [`QUOTE_BYTES`] of any output.

use std::io::{BufRead, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

/// The most a one-shot run may print on stdout (it prints one value, and perhaps a header).
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;
/// The longest line a command may print: a value with its unit is a few bytes.
pub const MAX_LINE_BYTES: usize = 4 * 1024;
/// How much of a command's output an error quotes.
pub const QUOTE_BYTES: usize = 200;

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn head(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The longest suffix of `s` of at most `max` bytes that starts on a character boundary.
fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// At most [`QUOTE_BYTES`] of `s` (with `…` where it was cut), for a raw value in an error.
pub fn clip(s: &str) -> String {
    let h = head(s, QUOTE_BYTES);
    if h.len() < s.len() {
        format!("{h}…")
    } else {
        s.to_string()
    }
}

/// `s` trimmed and quoted, cut to its first [`QUOTE_BYTES`] (marked `…`).
pub fn quote(s: &str) -> String {
    let s = s.trim();
    let h = head(s, QUOTE_BYTES);
    if h.len() < s.len() {
        format!("{h:?}…")
    } else {
        format!("{s:?}")
    }
}

/// `s` trimmed and quoted, cut to its last [`QUOTE_BYTES`] (marked `…`): for stderr, whose
/// end says why a command failed.
pub fn quote_tail(s: &str) -> String {
    let s = s.trim();
    let t = tail(s, QUOTE_BYTES);
    if t.len() < s.len() {
        format!("…{t:?}")
    } else {
        format!("{s:?}")
    }
}

/// `sh -c cmd` with piped stdout and stderr, in its own process group (so a timeout or a
/// flood can kill the whole group, grandchildren included).
pub fn spawn_sh(cmd: &str) -> std::io::Result<Child> {
    Command::new("sh")
        .args(["-c", cmd])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .inspect(|c| crate::interrupt::track_group(c.id())) // stopped on SIGINT/SIGTERM too
}

/// SIGKILL to the command's process group (it leads one: `process_group(0)`), then to the
/// shell itself, then reap it.
pub fn kill_group(child: &mut Child) {
    crate::fsutil::signal_process_group(child.id(), "-KILL");
    let _ = child.kill();
    let _ = child.wait();
    crate::interrupt::untrack_group(child.id());
}

/// Which part of a pipe's output a [`drain`] keeps.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The first `MAX_OUTPUT_BYTES` (stdout: the value is near the start of a sane output).
    Head,
    /// The last `MAX_OUTPUT_BYTES` (stderr: the reason for a failure is at its end).
    Tail,
}

/// A pipe read to its end on its own thread, keeping at most [`MAX_OUTPUT_BYTES`].
pub struct Drained {
    /// The kept text, once the pipe is closed.
    pub text: mpsc::Receiver<String>,
    /// Set as soon as the pipe has carried more than [`MAX_OUTPUT_BYTES`].
    pub flooded: Arc<AtomicBool>,
}

impl Drained {
    pub fn flooded(&self) -> bool {
        self.flooded.load(Ordering::SeqCst)
    }
}

/// Reads `pipe` to its end on a thread (so a chatty command cannot fill the pipe and stall),
/// keeping `keep` of it; what is over the limit is read and dropped, so memory stays bounded
/// while the writer lives.
pub fn drain<R: Read + Send + 'static>(pipe: Option<R>, keep: Keep) -> Drained {
    let (tx, rx) = mpsc::channel();
    let flooded = Arc::new(AtomicBool::new(false));
    if let Some(mut pipe) = pipe {
        let flag = Arc::clone(&flooded);
        std::thread::spawn(move || {
            let mut kept: Vec<u8> = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                let n = match pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > MAX_OUTPUT_BYTES {
                    flag.store(true, Ordering::SeqCst);
                    match keep {
                        Keep::Head => kept.truncate(MAX_OUTPUT_BYTES),
                        Keep::Tail => {
                            kept.drain(..kept.len() - MAX_OUTPUT_BYTES);
                        }
                    }
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&kept).into_owned());
        });
    }
    Drained { text: rx, flooded }
}

/// One line read with [`read_line`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Text(String),
    /// Longer than [`MAX_LINE_BYTES`]: the start of it (for the message).
    TooLong(String),
    /// The pipe closed (or failed).
    End,
}

/// Reads one line of at most [`MAX_LINE_BYTES`] (without its newline).
pub fn read_line(r: &mut impl BufRead) -> Line {
    let mut buf = Vec::new();
    match r.by_ref().take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut buf) {
        Ok(0) | Err(_) => return Line::End,
        Ok(_) => {}
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > MAX_LINE_BYTES {
        return Line::TooLong(String::from_utf8_lossy(&buf[..QUOTE_BYTES]).into_owned());
    }
    Line::Text(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_cut_to_200_bytes_on_char_boundaries() {
        let long = "é".repeat(500);
        let q = quote(&long);
        assert!(q.len() <= QUOTE_BYTES + 8 && q.ends_with('…'), "{q}");
        let q = quote_tail(&format!("noise {long} device 0 not found"));
        assert!(q.starts_with('…') && q.ends_with("device 0 not found\""), "{q}");
        assert_eq!(quote(" short \n"), "\"short\"");
    }

    #[test]
    fn lines_longer_than_the_limit_are_cut_not_buffered() {
        let text = format!("12 W\n{}\n3 W\n", "x".repeat(10 * MAX_LINE_BYTES));
        let mut r = std::io::BufReader::new(text.as_bytes());
        assert_eq!(read_line(&mut r), Line::Text("12 W".into()));
        assert_eq!(read_line(&mut r), Line::TooLong("x".repeat(QUOTE_BYTES)));
        let mut r = std::io::BufReader::new("1 W".as_bytes());
        assert_eq!(read_line(&mut r), Line::Text("1 W".into()));
        assert_eq!(read_line(&mut r), Line::End);
    }
}
