//! A scripted fake PTDaemon for tests (unit tests here, integration tests in `harness/tests`):
//! it binds 127.0.0.1 on an ephemeral port, serves one connection, and every loop is bounded by
//! [`SERVER_LIFETIME`]. Replies follow sensors.md §9.4: `Watts` always answers [`IDLE_W`] (inside
//! and outside windows), and each `Go,…,<mark>` … `Stop` window logs `samples_per_window`
//! samples carrying that mark (sample i has [`SAMPLE_W`] + i watts), read back by `RL`.
//! Not part of effbench's interface.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::HELLO_REPLY;

/// How long a fake server lives by default; keeps a failing test from hanging CI.
pub const SERVER_LIFETIME: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RlAccepts {
    All,
    PlainRl,
    DcRl,
}

/// How the fake behaves; `Default` is a well-behaved PTDaemon.
#[derive(Clone, Debug)]
pub struct Script {
    pub hello: &'static str,
    /// Deliver each reply in 3-byte TCP writes with pauses.
    pub split: bool,
    /// End every other reply with `\r\n` instead of `\n`.
    pub crlf_mix: bool,
    pub rl: RlAccepts,
    /// Commands (by prefix) that never get a reply.
    pub stall_on: Option<&'static str>,
    /// A command (by prefix) after which half a reply is sent and the connection closed.
    pub close_on: Option<&'static str>,
    /// (command prefix, reply) overrides.
    pub refuse: Vec<(&'static str, &'static str)>,
    pub samples_per_window: usize,
    pub uncertainty: &'static str,
    /// Lines appended to every RL answer (error lines, other marks, junk).
    pub extra_log: Vec<&'static str>,
    /// How long the server lives at most (waiting for the connection included).
    pub lifetime: Duration,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            hello: HELLO_REPLY,
            split: false,
            crlf_mix: false,
            rl: RlAccepts::All,
            stall_on: None,
            close_on: None,
            refuse: Vec::new(),
            samples_per_window: 3,
            uncertainty: "Uncertainty,0.20",
            extra_log: Vec::new(),
            lifetime: SERVER_LIFETIME,
        }
    }
}

/// What every `Watts` poll answers, inside and outside windows.
pub const IDLE_W: f64 = 42.5;
/// Watts of the logged samples: sample i of a window has `SAMPLE_W + i`.
pub const SAMPLE_W: f64 = 100.0;

/// A running fake server; [`FakePtd::commands`] waits for it to end.
pub struct FakePtd {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    thread: JoinHandle<Vec<String>>,
}

impl FakePtd {
    /// Binds 127.0.0.1 on an ephemeral port and serves one connection on a thread.
    pub fn start(script: Script) -> FakePtd {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let thread = std::thread::spawn(move || serve(listener, script));
        FakePtd { addr, thread }
    }

    /// Every line the server received, with its line ending, in order.
    pub fn commands(self) -> Vec<String> {
        self.thread.join().unwrap()
    }
}

/// Serves the first connection on `listener` by `script` until the client closes it or the
/// script's lifetime ends; returns every line received.
pub fn serve(listener: TcpListener, script: Script) -> Vec<String> {
    let deadline = Instant::now() + script.lifetime;
    listener.set_nonblocking(true).unwrap();
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => return Vec::new(),
        }
    };
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut seen = Vec::new();
    let (mut mark, mut unread): (Option<String>, Vec<String>) = (None, Vec::new());
    let mut replies = 0usize;
    while Instant::now() < deadline {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) if !line.ends_with('\n') => continue,
            Ok(_) => {}
            Err(_) => continue, // read timeout: keep waiting, bounded by the deadline
        }
        // Lines still partial after a timeout are lost here; the client sends whole lines.
        seen.push(line.clone());
        let cmd = line.trim_end();
        if script.stall_on.is_some_and(|p| cmd.starts_with(p)) {
            continue;
        }
        if script.close_on.is_some_and(|p| cmd.starts_with(p)) {
            let _ = w.write_all(b"YOKO");
            let _ = w.flush();
            break;
        }
        let reply: Vec<String> = if let Some((_, r)) = script.refuse.iter().find(|(p, _)| cmd.starts_with(p)) {
            vec![r.to_string()]
        } else {
            match cmd {
                "Hello" => vec![script.hello.into()],
                "Identify" => vec!["YOKOGAWA,WT310,TEST,F1.03".into()],
                "RR" => vec!["Ranges,0,2.0,0,300.0".into()],
                "Watts" => vec![format!("Watts,{IDLE_W}")],
                "Uncertainty" => vec![script.uncertainty.into()],
                "Stop" => {
                    if let Some(m) = mark.take() {
                        for i in 0..script.samples_per_window {
                            unread.push(format!(
                                "Time,11-25-2026 17:00:{i:02}.000,Watts,{:.6},Volts,230.{i},Amps,0.5{i},PF,0.95,Mark,{m}",
                                SAMPLE_W + i as f64
                            ));
                        }
                    }
                    vec!["Stopping untimed measurement".into()]
                }
                c if c.starts_with("SR,") => vec!["OK".into()],
                c if c.starts_with("Go,") => {
                    mark = c.splitn(4, ',').nth(3).map(str::to_string);
                    vec!["Starting untimed measurement".into()]
                }
                c @ ("RL,*,*" | "RL" | "DC-RL") => {
                    let accepted = match script.rl {
                        RlAccepts::All => true,
                        RlAccepts::PlainRl => c == "RL",
                        RlAccepts::DcRl => c == "DC-RL",
                    };
                    if !accepted && c == "RL,*,*" {
                        vec!["Invalid number of parameters".into()]
                    } else if !accepted {
                        vec!["Unknown command".into()]
                    } else {
                        unread.extend(script.extra_log.iter().map(|s| s.to_string()));
                        let mut out = vec![format!("Last {} samples", unread.len())];
                        out.append(&mut unread);
                        out
                    }
                }
                _ => vec!["Unknown command".into()],
            }
        };
        for l in reply {
            replies += 1;
            let end = if script.crlf_mix && replies.is_multiple_of(2) { "\r\n" } else { "\n" };
            let bytes = format!("{l}{end}").into_bytes();
            if script.split {
                for chunk in bytes.chunks(3) {
                    let _ = w.write_all(chunk);
                    let _ = w.flush();
                    std::thread::sleep(Duration::from_millis(2));
                }
            } else {
                let _ = w.write_all(&bytes);
            }
        }
    }
    seen
}
