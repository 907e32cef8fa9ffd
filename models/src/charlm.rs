//! Character-level transformer language model: learned token and position embeddings, pre-LN
//! blocks (x + attn(LN(x)); x + mlp(LN(x))) with causal multi-head self-attention and a ReLU
//! MLP of width 4d, a final LayerNorm and a linear head. With vocab 75, context 64, d 64,
//! 4 heads and 2 blocks it has about 114k parameters.
//!
//! On the CPU (f32/f64) the layers are the fused ops of `crate::fused`: every Linear as one
//! GEMM onto its bias (the activations are kept as (batch·t, d) rows so that they are rank-2
//! products; the MLP's ReLU in the same op), LayerNorm as `fused::norm` and the attention's
//! core as `fused::attn`. Elsewhere the same functions use candle's ops: `matmul` and
//! `broadcast_add`, `layer_norm_slow`, and `candle_nn::ops::softmax` over the masked scores
//! (built from primitives, so it has a backward; `softmax_last_dim` has none).

use candle_core::{Result, Tensor};

use crate::fused;
use crate::layers::{relu_flops, softmax_flops, Embedding, Flops, Init, LayerNorm, Linear, Params, Pass};
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

    /// Per window of `context` tokens: the embeddings (the position add forward; its gradient
    /// summed over the batch and the token rows' gradients scattered into the table backward),
    /// the blocks, the final LayerNorm and the head.
    pub fn flops(&self) -> Flops {
        let (t, d) = (self.cfg.context, self.cfg.d_model);
        let embed = self.tok.flops_per_row() * t + Flops { forward: (t * d) as u64, backward: (t * d) as u64 };
        let blocks: Flops = self.blocks.iter().map(|b| self.block_flops(b)).sum();
        embed + blocks + (self.ln_f.flops_per_row() + self.head.flops_per_row(true)) * t
    }

    /// One block over t tokens: LayerNorms, projections, attention, the ReLU MLP and two
    /// residual adds (each an add forward and, where the branch rejoins, an add of gradients).
    fn block_flops(&self, blk: &Block) -> Flops {
        let (t, d) = (self.cfg.context, self.cfg.d_model);
        let per_token = blk.ln1.flops_per_row()
            + [&blk.q, &blk.k, &blk.v, &blk.o].into_iter().map(|l| l.flops_per_row(true)).sum::<Flops>()
            + blk.ln2.flops_per_row()
            + blk.fc1.flops_per_row(true)
            + relu_flops(blk.fc1.bias.elem_count())
            + blk.fc2.flops_per_row(true)
            + Flops { forward: 2 * d as u64, backward: 2 * d as u64 };
        per_token * t + attention_flops(t, d, self.cfg.heads)
    }

    /// x: (b·t, d) rows of `b` windows of `t` tokens -> (b·t, d).
    fn attention(&self, pass: Pass, blk: &Block, x: &Tensor, b: usize, t: usize) -> Result<Tensor> {
        let d = self.cfg.d_model;
        let proj = |l: &Linear| linear(pass, x, l, false)?.reshape((b, t, d));
        let y =
            fused::attn::causal_attention(&proj(&blk.q)?, &proj(&blk.k)?, &proj(&blk.v)?, self.cfg.heads, &self.mask)?;
        linear(pass, &y.reshape((b * t, d))?, &blk.o, false)
    }

    /// x: (batch, t) u32 character ids, t <= context -> (batch, t, vocab) logits.
    fn run(&self, pass: Pass, x: &Tensor) -> Result<Tensor> {
        let (b, t) = x.dims2()?;
        let (d, v) = (self.cfg.d_model, self.cfg.vocab);
        let pos = pass.param(&self.pos.table).narrow(0, 0, t)?;
        let mut h = self.tok.forward_in(pass, x)?.broadcast_add(&pos)?.reshape((b * t, d))?;
        for blk in &self.blocks {
            h = (&h + self.attention(pass, blk, &blk.ln1.forward_in(pass, &h)?, b, t)?)?;
            let m = linear(pass, &linear(pass, &blk.ln2.forward_in(pass, &h)?, &blk.fc1, true)?, &blk.fc2, false)?;
            h = (h + m)?;
        }
        linear(pass, &self.ln_f.forward_in(pass, &h)?, &self.head, false)?.reshape((b, t, v))
    }
}

/// `x W + b` (ReLU when `relu`) of (rows, in) x: one fused op on the CPU.
fn linear(pass: Pass, x: &Tensor, l: &Linear, relu: bool) -> Result<Tensor> {
    fused::linear(x, &pass.param(&l.weight), &pass.param(&l.bias), relu)
}

impl Net for CharLm {
    /// x: (batch, t) u32 character ids, t <= context -> (batch, t, vocab) logits
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.run(Pass::Train, x)
    }

    /// `forward` on detached parameters: no graph, and the attention keeps no probabilities.
    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        self.run(Pass::Infer, x)
    }

    fn params(&self) -> &Params {
        &self.params
    }

    /// Per sequence of `context` tokens.
    fn forward_flops_per_sample(&self) -> u64 {
        self.flops().forward
    }

    fn train_flops_per_sample(&self) -> u64 {
        self.flops().train()
    }
}

/// Causal self-attention's core over t tokens, all heads (the full t x t scores are computed,
/// as candle and XLA both do): QKᵀ and AV, t·t·d multiply-adds each forward and two products
/// of that size each backward; the 1/sqrt(d_head) scale and the mask add (t·t per head; only
/// the scale has a gradient); the softmax of t·heads rows of t.
fn attention_flops(t: usize, d: usize, heads: usize) -> Flops {
    let mm = 2 * (t * t * d) as u64;
    let scores = (t * t * heads) as u64;
    let products = Flops { forward: 2 * mm, backward: 4 * mm };
    products + Flops { forward: 2 * scores, backward: scores } + softmax_flops(t) * (t * heads)
}
