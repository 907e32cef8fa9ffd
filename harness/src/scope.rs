//! Energy scopes: what an energy figure covers (design.md, "Energy scope").
//!
//! Every energy domain of a run is classed by what it is to the work:
//!
//! - [`DomainClass::Device`]: the device that does the work, the backend's own domain (`cpu`
//!   for the CPU backend, `gpu:N` for `cuda:N`, the runner's declared domain such as `npu:0`
//!   for `external:`);
//! - [`DomainClass::Host`]: everything else in the node that a sensor metered: the CPU package
//!   and DRAM when the work runs on an accelerator, DRAM for the CPU backend;
//! - [`DomainClass::Wall`]: a wall meter (`system`), the whole box.
//!
//! and a repeat's energy is given per [`Scope`] it measured: `device` (the device domain),
//! `node` (device + every host domain; recorded only when both classes were metered), `wall`.
//! Verdicts compare like scopes; within a scope the domain *names* may differ (`gpu:0` against
//! `npu:0` at device scope is the K-NPU comparison).
//!
//! A scope is only as good as its weakest domain: its provenance is the weakest of its
//! sources' ([`scope_provenance`]), and a repeat whose scope misses a domain's figure (the
//! domain is in `unresolved_energy`, or has no figure) has that scope unresolved, never a
//! smaller number.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::result::{Repeat, RunResult};
use crate::sensor::{Provenance, SourceInfo};
use crate::units::Joules;

pub mod pair;
pub use pair::{choose, NoPair, ScopePair};

/// What an energy figure covers, narrowest first.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Device,
    Node,
    Wall,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Device, Scope::Node, Scope::Wall];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Device => "device",
            Scope::Node => "node",
            Scope::Wall => "wall",
        }
    }

    /// Whether a domain of `class` is part of this scope.
    pub fn covers(self, class: DomainClass) -> bool {
        match self {
            Scope::Device => class == DomainClass::Device,
            Scope::Node => class != DomainClass::Wall,
            Scope::Wall => class == DomainClass::Wall,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Scope, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "device" => Ok(Scope::Device),
            "node" => Ok(Scope::Node),
            "wall" => Ok(Scope::Wall),
            other => Err(format!("unknown energy scope {other:?}; expected device, node or wall")),
        }
    }
}

/// What a domain is to the work.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainClass {
    Device,
    Host,
    Wall,
}

/// The wall meter's domain.
pub const WALL_DOMAIN: &str = "system";

/// Classes `domain` for work done on `work_domain`.
pub fn classify(domain: &str, work_domain: Option<&str>) -> DomainClass {
    if domain == WALL_DOMAIN {
        DomainClass::Wall
    } else if Some(domain) == work_domain {
        DomainClass::Device
    } else {
        DomainClass::Host
    }
}

/// The energy domain of the device that did a run's work: `backend.domain` where the file
/// records it (`effbench.result/2`), else derived as effbench 0.1 ran it: `cpu` for the CPU
/// backend, `gpu:N` for `cuda:N`, the runner's telemetry domain for `external` (none when the
/// runner reported no telemetry: such a `/1` file has no device scope).
pub fn work_domain(r: &RunResult) -> Option<String> {
    if let Some(d) = &r.backend.domain {
        return Some(d.clone());
    }
    let kind = r.backend.kind.as_str();
    if kind == "cpu" {
        return Some("cpu".into());
    }
    if let Some(n) = kind.strip_prefix("cuda:").or_else(|| r.backend.device.strip_prefix("cuda:")) {
        return Some(format!("gpu:{n}"));
    }
    if kind == "cuda" {
        return Some("gpu:0".into());
    }
    r.energy_sources.iter().find(|s| s.kind == "runner").map(|s| s.domain.clone())
}

/// The domains a run metered, each with its class.
pub fn domains(r: &RunResult) -> BTreeMap<String, DomainClass> {
    let work = work_domain(r);
    r.energy_sources.iter().map(|s| (s.domain.clone(), classify(&s.domain, work.as_deref()))).collect()
}

/// The scopes a run measured: `device` when its work domain was metered, `node` when the work
/// domain and at least one host domain were, `wall` when a wall meter was.
pub fn measured_scopes(r: &RunResult) -> Vec<Scope> {
    let classes: BTreeSet<DomainClass> = domains(r).into_values().collect();
    let has = |c| classes.contains(&c);
    let mut out = Vec::new();
    if has(DomainClass::Device) {
        out.push(Scope::Device);
        if has(DomainClass::Host) {
            out.push(Scope::Node);
        }
    }
    if has(DomainClass::Wall) {
        out.push(Scope::Wall);
    }
    out
}

/// The domains of `scope` in run `r`, sorted.
pub fn scope_domains(r: &RunResult, scope: Scope) -> Vec<String> {
    domains(r).into_iter().filter(|(_, c)| scope.covers(*c)).map(|(d, _)| d).collect()
}

/// The sources whose domain is in `scope`.
pub fn scope_sources(r: &RunResult, scope: Scope) -> Vec<&SourceInfo> {
    let ds = scope_domains(r, scope);
    r.energy_sources.iter().filter(|s| ds.contains(&s.domain)).collect()
}

/// The weakest provenance among `scope`'s sources: estimated, then vendor-reported, then
/// measured. `None` when the scope has no source.
pub fn scope_provenance(r: &RunResult, scope: Scope) -> Option<Provenance> {
    let ps: Vec<Provenance> = scope_sources(r, scope).iter().map(|s| s.provenance).collect();
    [Provenance::Estimated, Provenance::VendorReported, Provenance::Measured].into_iter().find(|p| ps.contains(p))
}

/// One repeat's energy at one scope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScopeEnergy {
    /// The domains summed, sorted.
    pub domains: Vec<String>,
    /// Sum of the domains' `energy_j`; absent when unresolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_j: Option<Joules>,
    /// Sum of the domains' `dynamic_energy_j`; absent when unresolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_j: Option<Joules>,
    /// `total_j / units_processed`; absent when unresolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_unit_j: Option<Joules>,
    /// Why this scope's energy is not a measurement (a domain unresolved or without a figure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unresolved: Option<String>,
}

/// `rep`'s energy at `scope` in run `r`, derived from its per-domain figures; `None` when the
/// run did not measure the scope.
pub fn repeat_scope(r: &RunResult, rep: &Repeat, scope: Scope) -> Option<ScopeEnergy> {
    if !measured_scopes(r).contains(&scope) {
        return None;
    }
    let domains = scope_domains(r, scope);
    let mut out =
        ScopeEnergy { domains: domains.clone(), total_j: None, dynamic_j: None, per_unit_j: None, unresolved: None };
    if let Some(u) = rep.unresolved_energy.iter().find(|u| domains.contains(&u.domain)) {
        out.unresolved = Some(format!("{} energy is unresolved: {}", u.domain, u.reason));
        return Some(out);
    }
    let (mut total, mut dynamic) = (0.0, 0.0);
    for d in &domains {
        match (rep.energy_j.by_domain.get(d), rep.dynamic_energy_j.by_domain.get(d)) {
            (Some(t), Some(y)) => {
                total += t.0;
                dynamic += y.0;
            }
            _ => {
                out.unresolved = Some(format!("{d} has no energy figure in this repeat"));
                return Some(out);
            }
        }
    }
    out.total_j = Some(Joules(total));
    out.dynamic_j = Some(Joules(dynamic));
    out.per_unit_j = Some(Joules(total / rep.units_processed.max(1) as f64));
    Some(out)
}

/// Every scope `r` measured, for `rep`: what a result file records beside the per-domain
/// figures (`energy_scopes`).
pub fn repeat_scopes(r: &RunResult, rep: &Repeat) -> BTreeMap<Scope, ScopeEnergy> {
    Scope::ALL.into_iter().filter_map(|s| repeat_scope(r, rep, s).map(|e| (s, e))).collect()
}

/// Where a repeat's recorded `energy_scopes` disagree with what its per-domain figures give
/// (relative 1e-9), naming the scope; `None` when they agree or nothing is recorded.
pub fn recorded_disagreement(r: &RunResult, rep: &Repeat) -> Option<String> {
    if rep.energy_scopes.is_empty() {
        return None;
    }
    let derived = repeat_scopes(r, rep);
    let close = |a: Option<Joules>, b: Option<Joules>| match (a, b) {
        (Some(a), Some(b)) => (a.0 - b.0).abs() <= 1e-9 * a.0.abs().max(b.0.abs()).max(1e-12),
        (None, None) => true,
        _ => false,
    };
    for s in Scope::ALL {
        match (rep.energy_scopes.get(&s), derived.get(&s)) {
            (None, None) => {}
            (Some(x), Some(y)) if x.domains == y.domains && close(x.total_j, y.total_j) => {}
            (x, y) => {
                let show = |e: Option<&ScopeEnergy>| {
                    e.map_or("nothing".to_string(), |e| match e.total_j {
                        Some(j) => format!("{:.6} J from [{}]", j.0, e.domains.join(", ")),
                        None => format!("unresolved [{}]", e.domains.join(", ")),
                    })
                };
                return Some(format!(
                    "its {s} energy is recorded as {}, but its per-domain figures give {}",
                    show(x),
                    show(y)
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
