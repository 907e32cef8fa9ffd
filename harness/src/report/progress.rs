//! Progress on stderr: a bar (indicatif) when stderr is a terminal, plain lines otherwise (CI
//! logs, pipes), so logs stay readable and a terminal stays tidy.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::result::Repeat;

/// Hooks the run calls; every one has a no-op default (criterion's `Report` habit).
pub trait Progress {
    fn note(&mut self, _msg: &str) {}
    fn workload_start(&mut self, _id: &str, _repeats: u32) {}
    fn evaluation(&mut self, _samples: u64, _quality: f64) {}
    fn repeat_done(&mut self, _id: &str, _r: &Repeat, _elapsed: Duration, _energy_label: &str) {}
    fn workload_done(&mut self, _id: &str) {}
}

pub struct Silent;
impl Progress for Silent {}

pub fn for_stderr() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(Bar { bar: None })
    } else {
        Box::new(Lines)
    }
}

pub fn describe(r: &Repeat, label: &str) -> String {
    let quality = r.quality.map_or("none".to_string(), |q| format!("{q:.4}"));
    let mut s = format!("seed {}: ", r.seed);
    match (r.valid, r.samples_to_target) {
        (true, Some(n)) => s += &format!("target reached at {n} samples (quality {quality})"),
        (true, None) => s += &format!("{} units, quality {quality}", r.units_processed),
        (false, _) => s += &format!("INVALID: {}", r.invalid_reason.as_deref().unwrap_or("?")),
    }
    let e = if label == "estimated" { "ESTIMATED" } else { label };
    s += &format!(", {:.2} s", r.wall_s.0);
    // A domain whose energy could not be measured completely (a sensor that failed mid-run)
    // is said with its reason, never shown as 0 J.
    if !r.energy_j.by_domain.is_empty() {
        s += &format!(", {:.2} J {e}", r.energy_j.total.0);
    }
    if let Some(first) = r.unresolved_energy.first() {
        let domains: Vec<&str> = r.unresolved_energy.iter().map(|u| u.domain.as_str()).collect();
        s += &format!(", {} energy UNRESOLVED ({})", domains.join(", "), first.reason);
    }
    s
}

struct Lines;

impl Progress for Lines {
    fn note(&mut self, msg: &str) {
        eprintln!("effbench: {msg}");
    }
    fn workload_start(&mut self, id: &str, repeats: u32) {
        eprintln!("effbench: {id}: {repeats} repeat(s)");
    }
    fn repeat_done(&mut self, id: &str, r: &Repeat, _elapsed: Duration, label: &str) {
        eprintln!("effbench: {id}: {}", describe(r, label));
    }
}

struct Bar {
    bar: Option<ProgressBar>,
}

impl Progress for Bar {
    fn note(&mut self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(format!("effbench: {msg}")),
            None => eprintln!("effbench: {msg}"),
        }
    }
    fn workload_start(&mut self, id: &str, repeats: u32) {
        let bar = ProgressBar::new(repeats as u64);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>24} [{bar:30}] {pos}/{len} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(id.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        self.bar = Some(bar);
    }
    fn evaluation(&mut self, samples: u64, quality: f64) {
        if let Some(b) = &self.bar {
            b.set_message(format!("{samples} samples, quality {quality:.4}"));
        }
    }
    fn repeat_done(&mut self, id: &str, r: &Repeat, _elapsed: Duration, label: &str) {
        if let Some(b) = &self.bar {
            b.println(format!("{id}: {}", describe(r, label)));
            b.inc(1);
        }
    }
    fn workload_done(&mut self, _id: &str) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
