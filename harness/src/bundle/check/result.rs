//! The checks of one result file and the files beside it (trace, recipe, runner TOML, exported
//! model).

use std::collections::BTreeSet;
use std::io::{BufReader, Read};
use std::path::Path;

use super::energy::{self, Trace};
use super::{refs, train, wall};
use super::{CheckOptions, Feedback, Finding};
use crate::bundle::fsafe;
use crate::result::RunResult;
use crate::sensor::Provenance;

/// The most rows a trace may have (1 kHz for 10 hours).
pub const MAX_TRACE_ROWS: usize = 36_000_000;
/// MLPerf Power's bound on a wall meter's uncertainty, percent.
pub const MAX_WALL_UNCERTAINTY_PCT: f64 = 1.0;

pub(super) struct Ctx<'a> {
    pub root: &'a Path,
    /// Files whose hash matched the manifest.
    pub good: &'a BTreeSet<String>,
    pub opts: &'a CheckOptions,
}

/// Every check of the result at `rel`; the verdict against `--baseline` when asked.
pub(super) fn check_result(ctx: &Ctx, rel: &str, out: &mut Vec<Finding>) -> Option<Feedback> {
    let text = match fsafe::read_text(ctx.root, Path::new(rel), fsafe::MAX_TEXT_BYTES) {
        Ok(t) => t,
        Err(e) => {
            out.push(Finding::fail("schema", rel, e, "ship the result file as `effbench run` wrote it"));
            return None;
        }
    };
    let r = match RunResult::from_json(&text, Path::new(rel)) {
        Ok(r) => r,
        Err(e) => {
            out.push(Finding::fail("schema", rel, e.to_string(), "ship the result file as `effbench run` wrote it"));
            return None;
        }
    };
    out.push(Finding::pass(
        "schema",
        rel,
        format!("{} ({}, {} repeats)", crate::result::SCHEMA, r.workload.id, r.repeats.len()),
    ));
    let dir = rel.rsplit_once('/').map_or("", |(d, _)| d);
    layout(&r, rel, out);
    validity(&r, rel, out);
    repeats(&r, rel, out);
    sources(&r, rel, out);
    windows(&r, rel, out);
    let trace_rel = format!("{dir}/{}.trace.csv", r.workload.id);
    match read_trace(ctx, &trace_rel) {
        Ok(trace) => trace_energy(&r, rel, &trace_rel, &trace, out),
        Err(e) => {
            out.push(Finding::fail("energy", &trace_rel, e, "ship the trace `effbench run` wrote beside the result"))
        }
    }
    wall::wall(ctx, &r, rel, dir, out);
    refs::recipe(ctx, &r, rel, dir, out);
    refs::runner_config(ctx, &r, rel, dir, out);
    refs::runner(ctx, &r, rel, dir, out);
    train::training(ctx, &r, rel, dir, out);
    refs::convergence(ctx, &r, rel, out);
    refs::feedback(ctx, &r, rel, out)
}

/// `<submitter>/<system>/<workload>/run_<k>/<workload>.json`: the directories must name what
/// the file says it is.
fn layout(r: &RunResult, rel: &str, out: &mut Vec<Finding>) {
    let parts: Vec<&str> = rel.split('/').collect();
    let (system, workload) = (r.system.host_class(), &r.workload.id);
    if parts.get(1) != Some(&system.as_str()) || parts.get(2) != Some(&workload.as_str()) {
        let msg = format!(
            "the file is a {workload} result of system {system}, but it is filed under {}",
            parts[..parts.len().min(3)].join("/")
        );
        out.push(Finding::fail("layout", rel, msg, "re-make the bundle with `effbench submit`"));
    }
}

fn validity(r: &RunResult, rel: &str, out: &mut Vec<Finding>) {
    let fix = "re-run the workload; a flag must agree with the numbers it describes";
    let mut bad = 0;
    for (i, rep) in r.repeats.iter().enumerate() {
        if let Some(why) = crate::scope::recorded_disagreement(r, rep) {
            bad += 1;
            let msg = format!("repeat {} (seed {}): {why}", i + 1, rep.seed);
            out.push(Finding::fail(
                "scopes",
                rel,
                msg,
                "re-run the workload; energy per scope is the sum of its domains",
            ));
        }
        let found = crate::validity::numbers(r, rep);
        let msg = match (&found, rep.valid) {
            (Err(why), true) => format!("repeat {} (seed {}) says it is valid, but {why}", i + 1, rep.seed),
            (Ok(()), false) => {
                format!("repeat {} (seed {}) says it is invalid, but its numbers meet every rule", i + 1, rep.seed)
            }
            (Err(why), false) => {
                out.push(Finding::warn(
                    "validity",
                    rel,
                    format!("repeat {} (seed {}) is invalid: {why}", i + 1, rep.seed),
                    "re-run it; invalid repeats are never judged",
                ));
                continue;
            }
            (Ok(()), true) => continue,
        };
        bad += 1;
        out.push(Finding::fail("validity", rel, msg, fix));
    }
    if bad == 0 {
        out.push(Finding::pass(
            "validity",
            rel,
            "every repeat's validity recomputed from its quality, samples, time and energy agrees with its flag",
        ));
    }
}

fn repeats(r: &RunResult, rel: &str, out: &mut Vec<Finding>) {
    let seeds: BTreeSet<u64> = r.repeats.iter().map(|x| x.seed).collect();
    let n = r.repeats.len();
    let valid = r.repeats.iter().filter(|x| crate::validity::is_valid(r, x)).count();
    let min = crate::validity::MIN_REPEATS;
    if valid < min {
        out.push(Finding::fail(
            "repeats",
            rel,
            format!("{valid} of {n} repeats are valid by their numbers; at least {min} are needed"),
            "run more repeats (--repeat) until 5 are valid",
        ));
    }
    if n < min || seeds.len() < n {
        out.push(Finding::fail(
            "repeats",
            rel,
            format!(
                "{n} repeats with {} distinct seeds; at least {min}, each with its own seed, are needed",
                seeds.len()
            ),
            "run with --repeat 5 or more",
        ));
    } else if valid >= min {
        out.push(Finding::pass("repeats", rel, format!("{n} repeats ({valid} valid), distinct seeds")));
    }
    match r.planted_slowdown {
        Some(f) => out.push(Finding::fail(
            "planted",
            rel,
            format!("made with --plant-slowdown {f} (a testing flag): not a genuine measurement"),
            "re-run without --plant-slowdown",
        )),
        None => out.push(Finding::pass("planted", rel, "no planted slowdown")),
    }
}

fn sources(r: &RunResult, rel: &str, out: &mut Vec<Finding>) {
    let mut ok = true;
    for s in &r.energy_sources {
        if s.kind == "estimate" && s.provenance != Provenance::Estimated {
            ok = false;
            out.push(Finding::fail(
                "provenance",
                rel,
                format!("source {} is an estimate but is labelled {}", s.id, s.provenance),
                "an estimate must be labelled estimated; re-run",
            ));
        } else if s.kind == "fake" || s.kind == "fake-counter" {
            out.push(Finding::warn(
                "provenance",
                rel,
                format!("source {} is a fake sensor (testing only), not a measurement", s.id),
                "measure with a real source",
            ));
        }
    }
    for (i, rep) in r.repeats.iter().enumerate() {
        let Some(w) = &rep.wall_meter else { continue };
        match w.uncertainty.max_pct {
            Some(p) if p <= MAX_WALL_UNCERTAINTY_PCT => {}
            other => {
                ok = false;
                let what = other.map_or("unknown".to_string(), |p| format!("{p}%"));
                out.push(Finding::fail("uncertainty", rel, format!("repeat {} (seed {}): the wall meter's worst uncertainty is {what}, above MLPerf Power's {MAX_WALL_UNCERTAINTY_PCT}%", i + 1, rep.seed), "fix the analyzer's ranges (--meter-ranging) and re-run"));
            }
        }
    }
    let unresolved = r.repeats.iter().filter(|x| !x.unresolved_energy.is_empty()).count();
    if unresolved > 0 {
        let msg = format!(
            "{unresolved} of {} repeats have energy the meter could not resolve: never judged, never counted as a smaller number",
            r.repeats.len()
        );
        out.push(Finding::warn(
            "provenance",
            rel,
            msg,
            "raise --sample-hz or fix the sensor the repeat's unresolved_energy names",
        ));
    }
    if ok {
        out.push(Finding::pass(
            "provenance",
            rel,
            "no estimate labelled measured; every wall-meter window within 1% uncertainty",
        ));
    }
}

/// Windows against each source's update period: a fail per repeat for a measured or
/// vendor-reported source; for an estimate (already labelled estimated, and never compared
/// with a measurement) one warning per source.
fn windows(r: &RunResult, rel: &str, out: &mut Vec<Finding>) {
    let mut ok = true;
    let mut short_estimates: std::collections::BTreeMap<&str, (usize, f64, f64)> = Default::default();
    for (i, rep) in r.repeats.iter().enumerate() {
        let window = rep.wall_s.0 * f64::from(rep.passes.unwrap_or(1));
        let unresolved: BTreeSet<&str> = rep.unresolved_energy.iter().map(|u| u.domain.as_str()).collect();
        let judged =
            r.energy_sources.iter().filter(|s| s.update_period_s > 0.0 && !unresolved.contains(s.domain.as_str()));
        for s in judged.filter(|s| window < s.update_period_s) {
            ok = false;
            if s.provenance == Provenance::Estimated {
                let e = short_estimates.entry(s.id.as_str()).or_insert((0, f64::INFINITY, s.update_period_s));
                e.0 += 1;
                e.1 = e.1.min(window);
                continue;
            }
            let msg = format!(
                "repeat {} (seed {}): its window of {window:.3} s is shorter than {}'s update period of {} s",
                i + 1,
                rep.seed,
                s.id,
                s.update_period_s
            );
            out.push(Finding::fail(
                "window",
                rel,
                msg,
                "measure longer windows (--min-window-secs, or a larger workload)",
            ));
        }
    }
    for (id, (n, shortest, period)) in short_estimates {
        let msg = format!(
            "{n} of {} windows (shortest {shortest:.3} s) are shorter than the estimate {id}'s update period of {period} s: its figures there are rougher still",
            r.repeats.len()
        );
        out.push(Finding::warn("window", rel, msg, "measure with a real source, or longer windows"));
    }
    if ok {
        out.push(Finding::pass("window", rel, "every window at least its energy sources' update period"));
    }
}

fn read_trace(ctx: &Ctx, rel: &str) -> Result<Trace, String> {
    if !ctx.good.contains(rel) {
        return Err("no trace whose hash matches the manifest".into());
    }
    let (f, _) = fsafe::open(ctx.root, Path::new(rel), fsafe::MAX_FILE_BYTES)?;
    energy::integrate(BufReader::new(f.take(fsafe::MAX_FILE_BYTES)), MAX_TRACE_ROWS).map_err(|e| format!("{rel}: {e}"))
}

fn trace_energy(r: &RunResult, rel: &str, trace_rel: &str, trace: &Trace, out: &mut Vec<Finding>) {
    let fix = "ship the result and trace as one run wrote them; energy must be what the trace integrates to";
    let before = out.len();
    for l in &trace.split_labels {
        out.push(Finding::fail("energy", trace_rel, format!("segment {l:?} appears twice, apart"), fix));
    }
    let labels: BTreeSet<String> = r.repeats.iter().map(|x| format!("repeat-{}", x.seed)).collect();
    for s in trace.segments.iter().filter(|s| s.label.starts_with("repeat-") && !labels.contains(&s.label)) {
        out.push(Finding::fail(
            "energy",
            trace_rel,
            format!("segment {:?} belongs to no repeat of {rel} (a removed repeat?)", s.label),
            fix,
        ));
    }
    let mut skipped = BTreeSet::new();
    for (i, rep) in r.repeats.iter().enumerate() {
        let who = format!("repeat {} (seed {})", i + 1, rep.seed);
        let Some(seg) = trace.segment(&format!("repeat-{}", rep.seed)) else {
            out.push(Finding::fail(
                "energy",
                rel,
                format!("{who} has no segment repeat-{} in its trace", rep.seed),
                fix,
            ));
            continue;
        };
        let passes = rep.passes.unwrap_or(1);
        let window = rep.wall_s.0 * f64::from(passes);
        if (seg.duration() - window).abs() > 2e-6 * f64::from(passes) + 1e-9 * window {
            out.push(Finding::fail(
                "energy",
                rel,
                format!(
                    "{who}: wall time {:.6} s, but its trace window lasts {:.6} s",
                    rep.wall_s.0,
                    seg.duration() / f64::from(passes)
                ),
                fix,
            ));
        }
        for (d, j) in &rep.energy_j.by_domain {
            let Some(sums) = trace.sums(seg, d) else {
                // A wall meter's energy is re-derived from its own samples (check/wall.rs).
                if !(d == "system" && rep.wall_meter.is_some()) {
                    skipped.insert(d.clone());
                }
                continue;
            };
            if sums.missing > 0 {
                out.push(Finding::fail(
                    "energy",
                    rel,
                    format!("{who}: {d} has {} empty trace rows, yet its energy is given as complete", sums.missing),
                    fix,
                ));
            } else if let Err(e) = energy::matches(j.0, sums, passes) {
                out.push(Finding::fail("energy", rel, format!("{who}: {d} energy {:.6} J, but {e}", j.0), fix));
            }
        }
        consistency(r, rep, &who, rel, out);
    }
    idle(r, rel, trace, out);
    for d in skipped {
        out.push(Finding::warn(
            "energy",
            rel,
            format!("domain {d} is not in the meter's trace (a wall meter or runner telemetry): not re-derived"),
            "nothing to fix; its figure is taken as reported",
        ));
    }
    if out[before..].iter().all(|f| f.status != super::Status::Fail) {
        out.push(Finding::pass("energy", rel, format!("every repeat's window and energy re-integrated from {trace_rel} within its resolution (1e-6 s, 1e-4 W per row)")));
    }
}

/// Total, average power, energy per unit and dynamic energy against the per-domain figures.
fn consistency(r: &RunResult, rep: &crate::result::Repeat, who: &str, rel: &str, out: &mut Vec<Finding>) {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) + 1e-12;
    let e = &rep.energy_j;
    let expect = e.by_domain.get("system").map_or_else(|| e.by_domain.values().map(|j| j.0).sum(), |s| s.0);
    let fix = "re-run; derived figures must follow from the measured ones";
    if !close(e.total.0, expect) {
        out.push(Finding::fail(
            "energy",
            rel,
            format!("{who}: total {} J is not the sum of its domains, {expect} J", e.total.0),
            fix,
        ));
    }
    if !close(rep.avg_power_w.0, e.total.0 / rep.wall_s.0)
        || !close(rep.energy_per_unit_j.0, e.total.0 / rep.units_processed.max(1) as f64)
    {
        out.push(Finding::fail(
            "energy",
            rel,
            format!(
                "{who}: average power or energy per unit does not follow from {} J over {} s and {} units",
                e.total.0, rep.wall_s.0, rep.units_processed
            ),
            fix,
        ));
    }
    for (d, dynamic) in &rep.dynamic_energy_j.by_domain {
        let (Some(total), Some(idle)) = (e.by_domain.get(d), r.idle_power_w.get(d)) else { continue };
        let want = total.0 - idle.0 * rep.wall_s.0;
        if (dynamic.0 - want).abs() > 1e-9 * total.0.abs() + 1e-9 {
            out.push(Finding::fail(
                "energy",
                rel,
                format!("{who}: dynamic {d} energy {} J is not total minus idle power × time, {want} J", dynamic.0),
                fix,
            ));
        }
    }
}

/// Idle power per domain against the trace's idle segment.
fn idle(r: &RunResult, rel: &str, trace: &Trace, out: &mut Vec<Finding>) {
    let derived = energy::idle_power(trace);
    for (d, w) in &r.idle_power_w {
        let Some(&(rect, trap, tol)) = derived.get(d) else { continue };
        let tol = tol + 1e-9 * w.0.abs() + 1e-12;
        if (w.0 - rect).abs() > tol && (w.0 - trap).abs() > tol {
            out.push(Finding::fail("energy", rel, format!("idle {d} power {} W, but the trace's idle window gives {rect:.6} W (counter rule) or {trap:.6} W (trapezoid)", w.0), "ship the result and trace as one run wrote them"));
        }
    }
}
