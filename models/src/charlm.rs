//! Character-level transformer language model: learned token and position embeddings, pre-LN
//! blocks (x + attn(LN(x)); x + mlp(LN(x))) with causal multi-head self-attention and a ReLU
//! MLP of width 4d, a final LayerNorm and a linear head. With vocab 75, context 64, d 64,
//! 4 heads and 2 blocks it has about 114k parameters.
//!
//! The softmax is `candle_nn::ops::softmax` (built from primitives, so it has a backward;
//! `softmax_last_dim` has none) and LayerNorm is `layer_norm_slow` via `layers::LayerNorm`.

use candle_core::{Result, Tensor, D};

use crate::layers::{Embedding, Init, LayerNorm, Linear, Params};
use crate::task::Net;

#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub vocab: usize,
    pub context: usize,
    pub d_model: usize,
    pub heads: usize,
    pub blocks: usize,
}

struct Block {
    ln1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

pub struct CharLm {
    cfg: Config,
    tok: Embedding,
    pos: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    head: Linear,
    /// (context, context): 0 on and below the diagonal, a large negative number above.
    mask: Tensor,
    params: Params,
}

impl CharLm {
    pub fn new(cfg: Config, mut init: Init) -> Result<Self> {
        let d = cfg.d_model;
        let tok = Embedding::new(&mut init, "tok", cfg.vocab, d)?;
        let pos = Embedding::new(&mut init, "pos", cfg.context, d)?;
        let mut blocks = Vec::with_capacity(cfg.blocks);
        for i in 0..cfg.blocks {
            let p = format!("block{i}");
            blocks.push(Block {
                ln1: LayerNorm::new(&mut init, &format!("{p}.ln1"), d)?,
                q: Linear::new(&mut init, &format!("{p}.q"), d, d)?,
                k: Linear::new(&mut init, &format!("{p}.k"), d, d)?,
                v: Linear::new(&mut init, &format!("{p}.v"), d, d)?,
                o: Linear::new(&mut init, &format!("{p}.o"), d, d)?,
                ln2: LayerNorm::new(&mut init, &format!("{p}.ln2"), d)?,
                fc1: Linear::new(&mut init, &format!("{p}.fc1"), d, 4 * d)?,
                fc2: Linear::new(&mut init, &format!("{p}.fc2"), 4 * d, d)?,
            });
        }
        let ln_f = LayerNorm::new(&mut init, "ln_f", d)?;
        let head = Linear::new(&mut init, "head", d, cfg.vocab)?;
        let device = tok.table.device().clone();
        let t = cfg.context;
        let mask: Vec<f32> = (0..t * t).map(|i| if i % t > i / t { -1e9 } else { 0.0 }).collect();
        let mask = Tensor::from_vec(mask, (t, t), &device)?.to_dtype(tok.table.dtype())?;
        let params = init.finish();
        Ok(Self { cfg, tok, pos, blocks, ln_f, head, mask, params })
    }

    pub fn config(&self) -> Config {
        self.cfg
    }

    fn attention(&self, blk: &Block, x: &Tensor) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let h = self.cfg.heads;
        let dh = d / h;
        let split = |y: Tensor| y.reshape((b, t, h, dh))?.transpose(1, 2)?.contiguous();
        let q = split(blk.q.forward(x)?)?;
        let k = split(blk.k.forward(x)?)?;
        let v = split(blk.v.forward(x)?)?;
        let scores = (q.matmul(&k.t()?)? * (1.0 / (dh as f64).sqrt()))?;
        let mask = self.mask.narrow(0, 0, t)?.narrow(1, 0, t)?;
        let att = candle_nn::ops::softmax(&scores.broadcast_add(&mask)?, D::Minus1)?;
        let y = att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
        blk.o.forward(&y)
    }
}

impl Net for CharLm {
    /// x: (batch, t) u32 character ids, t <= context -> (batch, t, vocab) logits
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, t) = x.dims2()?;
        let pos = self.pos.table.narrow(0, 0, t)?;
        let mut h = self.tok.forward(x)?.broadcast_add(&pos)?;
        for blk in &self.blocks {
            h = (&h + self.attention(blk, &blk.ln1.forward(&h)?)?)?;
            let m = blk.fc2.forward(&blk.fc1.forward(&blk.ln2.forward(&h)?)?.relu()?)?;
            h = (h + m)?;
        }
        self.head.forward(&self.ln_f.forward(&h)?)
    }

    fn params(&self) -> &Params {
        &self.params
    }

    /// Per sequence of `context` tokens.
    fn forward_flops_per_sample(&self) -> u64 {
        let (t, d, v) = (self.cfg.context as u64, self.cfg.d_model as u64, self.cfg.vocab as u64);
        let per_block = 4 * (2 * d * d) + 2 * (2 * d * 4 * d) + 2 * (2 * t * d);
        t * (self.cfg.blocks as u64 * per_block + 2 * d * v)
    }
}
