//! Renderers: they only format what the run measured.
//!
//! `effbench report` ([`build`] reads, [`stream`] writes one result at a time, the rest
//! renders): [`data`] is what one result shows, each of [`csv`], [`bmf`], [`prom`], [`md`] and
//! [`html`] renders its part of a file as a pure function of it, [`plots`] draws the SVGs,
//! [`output`] names the formats and writes the directory atomically.
//!
//! Every other command's terminal text is here too, each a pure function of what the library
//! returned, so `cli/` only parses, calls the library and prints: [`table`] and [`summary`]
//! (`run`), [`compare`], [`gate`] and [`junit`], [`check`] (a bundle's checker), [`listing`]
//! (`list`, `sensors`, `peak`, `keygen`, `submit`, `export`, `baseline record`, `weights`),
//! [`progress`] (stderr during a run). Nothing here imports `crate::run`: the arrows point
//! from the run to its reports. Snapshots of every renderer: `tests/report_snapshots.rs`.

pub mod bmf;
pub mod build;
pub mod check;
pub mod compare;
pub mod csv;
pub mod data;
pub mod gate;
pub mod html;
pub mod junit;
pub mod listing;
pub mod md;
pub mod output;
pub mod plots;
pub mod progress;
pub mod prom;
pub mod stream;
pub mod summary;
pub mod table;
pub mod trace_reduce;
pub mod trend;

#[cfg(test)]
mod tests;
