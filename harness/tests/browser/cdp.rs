//! A minimal client of the Chrome DevTools Protocol over `--remote-debugging-pipe`, for the
//! browser test. The protocol (https://chromedevtools.github.io/devtools-protocol/): JSON
//! messages `{id, method, params, sessionId}`, answered by `{id, result}` or `{id, error}`;
//! with the pipe transport the browser reads messages from its fd 3 and writes them to its
//! fd 4, each terminated by a NUL byte. Every wait is bounded and the browser is killed when
//! the [`Browser`] drops, on every path (a failed assertion included).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The largest message accepted from the browser (a full-page screenshot is a few MB).
const MAX_MESSAGE: usize = 64 << 20;

/// Chromium on `PATH` (Debian's `chromium`, or the `chromium-browser` of other systems).
pub fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// A headless Chromium with a fresh profile, killed on drop.
pub struct Browser {
    child: Child,
    to: File,
    from: Receiver<Result<Value, String>>,
    next: u64,
    deadline: Instant,
    _profile: tempfile::TempDir,
}

fn pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid two-int array; O_CLOEXEC keeps these ends out of other children.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0, "pipe2 failed");
    (fds[0], fds[1])
}

impl Browser {
    /// Starts `chromium` on `url`; every later call fails once `budget` has passed.
    pub fn launch(chromium: &Path, url: &str, budget: Duration) -> Browser {
        let profile = tempfile::Builder::new().prefix("effbench-chromium-").tempdir().unwrap();
        let (their_in, our_out) = pipe();
        let (our_in, their_out) = pipe();
        let mut cmd = Command::new(chromium);
        // The flags without which Chromium tries the network (and hangs on a closed one).
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec. The ends
        // are first copied above 10 so that putting one on fd 3 cannot clobber the other.
        unsafe {
            cmd.pre_exec(move || {
                let a = libc::fcntl(their_in, libc::F_DUPFD, 10);
                let b = libc::fcntl(their_out, libc::F_DUPFD, 10);
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
        // SAFETY: each fd is ours, open, and owned by exactly one File from here on.
        let (to, from_file) = unsafe {
            libc::close(their_in);
            libc::close(their_out);
            (File::from_raw_fd(our_out), File::from_raw_fd(our_in))
        };
        let (tx, rx) = channel();
        std::thread::spawn(move || read_messages(from_file, tx));
        Browser { child, to, from: rx, next: 0, deadline: Instant::now() + budget, _profile: profile }
    }

    /// Sends `method` (to the page `session`, or to the browser) and waits for its answer.
    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap_or_else(|e| panic!("writing {method} to Chromium: {e}"));
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            let m = match self.from.recv_timeout(left) {
                Ok(Ok(m)) => m,
                Ok(Err(e)) => panic!("reading Chromium's answer to {method}: {e}"),
                Err(RecvTimeoutError::Timeout) => panic!("Chromium did not answer {method} in time"),
                Err(RecvTimeoutError::Disconnected) => panic!("Chromium closed its pipe before answering {method}"),
            };
            if m["id"].as_u64() == Some(id) {
                if let Some(e) = m.get("error") {
                    panic!("{method} failed: {e}");
                }
                return m["result"].clone();
            }
        }
    }

    /// Attaches to the first page target and returns its session id.
    pub fn page_session(&mut self) -> String {
        let targets = self.call(None, "Target.getTargets", json!({}));
        let page = targets["targetInfos"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .unwrap_or_else(|| panic!("Chromium has no page target: {targets}"));
        let id = page["targetId"].clone();
        let r = self.call(None, "Target.attachToTarget", json!({ "targetId": id, "flatten": true }));
        r["sessionId"].as_str().unwrap().to_string()
    }

    /// Evaluates `expr` in the page and returns its value.
    pub fn eval(&mut self, session: &str, expr: &str) -> Value {
        let r = self.call(Some(session), "Runtime.evaluate", json!({ "expression": expr, "returnByValue": true }));
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expr} threw: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Waits (bounded by the budget) until `expr` evaluates to `true` in the page.
    pub fn wait_until(&mut self, session: &str, expr: &str) {
        while self.eval(session, expr) != json!(true) {
            assert!(Instant::now() < self.deadline, "the page never satisfied {expr}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Splits the browser's output into NUL-terminated JSON messages, each bounded in size.
fn read_messages(mut from: File, tx: std::sync::mpsc::Sender<Result<Value, String>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1 << 16];
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(end) = buf.iter().position(|b| *b == 0) {
            let msg: Vec<u8> = buf.drain(..=end).collect();
            let parsed = serde_json::from_slice(&msg[..end]).map_err(|e| format!("not JSON: {e}"));
            if tx.send(parsed).is_err() {
                return;
            }
        }
        if buf.len() > MAX_MESSAGE {
            let _ = tx.send(Err(format!("a message over {MAX_MESSAGE} bytes")));
            return;
        }
    }
}
