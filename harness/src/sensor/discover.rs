//! Discovery: every candidate energy source on this machine, its status, and the set of
//! sensors a run meters. Measured sources come first; the CPU estimate is added only for a
//! backend domain that no measured source covers (and never when a wall meter measures the
//! whole system), and it is labelled `estimated` wherever it appears.

use std::path::PathBuf;
use std::sync::Arc;

use super::{command, estimate, hwmon, nvml, ptd, rapl, sysfs, Candidate, Sensor, Status};

/// What to look for.
#[derive(Clone, Debug)]
pub struct DiscoverOptions {
    /// The sysfs root (`/sys`, or `$EFFBENCH_SYSFS_ROOT`).
    pub root: PathBuf,
    /// `--meter ptd://HOST:PORT`.
    pub meter: Option<String>,
    /// How to talk to the wall meter's PTDaemon.
    pub ptd: ptd::PtdOptions,
    /// `--power-command "CMD"` and how to run it (domain, unit, mode, timeout).
    pub power_command: Option<(String, command::CommandOptions)>,
    /// The domains the backend's work draws on (`cpu` for the CPU backend).
    pub backend_domains: Vec<String>,
    /// Domains metered only when a measured source covers them (a GPU backend's host CPU).
    pub host_domains: Vec<String>,
}

impl DiscoverOptions {
    pub fn for_domains(domains: &[&str]) -> DiscoverOptions {
        DiscoverOptions {
            root: sysfs::sysfs_root(),
            meter: None,
            ptd: ptd::PtdOptions::default(),
            power_command: None,
            backend_domains: domains.iter().map(|d| d.to_string()).collect(),
            host_domains: Vec::new(),
        }
    }
}

/// Every candidate, in a stable order: RAPL, hwmon, NVML, wall meter, vendor command, estimate.
pub fn discover(opts: &DiscoverOptions) -> Vec<Candidate> {
    discover_with_wall(opts).0
}

/// As [`discover`], plus the wall meter's window handle when `--meter` connected: a run marks
/// each measured window on the analyzer too (`Go`/`Stop` with a mark), as MLPerf Power does.
pub fn discover_with_wall(opts: &DiscoverOptions) -> (Vec<Candidate>, Option<ptd::PtdWindows>) {
    let fs: Arc<dyn sysfs::Fs> = Arc::new(sysfs::RealFs);
    let mut all = rapl::discover(&opts.root, fs.clone());
    let nvml = nvml::discover(None);
    let nvml_gpus = nvml.iter().filter(|c| c.domains.iter().any(|d| d.starts_with("gpu:"))).count() as u32;
    all.extend(hwmon::discover(&opts.root, fs, nvml_gpus));
    all.extend(nvml);
    let mut wall_windows = None;
    if let Some(url) = &opts.meter {
        let (c, w) = ptd_candidate(url, &opts.ptd);
        all.push(c);
        wall_windows = w;
    }
    if let Some((cmd, command_opts)) = &opts.power_command {
        all.push(command_candidate(cmd, command_opts));
    }
    let measured = |d: &str| all.iter().any(|c| c.status == Status::Ok && c.domains.iter().any(|x| x == d));
    let wall = measured("system");
    if !wall && opts.backend_domains.iter().any(|d| d == "cpu") && !measured("cpu") {
        let e = estimate::CpuEstimate::from_system();
        let info = e.info();
        all.push(Candidate {
            kind: "estimate",
            id: info.id.clone(),
            domains: vec![info.domain.clone()],
            status: Status::Estimated,
            detail: info.detail.clone(),
            sensors: vec![Box::new(e)],
        });
    }
    (all, wall_windows)
}

fn ptd_candidate(url: &str, opts: &ptd::PtdOptions) -> (Candidate, Option<ptd::PtdWindows>) {
    let id = format!("ptd:{url}");
    let (status, sensors, windows): (Status, Vec<Box<dyn Sensor>>, _) = match ptd::parse_meter_url(url)
        .and_then(|_| ptd::PtdSensor::connect(url, opts.clone()).map_err(|e| e.to_string()))
    {
        Ok(s) => {
            let w = s.windows();
            (Status::Ok, vec![Box::new(s)], Some(w))
        }
        Err(reason) => (Status::Unavailable { reason }, vec![], None),
    };
    let detail = serde_json::json!({ "url": url });
    (Candidate { kind: "ptd", id, domains: vec!["system".into()], status, detail, sensors }, windows)
}

fn command_candidate(cmd: &str, opts: &command::CommandOptions) -> Candidate {
    let id = opts.id.clone().unwrap_or_else(|| format!("command:{}", opts.domain));
    // Creating the sensor runs the command once (one-shot) or waits for its first line
    // (stream), so a command that fails shows up here, not mid-run.
    let (status, sensors): (Status, Vec<Box<dyn Sensor>>) =
        match command::CommandSensor::with_options(cmd, opts.clone()) {
            Ok(s) => (Status::Ok, vec![Box::new(s)]),
            Err(e) => (Status::Unavailable { reason: e.to_string() }, vec![]),
        };
    let mode = match opts.mode {
        command::CommandMode::OneShot { interval } => format!("one-shot every {} s", interval.as_secs_f64()),
        command::CommandMode::Stream => "stream".into(),
    };
    Candidate {
        kind: "command",
        id,
        domains: vec![opts.domain.clone()],
        status,
        detail: serde_json::json!({
            "command": cmd,
            "timeout_s": opts.timeout.as_secs_f64(),
            "unit": opts.unit.label(),
            "mode": mode,
        }),
        sensors,
    }
}

/// The sensors a run meters: those of `Ok` and `Estimated` candidates whose domain the work
/// draws on: the backend's domains, plus `dram` and the wall (`system`), plus the host domains
/// where a measured (`Ok`) source covers them. A GPU sitting idle beside a CPU run is listed by
/// `effbench sensors` but not added to the run's energy.
pub fn take_sensors(candidates: &mut [Candidate], opts: &DiscoverOptions) -> Vec<Box<dyn Sensor>> {
    let counts = |d: &str| d == "dram" || d == "system" || opts.backend_domains.iter().any(|b| b == d);
    let host = |d: &str| opts.host_domains.iter().any(|b| b == d);
    candidates
        .iter_mut()
        .filter(|c| match c.status {
            Status::Ok => true,
            Status::Estimated => c.domains.iter().all(|d| !host(d)),
            _ => false,
        })
        .flat_map(|c| std::mem::take(&mut c.sensors))
        .filter(|s| counts(&s.info().domain) || host(&s.info().domain))
        .collect()
}

/// Backend domains with no measured source (only an estimate, or nothing).
pub fn unmeasured_domains(candidates: &[Candidate], backend_domains: &[String]) -> Vec<String> {
    let wall = candidates.iter().any(|c| c.status == Status::Ok && c.domains.iter().any(|d| d == "system"));
    backend_domains
        .iter()
        .filter(|d| !wall && !candidates.iter().any(|c| c.status == Status::Ok && c.domains.contains(d)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensor::fake::FakePower;
    use crate::units::Watts;

    fn candidate(kind: &'static str, domain: &str, status: Status) -> Candidate {
        let sensors: Vec<Box<dyn Sensor>> = vec![Box::new(FakePower::new(domain, Watts(1.0)))];
        Candidate {
            kind,
            id: format!("{kind}:{domain}"),
            domains: vec![domain.into()],
            status,
            detail: Default::default(),
            sensors,
        }
    }

    fn taken(candidates: &mut [Candidate], opts: &DiscoverOptions) -> Vec<String> {
        take_sensors(candidates, opts).iter().map(|s| s.info().domain).collect()
    }

    #[test]
    fn a_run_meters_its_domains_dram_and_the_wall_but_not_an_idle_gpu() {
        let mut c = vec![
            candidate("rapl", "cpu", Status::Ok),
            candidate("rapl", "dram", Status::Ok),
            candidate("nvml", "gpu:0", Status::Ok),
            candidate("ptd", "system", Status::Ok),
        ];
        assert_eq!(taken(&mut c, &DiscoverOptions::for_domains(&["cpu"])), vec!["cpu", "dram", "system"]);
    }

    #[test]
    fn a_gpu_run_meters_the_host_cpu_only_where_it_is_measured() {
        let mut opts = DiscoverOptions::for_domains(&["gpu:0"]);
        opts.host_domains = vec!["cpu".into()];
        let mut measured = vec![candidate("rapl", "cpu", Status::Ok), candidate("nvml", "gpu:0", Status::Ok)];
        assert_eq!(taken(&mut measured, &opts), vec!["cpu", "gpu:0"]);
        let mut estimated =
            vec![candidate("estimate", "cpu", Status::Estimated), candidate("nvml", "gpu:0", Status::Ok)];
        assert_eq!(taken(&mut estimated, &opts), vec!["gpu:0"], "an estimate never joins a GPU figure");
        // and discovery offers no CPU estimate for a GPU backend in the first place
        assert!(unmeasured_domains(&estimated, &opts.backend_domains).is_empty());
    }
}
