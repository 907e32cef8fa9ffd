//! Renderers: they only format what the run measured.
//!
//! `effbench report` ([`build`] loads, the rest renders): [`data`] is what it shows, each of
//! [`csv`], [`bmf`], [`prom`], [`md`] and [`html`] is a pure function of it, [`plots`] draws
//! the SVGs, [`output`] names the formats and writes the directory atomically.

pub mod bmf;
pub mod check;
pub mod build;
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
pub mod summary;
pub mod prom;
pub mod table;
pub mod trace_reduce;

#[cfg(test)]
mod tests;
