use clap::Args;
use effbench_models::{Kind, WORKLOADS};

use super::CliResult;
use crate::error::Exit;

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn main(args: ListArgs) -> CliResult {
    if args.json {
        let items: Vec<serde_json::Value> = WORKLOADS
            .iter()
            .map(|w| {
                serde_json::json!({
                    "id": w.id,
                    "kind": w.kind,
                    "model": w.model,
                    "dataset": w.dataset,
                    "quality_metric": w.quality_metric,
                    "quality_target": w.quality_target,
                    "higher_is_better": w.higher_is_better,
                    "unit": w.unit,
                    "recipes": w.recipe_names(),
                    "batch_size": (w.kind == Kind::Infer).then_some(w.batch),
                    "threads": w.threads,
                    "suite": if w.quick { "quick" } else { "full" },
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(Exit::Ok);
    }
    println!("{:<26} {:<6} {:<44} {:<7} recipes / batch", "id", "kind", "quality target", "unit");
    for w in WORKLOADS {
        let cmp = if w.higher_is_better { ">=" } else { "<=" };
        let target = format!("{} {cmp} {}", short_metric(w.quality_metric), w.quality_target);
        let extra = match w.kind {
            Kind::Train => w.recipe_names().join(", "),
            Kind::Infer => format!("batch {}", w.batch),
        };
        println!("{:<26} {:<6} {:<44} {:<7} {extra}", w.id, w.kind, target, w.unit);
    }
    println!("\nmodels and data: `effbench list --json`; quick suite: {}", quick_ids().join(", "));
    Ok(Exit::Ok)
}

fn short_metric(m: &str) -> &str {
    m.split(" (").next().unwrap_or(m)
}

fn quick_ids() -> Vec<&'static str> {
    WORKLOADS.iter().filter(|w| w.quick).map(|w| w.id).collect()
}
