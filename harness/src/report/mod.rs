//! Renderers: they only format what the run measured.

pub mod progress;
pub mod table;
