//! Runner Protocol v1 messages (docs/runner-protocol.md is the normative text). One JSON object
//! per line on the runner's stdin (requests) and stdout (replies). Every request has an `id`;
//! every reply names the request it answers in `re`. Unknown fields are ignored both ways, so
//! either side may add optional fields within v1.

use serde::{Deserialize, Serialize};

/// The protocol major version this effbench speaks.
pub const PROTOCOL: u32 = 1;

/// A request: `{"v":1,"id":N,"op":...,<fields>}`.
#[derive(Debug, Serialize)]
pub struct Request<'a> {
    pub v: u32,
    pub id: u64,
    #[serde(flatten)]
    pub op: &'a Op,
}

/// A tensor in a file: raw little-endian values, row-major, no header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorFile {
    pub path: String,
    /// `float32` or `int64` (numpy names).
    pub dtype: String,
    pub shape: Vec<usize>,
}

/// A graph input or output as the model declares it; `null` in `shape` is the free batch dim.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IoDecl {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<Option<usize>>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelRef {
    pub path: String,
    /// `onnx` (effbench's export); `effbench-reference-outputs` only in effbench's own tests.
    pub format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opset: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Hello {
        effbench: String,
        protocol: Vec<u32>,
    },
    Load {
        workload: String,
        model: ModelRef,
        input: IoDecl,
        output: IoDecl,
        precision: String,
        batch: usize,
        /// The CPU threads effbench's own backend uses for this workload: a hint for runners
        /// that compute on the host CPU.
        threads: usize,
    },
    LoadSamples {
        input: TensorFile,
    },
    /// Run samples `start..start + rows` in batches of `batch` rows, discard the answers.
    Warmup {
        start: usize,
        rows: usize,
        batch: usize,
    },
    Mark {
        name: String,
        phase: String,
    },
    /// Run samples `start..start + rows` in batches of `batch` rows (the last may be smaller)
    /// and write every row's output, in sample order, to `output`.
    Issue {
        start: usize,
        rows: usize,
        batch: usize,
        output: String,
    },
    Flush,
    Stats,
    Unload,
    Shutdown,
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Hello { .. } => "hello",
            Op::Load { .. } => "load",
            Op::LoadSamples { .. } => "load_samples",
            Op::Warmup { .. } => "warmup",
            Op::Mark { .. } => "mark",
            Op::Issue { .. } => "issue",
            Op::Flush => "flush",
            Op::Stats => "stats",
            Op::Unload => "unload",
            Op::Shutdown => "shutdown",
        }
    }
}

/// What every reply has: `{"v":1,"re":N,"ok":true|false, ...}`.
#[derive(Debug, Deserialize)]
pub struct ReplyHead {
    pub v: u32,
    pub re: u64,
    pub ok: bool,
    #[serde(default)]
    pub error: Option<ReplyError>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ReplyError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub msg: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct DeviceDecl {
    pub name: String,
    /// The energy domain its power belongs to, e.g. `npu:0`; default `accel:0`.
    #[serde(default)]
    pub domain: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct HelloReply {
    pub protocol: u32,
    pub runner: String,
    pub vendor: String,
    pub device: DeviceDecl,
    #[serde(default)]
    pub driver: Option<String>,
    pub precisions: Vec<String>,
    /// Any of `busy_s`, `h2d_bytes`, `d2h_bytes`, `power_w`.
    #[serde(default)]
    pub telemetry: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct LoadReply {
    /// The precision the runner computes in (what the correctness check applies to).
    pub precision: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct MarkReply {
    /// The runner's CLOCK_MONOTONIC when the queue had drained, in ns.
    pub t_mono_ns: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct IssueReply {
    /// The completion: the output of every row issued, in sample order.
    pub output: TensorFile,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
pub struct PowerSample {
    pub t_mono_ns: u64,
    pub power_w: f64,
}

/// Cumulative counters since `load`, plus power samples taken since the previous `stats`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct StatsReply {
    #[serde(default)]
    pub busy_s: Option<f64>,
    #[serde(default)]
    pub h2d_bytes: Option<u64>,
    #[serde(default)]
    pub d2h_bytes: Option<u64>,
    #[serde(default)]
    pub power: Vec<PowerSample>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_flat_json_with_op_and_id() {
        let op = Op::Mark { name: "repeat-0".into(), phase: "begin".into() };
        let line = serde_json::to_string(&Request { v: PROTOCOL, id: 5, op: &op }).unwrap();
        assert_eq!(line, r#"{"v":1,"id":5,"op":"mark","name":"repeat-0","phase":"begin"}"#);
        let line = serde_json::to_string(&Request { v: 1, id: 9, op: &Op::Flush }).unwrap();
        assert_eq!(line, r#"{"v":1,"id":9,"op":"flush"}"#);
        let q = Op::Issue { start: 0, rows: 4, batch: 2, output: "/o".into() };
        let line = serde_json::to_string(&Request { v: 1, id: 1, op: &q }).unwrap();
        assert_eq!(line, r#"{"v":1,"id":1,"op":"issue","start":0,"rows":4,"batch":2,"output":"/o"}"#);
    }

    #[test]
    fn replies_ignore_unknown_fields() {
        let h: ReplyHead = serde_json::from_str(r#"{"v":1,"re":2,"ok":true,"extra":[1]}"#).unwrap();
        assert_eq!((h.v, h.re, h.ok), (1, 2, true));
        let s: StatsReply =
            serde_json::from_str(r#"{"busy_s":0.5,"power":[{"t_mono_ns":1,"power_w":3.5}],"x":1}"#).unwrap();
        assert_eq!(s.busy_s, Some(0.5));
        assert_eq!(s.power, vec![PowerSample { t_mono_ns: 1, power_w: 3.5 }]);
    }
}
