//! A fake PTDaemon for tests (unit tests here, integration tests in `harness/tests`) that
//! answers **as the recorded real sessions do**. Not part of effbench's interface.
//!
//! Every reply string is taken from real PTDaemon 1.10 sessions published with MLPerf
//! Inference v4.1 results (mlcommons/inference_results_v4.1): a Yokogawa WT210
//! (`closed/UntetherAI/results/h13_u3_slim/resnet50/offline/performance/power/server.log` and
//! `server.json`) and a WT333E multichannel analyzer (`closed/NVIDIA/results/
//! H200-SXM-141GBx8_TRT_MaxQ/3d-unet-99.9/Offline/performance/power/`, quoted in sensors.md
//! §4.2); the command order from power-dev's `lib/server.py`. Where no transcript exists the
//! fake says so: the DC meter's `DC-RL` line (assumed: the AC line without PF) and `Watts`
//! before any measurement (assumed: zeros).
//!
//! The analyzer free-runs as a real one does: while a measurement runs (`Go` … `Stop`) it logs
//! one sample every period, the first at 0.21 periods after `Go` (as the WT210's did), each the
//! average of the true power over the period before it. The true power follows a [`Profile`]
//! of the time since `Go`; the fake records each window's true energy ([`TruthWindow`]), so a
//! test compares effbench's figure with the truth, not with the fake's own arithmetic.
//! Samples are computed when a command arrives, so a loaded test machine cannot starve them.
//! It binds 127.0.0.1 on an ephemeral port, serves one connection, and lives at most
//! [`Script::lifetime`].

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::HELLO_REPLY;

/// How long a fake server lives by default; keeps a failing test from hanging CI.
pub const SERVER_LIFETIME: Duration = Duration::from_secs(30);

/// Which analyzer the fake is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Analyzer {
    /// Yokogawa WT210, single channel AC: `RL,*,*` is refused with `Invalid number of
    /// parameters`, `RL` answers.
    Wt210,
    /// Yokogawa WT333E, three channels: `RL,*,*` answers with the sum and each channel.
    Wt333e,
    /// A DC analyzer: `RL,*,*` is an `Unknown command`, `DC-RL` answers.
    Dc,
}

/// True power as a function of the seconds since the window's `Go` (negative: before it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Profile {
    Constant(f64),
    /// `before` watts until `at_s` seconds after `Go`, then `after`.
    Step {
        before: f64,
        after: f64,
        at_s: f64,
    },
}

impl Profile {
    /// Energy in joules between `a` and `b` seconds after `Go`.
    pub fn energy(&self, a: f64, b: f64) -> f64 {
        match *self {
            Profile::Constant(w) => w * (b - a),
            Profile::Step { before, after, at_s } => {
                let split = at_s.clamp(a, b);
                before * (split - a) + after * (b - split)
            }
        }
    }
}

/// How the fake behaves; `Default` is a well-behaved WT210 at 100 W.
#[derive(Clone, Debug)]
pub struct Script {
    pub analyzer: Analyzer,
    pub profile: Profile,
    /// The uncertainty (fraction) of every sample when ranges are fixed; the worst sample is
    /// 1.53 × this, the best 0.86 × (the real testing window's ratios).
    pub uncertainty: f64,
    /// How long `SR` takes to answer (a real WT333E took 5-6 s).
    pub sr_delay: Duration,
    /// Leave out every Nth sample (a sample lost between analyzer and daemon).
    pub drop_every: Option<usize>,
    /// Log an `ERROR,Bad volts reading nan` line in place of every Nth sample.
    pub error_every: Option<usize>,
    /// Deliver each reply in 3-byte TCP writes with pauses.
    pub split: bool,
    /// End every other reply with `\r\n` instead of `\n`.
    pub crlf_mix: bool,
    /// Commands (by prefix) that never get a reply.
    pub stall_on: Option<&'static str>,
    /// A command (by prefix) after which half a reply is sent and the connection closed.
    pub close_on: Option<&'static str>,
    /// (command prefix, reply) overrides.
    pub refuse: Vec<(&'static str, &'static str)>,
    pub hello: &'static str,
    /// How long the server lives at most (waiting for the connection included).
    pub lifetime: Duration,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            analyzer: Analyzer::Wt210,
            profile: Profile::Constant(100.0),
            // The real WT210 testing window's average (0.46%).
            uncertainty: 0.004572,
            sr_delay: Duration::ZERO,
            drop_every: None,
            error_every: None,
            split: false,
            crlf_mix: false,
            stall_on: None,
            close_on: None,
            refuse: Vec::new(),
            hello: HELLO_REPLY,
            lifetime: SERVER_LIFETIME,
        }
    }
}

/// One finished window as the fake saw it: its mark, length and true energy.
#[derive(Clone, Debug, PartialEq)]
pub struct TruthWindow {
    pub mark: String,
    pub duration_s: f64,
    pub truth_j: f64,
    /// Samples logged for it.
    pub samples: usize,
}

/// A running fake server; [`FakePtd::finish`] waits for it to end.
pub struct FakePtd {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    thread: JoinHandle<Vec<String>>,
    truth: Arc<Mutex<Vec<TruthWindow>>>,
}

impl FakePtd {
    /// Binds 127.0.0.1 on an ephemeral port and serves one connection on a thread.
    pub fn start(script: Script) -> FakePtd {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let truth = Arc::new(Mutex::new(Vec::new()));
        let t = Arc::clone(&truth);
        let thread = std::thread::spawn(move || serve(listener, script, &t));
        FakePtd { addr, thread, truth }
    }

    /// Every line the server received (with its line ending, in order) and every window's
    /// truth, once the client has closed the connection.
    pub fn finish(self) -> (Vec<String>, Vec<TruthWindow>) {
        let seen = self.thread.join().unwrap();
        let truth = self.truth.lock().unwrap().clone();
        (seen, truth)
    }

    /// Every line the server received; waits for the server to end.
    pub fn commands(self) -> Vec<String> {
        self.finish().0
    }
}

/// The running measurement, or the last one after `Stop`.
struct Measurement {
    mark: String,
    go: Instant,
    period_s: f64,
    /// Samples produced so far (including dropped ones), i.e. the next sample's index.
    k: usize,
    running: bool,
    watts: Vec<f64>,
}

struct FakeAnalyzer {
    script: Script,
    m: Option<Measurement>,
    unread: Vec<String>,
    /// (autorange, range) for amps and volts, as `RR` reports them.
    amps: (i32, f64),
    volts: (i32, f64),
}

impl FakeAnalyzer {
    fn new(script: Script) -> FakeAnalyzer {
        let (amps, volts) = match script.analyzer {
            // The WT210 session's `RR` reply: Ranges,0,10.000000,0,150.000000.
            Analyzer::Wt210 | Analyzer::Dc => ((0, 10.0), (0, 150.0)),
            // The WT333E session's: Ranges,1,10.000000,1,300.000000 (auto).
            Analyzer::Wt333e => ((1, 10.0), (1, 300.0)),
        };
        FakeAnalyzer { script, m: None, unread: Vec::new(), amps, volts }
    }

    /// Logs every sample due by `now`.
    fn catch_up(&mut self, now: Instant) {
        let Some(m) = self.m.as_mut().filter(|m| m.running) else { return };
        let phase = 0.21 * m.period_s;
        let elapsed = now.duration_since(m.go).as_secs_f64();
        while phase + m.k as f64 * m.period_s <= elapsed {
            let end = phase + m.k as f64 * m.period_s;
            let w = self.script.profile.energy(end - m.period_s, end) / m.period_s;
            m.k += 1;
            let at = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH
                + chrono::Duration::milliseconds(1_721_741_289_884 + (end * 1000.0) as i64);
            let ts = at.format("%m-%d-%Y %H:%M:%S%.3f");
            if self.script.drop_every.is_some_and(|n| m.k.is_multiple_of(n)) {
                continue;
            }
            if self.script.error_every.is_some_and(|n| m.k.is_multiple_of(n)) {
                self.unread.push(format!("Time,{ts},ERROR,Bad volts reading nan from WT210"));
                continue;
            }
            m.watts.push(w);
            self.unread.push(sample_line(self.script.analyzer, &ts.to_string(), w));
        }
    }

    fn reply(&mut self, cmd: &str, truth: &Mutex<Vec<TruthWindow>>) -> Vec<String> {
        let now = Instant::now();
        self.catch_up(now);
        match cmd {
            "Hello" => vec![self.script.hello.into()],
            "Identify" => vec![identity(self.script.analyzer).into()],
            "RR" => vec![format!("Ranges,{},{:.6},{},{:.6}", self.amps.0, self.amps.1, self.volts.0, self.volts.1)],
            "Watts" => vec![self.watts_reply()],
            "Uncertainty" => vec![self.uncertainty_reply()],
            "Stop" => match self.m.as_mut().filter(|m| m.running) {
                Some(m) => {
                    m.running = false;
                    let d = now.duration_since(m.go).as_secs_f64();
                    let t = TruthWindow {
                        mark: m.mark.clone(),
                        duration_s: d,
                        truth_j: self.script.profile.energy(0.0, d),
                        samples: m.watts.len(),
                    };
                    truth.lock().unwrap().push(t);
                    vec!["Stopping untimed measurement".into()]
                }
                // power-dev's compliance checker expects this reply to a Stop with none running.
                None => vec!["Error: no measurement to stop".into()],
            },
            c if c.starts_with("SR,") => self.set_range(c),
            c if c.starts_with("Go,") => self.go(c, now),
            c @ ("RL,*,*" | "RL" | "DC-RL") => self.read_log(c),
            _ => vec!["Unknown command".into()],
        }
    }

    fn go(&mut self, c: &str, now: Instant) -> Vec<String> {
        let f: Vec<&str> = c.splitn(4, ',').collect();
        let period_ms: u32 = f.get(1).and_then(|p| p.parse().ok()).unwrap_or(1000);
        let mark = f.get(3).copied().unwrap_or("").to_string();
        self.unread.clear(); // a new measurement: the daemon's unread samples start afresh
        self.m = Some(Measurement {
            mark,
            go: now,
            period_s: f64::from(period_ms) / 1000.0,
            k: 0,
            running: true,
            watts: Vec::new(),
        });
        vec![format!("Starting untimed measurement, maximum 500000 samples at {period_ms}ms with 0 rampup samples")]
    }

    fn set_range(&mut self, c: &str) -> Vec<String> {
        std::thread::sleep(self.script.sr_delay);
        let f: Vec<&str> = c.split(',').collect();
        let setting = match f.get(2) {
            Some(&"Auto") => (1, -1.0),
            Some(v) => match v.parse::<f64>() {
                Ok(v) => (0, v),
                Err(_) => return vec!["Error: bad range".into()],
            },
            None => return vec!["Invalid number of parameters".into()],
        };
        match f.get(1) {
            Some(&"V") => {
                self.volts = (setting.0, if setting.0 == 1 { self.volts.1 } else { setting.1 });
                vec!["Range V changed".into()]
            }
            Some(&"A") => {
                self.amps = (setting.0, if setting.0 == 1 { self.amps.1 } else { setting.1 });
                vec!["Range A changed".into()]
            }
            _ => vec!["Invalid number of parameters".into()],
        }
    }

    fn read_log(&mut self, c: &str) -> Vec<String> {
        let header = match (self.script.analyzer, c) {
            (Analyzer::Wt333e, "RL,*,*") => {
                format!("Last {} samples from sum channel and channels 1 - 3", self.unread.len())
            }
            (Analyzer::Wt210, "RL") | (Analyzer::Dc, "DC-RL") => format!("Last {} samples", self.unread.len()),
            (Analyzer::Wt210, "RL,*,*") => return vec!["Invalid number of parameters".into()],
            _ => return vec!["Unknown command".into()],
        };
        let mut out = vec![header];
        out.append(&mut self.unread);
        out
    }

    fn watts_reply(&self) -> String {
        let w = self.m.as_ref().map(|m| m.watts.as_slice()).unwrap_or(&[]);
        if w.is_empty() {
            return "Watts,0.000000,0.000000,0.000000,0,0,0".into(); // assumed: no transcript
        }
        let avg = w.iter().sum::<f64>() / w.len() as f64;
        let (min, max) = w.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(*x), b.max(*x)));
        format!("Watts,{avg:.6},{min:.6},{max:.6},{n},0,{n}", n = w.len())
    }

    fn uncertainty_reply(&self) -> String {
        let n = self.m.as_ref().map_or(0, |m| m.watts.len());
        if self.amps.0 == 1 || self.volts.0 == 1 {
            // The real ranging window's reply: auto range, so nothing is known.
            return format!("Uncertainty,-1.0,10000000.000000,0.000000,{n},0,0,{n}");
        }
        let u = self.script.uncertainty;
        format!("Uncertainty,{u:.6},{:.6},{:.6},{n},0,{n},0", u * 0.86, u * 1.53)
    }
}

fn identity(a: Analyzer) -> &'static str {
    match a {
        Analyzer::Wt210 => {
            "YokogawaWT210,1000,1,1,1,1,0,0,1,version=1.10.0-ed9a21d2-20220817,OS=Linux 5.15.0-116-generic \
                            #126-Ubuntu SMP Mon Jul 1 10:14:24 UTC 2024 x86_64,mode=power,1,1,1,0,0,no_cal_date,\
                            YOKOGAWA;760401;0;F1.12"
        }
        Analyzer::Wt333e => {
            "YokogawaWT330_multichannel,1000,1,1,1,1,0,0,1,version=1.10.0-ed9a21d2-20220817,OS=Linux,\
                             mode=power,1,1,3,0,0,no_cal_date,YOKOGAWA;WT333E;TEST;F1.04"
        }
        Analyzer::Dc => {
            "YokogawaWT310_DC,1000,1,1,1,1,0,0,1,version=1.10.0,mode=power,no_cal_date,YOKOGAWA;WT310;TEST;F1.03"
        }
    }
}

/// One log line in the wire form (no Mark, no channel labels).
fn sample_line(a: Analyzer, ts: &str, w: f64) -> String {
    let group = |w: f64, v: f64, pf: f64| format!("Watts,{w:.6},Volts,{v:.6},Amps,{:.6},PF,{pf:.6}", w / (v * pf));
    match a {
        Analyzer::Wt210 => format!("Time,{ts},{}", group(w, 118.6, 0.897)),
        Analyzer::Wt333e => {
            let ch: Vec<String> = [0.3, 0.3, 0.4].iter().map(|f| group(w * f, 239.2, 0.965)).collect();
            format!("Time,{ts},{},{}", group(w, 239.2, 0.965), ch.join(","))
        }
        // Assumed: no DC transcript is public; the AC line without PF.
        Analyzer::Dc => format!("Time,{ts},Watts,{w:.6},Volts,48.000000,Amps,{:.6}", w / 48.0),
    }
}

/// Serves the first connection on `listener` by `script` until the client closes it or the
/// script's lifetime ends; returns every line received.
fn serve(listener: TcpListener, script: Script, truth: &Mutex<Vec<TruthWindow>>) -> Vec<String> {
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
    let mut analyzer = FakeAnalyzer::new(script.clone());
    let mut replies = 0usize;
    while Instant::now() < deadline {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) if !line.ends_with('\n') => continue,
            Ok(_) => {}
            Err(_) => continue, // read timeout: keep waiting, bounded by the deadline
        }
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
        let reply = match script.refuse.iter().find(|(p, _)| cmd.starts_with(p)) {
            Some((_, r)) => vec![r.to_string()],
            None => analyzer.reply(cmd, truth),
        };
        for l in reply {
            replies += 1;
            let end = if script.crlf_mix && replies.is_multiple_of(2) { "\r\n" } else { "\n" };
            send(&mut w, format!("{l}{end}").as_bytes(), script.split);
        }
    }
    seen
}

fn send(w: &mut impl Write, bytes: &[u8], split: bool) {
    if split {
        for chunk in bytes.chunks(3) {
            let _ = w.write_all(chunk);
            let _ = w.flush();
            std::thread::sleep(Duration::from_millis(2));
        }
    } else {
        let _ = w.write_all(bytes);
    }
}
