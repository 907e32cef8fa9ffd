//! Builds an ONNX graph node by node: each helper adds the nodes of one layer and returns the
//! name of its output, so an exporter reads like the model's `forward`.

use std::collections::HashMap;

use candle_core::Tensor;
use sha2::{Digest, Sha256};

use super::proto::{Attribute, Graph, Node, TensorP};
use crate::layers::Params;
use crate::{ModelError, Result};

pub struct Builder<'a> {
    params: HashMap<&'a str, &'a Tensor>,
    pub graph: Graph,
    next: usize,
    /// The parameters' names in the model's order.
    order: Vec<&'a str>,
}

impl<'a> Builder<'a> {
    pub fn new(params: &'a Params, name: &str) -> Builder<'a> {
        let order: Vec<&str> = params.vars.iter().map(|(n, _)| n.as_str()).collect();
        let params = params.vars.iter().map(|(n, v)| (n.as_str(), v.as_tensor())).collect();
        Builder { params, graph: Graph { name: name.into(), ..Default::default() }, next: 0, order }
    }

    /// sha256 of every parameter's f32 values (little-endian), in the model's parameter order.
    pub fn weights_sha256(&self) -> Result<String> {
        let mut h = Sha256::new();
        for name in &self.order {
            for v in self.values(name)? {
                h.update(v.to_le_bytes());
            }
        }
        Ok(format!("{:x}", h.finalize()))
    }

    fn values(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.tensor(name)?;
        Ok(t.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?)
    }

    fn tensor(&self, name: &str) -> Result<&'a Tensor> {
        self.params
            .get(name)
            .copied()
            .ok_or_else(|| ModelError::Unsupported(format!("ONNX export: the model has no parameter {name:?}")))
    }

    /// The dims of parameter `name`.
    pub fn dims(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.tensor(name)?.dims().to_vec())
    }

    /// Parameter `name` as an initializer of the same name and shape.
    pub fn param(&mut self, name: &str) -> Result<String> {
        let dims = self.dims(name)?;
        let values = self.values(name)?;
        self.graph.initializers.push(TensorP::f32(name, &dims, &values));
        Ok(name.to_string())
    }

    pub fn const_f32(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        self.graph.initializers.push(TensorP::f32(name, dims, values));
        name.to_string()
    }

    pub fn const_i64(&mut self, name: &str, dims: &[usize], values: &[i64]) -> String {
        self.graph.initializers.push(TensorP::i64(name, dims, values));
        name.to_string()
    }

    /// Add a node with one output, named after the op and a counter.
    pub fn op(&mut self, op: &str, inputs: &[&str], attributes: Vec<Attribute>) -> String {
        self.next += 1;
        let name = format!("{op}_{}", self.next);
        let out = format!("{name}_out");
        self.graph.nodes.push(Node {
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![out.clone()],
            name,
            op_type: op.to_string(),
            attributes,
        });
        out
    }

    /// Rename the last node's output (the graph output must carry the declared name).
    pub fn rename_last_output(&mut self, to: &str) -> Result<()> {
        let node =
            self.graph.nodes.last_mut().ok_or_else(|| ModelError::Unsupported("ONNX export: empty graph".into()))?;
        node.outputs[0] = to.to_string();
        Ok(())
    }

    /// `layers::Linear`: y = x W + b with W stored (in, out). On a matrix this is one Gemm
    /// (A B + C, no transposes); on a higher-rank input a MatMul and an Add.
    pub fn linear(&mut self, x: &str, prefix: &str, rank: usize) -> Result<String> {
        let w = self.param(&format!("{prefix}.weight"))?;
        let b = self.param(&format!("{prefix}.bias"))?;
        Ok(if rank == 2 {
            self.op("Gemm", &[x, &w, &b], vec![])
        } else {
            let y = self.op("MatMul", &[x, &w], vec![]);
            self.op("Add", &[&y, &b], vec![])
        })
    }

    pub fn relu(&mut self, x: &str) -> String {
        self.op("Relu", &[x], vec![])
    }

    /// `layers::LayerNorm` over the last axis, op for op as candle's `layer_norm_slow`:
    /// mean, centre, mean of squares, divide by sqrt(var + eps), scale, shift.
    pub fn layer_norm(&mut self, x: &str, prefix: &str, eps: f32) -> Result<String> {
        let gain = self.param(&format!("{prefix}.weight"))?;
        let shift = self.param(&format!("{prefix}.bias"))?;
        let eps = self.const_f32(&format!("{prefix}.eps"), &[], &[eps]);
        let last = || vec![Attribute::ints("axes", &[-1]), Attribute::int("keepdims", 1)];
        let mean = self.op("ReduceMean", &[x], last());
        let xc = self.op("Sub", &[x, &mean], vec![]);
        let sq = self.op("Mul", &[&xc, &xc], vec![]);
        let var = self.op("ReduceMean", &[&sq], last());
        let var_eps = self.op("Add", &[&var, &eps], vec![]);
        let sd = self.op("Sqrt", &[&var_eps], vec![]);
        let xn = self.op("Div", &[&xc, &sd], vec![]);
        let scaled = self.op("Mul", &[&xn, &gain], vec![]);
        Ok(self.op("Add", &[&scaled, &shift], vec![]))
    }
}
