//! The fully connected autoencoder of MLPerf Tiny's anomaly-detection benchmark
//! (640-128x4-8-128x4-640, ReLU), without its batch normalisation. An autoencoder is an MLP
//! whose output has the input's size, so it is built on `Mlp`.

use candle_core::Result;

use crate::layers::Init;
use crate::mlp::Mlp;

pub const INPUT: usize = 640;
pub const SIZES: [usize; 11] = [INPUT, 128, 128, 128, 128, 8, 128, 128, 128, 128, INPUT];

pub fn autoencoder(init: Init) -> Result<Mlp> {
    Mlp::new(&SIZES, init)
}
