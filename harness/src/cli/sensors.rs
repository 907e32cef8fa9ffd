use std::time::Duration;

use clap::Args;

use super::CliResult;
use crate::error::{Error, Exit};
use crate::sensor::command::{CommandMode, CommandOptions, CommandUnit};
use crate::sensor::discover::{discover, unmeasured_domains, DiscoverOptions};

#[derive(Args, Debug, Clone)]
pub struct MeterArgs {
    /// A wall power meter through SPEC PTDaemon: ptd://HOST:PORT (effbench does not ship PTDaemon).
    #[arg(long, value_name = "ptd://HOST:PORT", env = "EFFBENCH_METER")]
    pub meter: Option<String>,
    /// The wall meter's sample period in ms, sent with `Go` (one your analyzer supports;
    /// PTDaemon's reply names the period it uses, and that one is taken).
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(10..=60_000))]
    pub meter_period_ms: u32,
    /// Fewest analyzer samples a window needs for its wall energy to count as measured;
    /// training repeats are run again (same seed) inside one window until it is that long.
    #[arg(long, value_name = "N", default_value_t = crate::sensor::ptd::MIN_WINDOW_SAMPLES as u32,
          value_parser = clap::value_parser!(u32).range(10..=100_000))]
    pub meter_min_samples: u32,
    /// A wall-meter window whose worst sample's uncertainty is above this (percent) is flagged;
    /// with --require-measured its repeat is invalid (MLPerf Power's limit is 1%).
    #[arg(long, value_name = "PCT", default_value_t = crate::sensor::ptd::UNCERTAINTY_LIMIT_PCT)]
    pub max_meter_uncertainty: f64,
    /// MLPerf's ranging pass: before each workload, one unrecorded window in auto range, then
    /// fixed ranges (SR) from the volts and amps it saw; the original ranges are restored at
    /// the end.
    #[arg(long)]
    pub meter_ranging: bool,
    /// Seconds to wait after changing the analyzer's ranges (power-dev waits 10).
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    pub meter_settle_secs: f64,
    /// A command that prints power (W, mW) or cumulative energy (J) for one domain, run about
    /// once a second in the background (the meter reads its latest value): a vendor tool for
    /// NPUs whose only telemetry is a CLI.
    #[arg(long, value_name = "CMD", env = "EFFBENCH_POWER_COMMAND")]
    pub power_command: Option<String>,
    /// The domain --power-command measures (npu:0, gpu:0, system...).
    #[arg(long, value_name = "DOMAIN", default_value = "npu:0")]
    pub power_command_domain: String,
    /// Seconds a --power-command may take before it is killed (stream mode: the longest
    /// silence between two lines).
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    pub power_command_timeout: f64,
    /// The unit of a bare number the command prints: auto (W, unless the output says J or mW),
    /// W, mW, J, mJ, uJ. J, mJ and uJ mean cumulative energy.
    #[arg(long, value_name = "UNIT", default_value = "auto")]
    pub power_command_unit: CommandUnit,
    /// oneshot: run the command every --power-command-interval seconds, one value per run;
    /// stream: start it once, it prints one value per line until effbench stops it.
    #[arg(long, value_name = "MODE", default_value = "oneshot", value_parser = ["oneshot", "stream"])]
    pub power_command_mode: String,
    /// One-shot mode: seconds between two runs of the command.
    #[arg(long, value_name = "S", default_value_t = 1.0)]
    pub power_command_interval: f64,
}

impl MeterArgs {
    /// Checks the numbers clap cannot: the `--power-command-*` seconds are in (0, 3600] (a
    /// value `Duration` cannot hold must be an error, not a panic), and the wall-meter numbers
    /// are finite and in range.
    pub fn check(&self) -> Result<(), String> {
        for (flag, v) in [
            ("--power-command-timeout", self.power_command_timeout),
            ("--power-command-interval", self.power_command_interval),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 3600.0) {
                return Err(format!("{flag} must be a number of seconds in (0, 3600], got {v}"));
            }
        }
        let u = self.max_meter_uncertainty;
        if !(u.is_finite() && u > 0.0 && u <= 100.0) {
            return Err(format!("--max-meter-uncertainty must be a percentage in (0, 100], got {u}"));
        }
        let s = self.meter_settle_secs;
        if !(s.is_finite() && (0.0..=600.0).contains(&s)) {
            return Err(format!("--meter-settle-secs must be between 0 and 600 seconds, got {s}"));
        }
        if self.meter_ranging && self.meter.is_none() {
            return Err("--meter-ranging needs a wall meter (--meter ptd://HOST:PORT)".into());
        }
        Ok(())
    }

    pub fn options(&self, domains: &[&str]) -> DiscoverOptions {
        let mut o = DiscoverOptions::for_domains(domains);
        o.meter = self.meter.clone();
        o.ptd = crate::sensor::ptd::PtdOptions {
            sample_period_ms: self.meter_period_ms,
            min_samples: self.meter_min_samples as usize,
            max_uncertainty_pct: self.max_meter_uncertainty,
            settle: Duration::try_from_secs_f64(self.meter_settle_secs).unwrap_or(Duration::from_secs(10)),
            ..Default::default()
        };
        o.power_command = self.power_command.clone().map(|c| {
            let secs = |s: f64| Duration::from_secs_f64(if s.is_finite() { s.max(0.1) } else { 0.1 });
            let mut opts = CommandOptions::new(&self.power_command_domain, secs(self.power_command_timeout));
            opts.unit = self.power_command_unit;
            opts.mode = match self.power_command_mode.as_str() {
                "stream" => CommandMode::Stream,
                _ => CommandMode::OneShot { interval: secs(self.power_command_interval) },
            };
            (c, opts)
        });
        o
    }
}

#[derive(Args, Debug)]
pub struct SensorsArgs {
    #[command(flatten)]
    pub meter: MeterArgs,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn main(args: SensorsArgs) -> CliResult {
    args.meter.check().map_err(|e| Error::bad_input(anyhow::anyhow!(e)))?;
    let opts = args.meter.options(&["cpu"]);
    let candidates = discover(&opts);
    if args.json {
        print!("{}", crate::report::listing::sensors_json(&candidates));
    } else {
        let missing = unmeasured_domains(&candidates, &opts.backend_domains);
        print!("{}", crate::report::listing::sensors_text(&opts.root, &candidates, &missing));
    }
    Ok(Exit::Ok)
}
