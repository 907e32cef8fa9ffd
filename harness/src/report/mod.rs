//! Renderers: they only format what the run measured.

pub mod compare;
pub mod gate;
pub mod junit;
pub mod progress;
pub mod table;
