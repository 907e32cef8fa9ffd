//! A wall meter's energy re-derived from its own samples (`<workload>.wall.csv`, written by
//! run/wall.rs: `mark,time,watts,volts,amps,pf,channel_watts`, each window's samples under its
//! mark). The analyzer's energy for a window is the mean of its samples × the window's length
//! (`sensor/ptd/window.rs`), divided by the repeat's passes; the watts are written in Rust's
//! shortest round-trip form, so the mean is re-derived exactly (1e-9 relative for summation).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::result::Ctx;
use super::Finding;
use crate::bundle::fsafe;
use crate::result::RunResult;

/// The most sample lines a wall CSV may have (1 Hz for 10 years is far beyond a run).
const MAX_WALL_ROWS: usize = 10_000_000;

/// Sum and count of the watts per mark.
fn samples(ctx: &Ctx, rel: &str) -> Result<BTreeMap<String, (f64, u64)>, String> {
    if !ctx.good.contains(rel) {
        return Err("no wall meter samples whose hash matches the manifest".into());
    }
    let (f, _) = fsafe::open(ctx.root, Path::new(rel), fsafe::MAX_FILE_BYTES)?;
    let mut per_mark = BTreeMap::new();
    for (n, line) in BufReader::new(f.take(fsafe::MAX_FILE_BYTES)).lines().enumerate() {
        let line = line.map_err(|e| format!("{rel}: {e}"))?;
        if n == 0 || line.is_empty() {
            continue;
        }
        if n > MAX_WALL_ROWS {
            return Err(format!("{rel} has more than {MAX_WALL_ROWS} lines"));
        }
        let mut f = line.split(',');
        let (Some(mark), Some(_), Some(w)) = (f.next(), f.next(), f.next()) else {
            return Err(format!("{rel}: line {} is not `mark,time,watts,...`", n + 1));
        };
        let w: f64 = w.parse().map_err(|_| format!("{rel}: line {}: watts {w:?} is not a number", n + 1))?;
        let e = per_mark.entry(mark.to_string()).or_insert((0.0, 0));
        e.0 += w;
        e.1 += 1;
    }
    Ok(per_mark)
}

pub(super) fn wall(ctx: &Ctx, r: &RunResult, rel: &str, dir: &str, out: &mut Vec<Finding>) {
    if !r.repeats.iter().any(|x| x.wall_meter.is_some()) {
        return;
    }
    let wrel = format!("{dir}/{}.wall.csv", r.workload.id);
    let fix = "ship the wall meter's samples as `effbench run` wrote them; the energy must follow from them";
    let per_mark = match samples(ctx, &wrel) {
        Ok(m) => m,
        Err(e) => return out.push(Finding::fail("wall", &wrel, e, fix)),
    };
    let before = out.len();
    for (i, rep) in r.repeats.iter().enumerate() {
        let (Some(w), Some(claimed)) = (&rep.wall_meter, rep.energy_j.by_domain.get("system")) else { continue };
        let who = format!("repeat {} (seed {})", i + 1, rep.seed);
        let Some(&(sum, n)) = per_mark.get(&w.mark).filter(|(_, n)| *n > 0) else {
            out.push(Finding::fail("wall", rel, format!("{who}: no samples under mark {:?} in {wrel}", w.mark), fix));
            continue;
        };
        let passes = f64::from(w.passes.max(1));
        let derived = sum / n as f64 * w.window_s.0 / passes;
        if n != w.samples || (claimed.0 - derived).abs() > 1e-9 * derived.abs() + 1e-9 {
            out.push(Finding::fail(
                "wall",
                rel,
                format!(
                    "{who}: wall energy {} J from {} samples, but {wrel} has {n} samples under {:?} giving {derived} J",
                    claimed.0, w.samples, w.mark
                ),
                fix,
            ));
        }
    }
    if out.len() == before {
        out.push(Finding::pass("wall", rel, format!("every wall-meter energy re-derived from {wrel}")));
    }
}
