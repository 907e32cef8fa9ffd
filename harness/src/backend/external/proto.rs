//! Runner Protocol v1 messages (docs/runner-protocol.md is the normative text). One JSON object
//! per line on the runner's stdin (requests) and stdout (replies). Every request has an `id`;
//! every reply names the request it answers in `re`. Unknown fields are ignored both ways, so
//! either side may add optional fields within v1.

use serde::{Deserialize, Serialize};

/// The protocol major version this effbench speaks.
pub const PROTOCOL: u32 = 1;
/// The minor version: 1 adds training (`train_load`, `train`, `fetch`, `evaluate`).
pub const MINOR: u32 = 1;

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
        minor: u32,
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
    /// v1.1: a training workload (unmeasured; the startup watchdog).
    TrainLoad(Box<TrainLoad>),
    /// v1.1: one training repeat; the runner fetches batches until effbench says `done`.
    Train {
        repeat: u64,
        seed: u64,
    },
    /// v1.1: the runner's model on the held-out inputs, written to `output`.
    Evaluate {
        samples: u64,
        output: String,
    },
}

/// A tensor with a free first dimension (`null`), without a graph name.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decl {
    pub dtype: String,
    pub shape: Vec<Option<usize>>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metric {
    pub name: String,
    pub higher_is_better: bool,
    pub target: f64,
}

/// `train_load`: what the runner trains and how effbench will judge it (never the labels of
/// the held-out set).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainLoad {
    pub workload: String,
    /// The reference architecture (`arch`, `description`, `layers`, `params`).
    pub model: serde_json::Value,
    pub input: Decl,
    /// Absent for the autoencoder (its target is its input).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Decl>,
    pub output: Decl,
    pub metric: Metric,
    /// Valid indices: `0..train_samples`.
    pub train_samples: usize,
    pub eval: TensorFile,
    pub every_samples: u64,
    pub sample_cap: u64,
    pub max_fetch: usize,
    pub recipe: serde_json::Value,
    pub seed: u64,
    pub threads: usize,
    /// How batches reach the runner ([`BatchFiles::wire`]); absent: a fresh file pair per fetch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_files: Option<&'static str>,
}

/// How a training repeat's batches reach the runner, chosen from the `features` of its `hello`
/// (docs/runner-protocol.md, "hello (extended)").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchFiles {
    /// v1.1's default: a fresh file pair per fetch, each file the batch's exact size.
    #[default]
    Fresh,
    /// `reuse_batches`: one file per slot per repeat, rewritten in place and cut to the batch's
    /// size at every fetch.
    Reuse,
    /// `mapped_batches`: one file per slot per repeat, sized once for `max_fetch` rows and
    /// never resized, rewritten in place from offset 0; the reply's shape says how many rows
    /// are the batch. A runner can map each file once per repeat and read batches in place.
    Mapped,
    /// `prefetch_batches`: as [`BatchFiles::Mapped`], but two file pairs used in turn (the
    /// repeat's answered batch k goes to pair k mod 2), so a runner may ask for its next batch
    /// before it is done with the current one: effbench writes the next batch while the runner
    /// trains. A batch stays as written until the runner sends the fetch after the next.
    Prefetch,
}

impl BatchFiles {
    /// The `hello` features that ask for [`BatchFiles::Reuse`], [`BatchFiles::Mapped`] and
    /// [`BatchFiles::Prefetch`].
    pub const REUSE: &'static str = "reuse_batches";
    pub const MAPPED: &'static str = "mapped_batches";
    pub const PREFETCH: &'static str = "prefetch_batches";

    /// The runner's choice when it lists several: `prefetch_batches`, then `mapped_batches`,
    /// then `reuse_batches`.
    pub fn from_features(features: &[String]) -> BatchFiles {
        let has = |f: &str| features.iter().any(|x| x == f);
        if has(Self::PREFETCH) {
            BatchFiles::Prefetch
        } else if has(Self::MAPPED) {
            BatchFiles::Mapped
        } else if has(Self::REUSE) {
            BatchFiles::Reuse
        } else {
            BatchFiles::Fresh
        }
    }

    /// `train_load`'s `batch_files`.
    pub fn wire(self) -> Option<&'static str> {
        match self {
            BatchFiles::Fresh => None,
            BatchFiles::Reuse => Some("reuse"),
            BatchFiles::Mapped => Some("mapped"),
            BatchFiles::Prefetch => Some("prefetch"),
        }
    }

    /// The file pairs a repeat writes in turn (none: a fresh pair per fetch).
    pub fn slots(self) -> usize {
        match self {
            BatchFiles::Fresh => 0,
            BatchFiles::Reuse | BatchFiles::Mapped => 1,
            BatchFiles::Prefetch => 2,
        }
    }

    /// Whether each file is sized once for `max_fetch` rows and never resized (else it is cut
    /// to each batch).
    pub fn sized_once(self) -> bool {
        matches!(self, BatchFiles::Mapped | BatchFiles::Prefetch)
    }
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
            Op::TrainLoad(_) => "train_load",
            Op::Train { .. } => "train",
            Op::Evaluate { .. } => "evaluate",
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
    /// v1.1: the minor version the runner speaks (absent: 0).
    #[serde(default)]
    pub minor: u32,
    /// v1.1: the ops it supports; absent means `["infer"]` (a v1 runner).
    #[serde(default)]
    pub ops: Option<Vec<String>>,
    /// v1.1: optional behaviours the runner asks for; effbench knows those of [`BatchFiles`]
    /// and ignores the rest.
    #[serde(default)]
    pub features: Vec<String>,
}

impl HelloReply {
    /// Whether the runner declared `op` (`infer`, `train`).
    pub fn supports(&self, op: &str) -> bool {
        match &self.ops {
            Some(ops) => ops.iter().any(|o| o == op),
            None => op == "infer",
        }
    }
}

/// The reply to `train_load`.
#[derive(Clone, Debug, Deserialize)]
pub struct TrainLoadReply {
    /// `closed` (the reference architecture, the default) or `open`.
    #[serde(default)]
    pub division: Option<String>,
    /// The runner's trainable parameter count.
    #[serde(default)]
    pub params: Option<u64>,
    #[serde(default)]
    pub precision: Option<String>,
}

/// The reply to `evaluate`.
#[derive(Clone, Debug, Deserialize)]
pub struct EvaluateReply {
    pub output: TensorFile,
}

/// The reply to `train`: the runner's own counters. Claims (`reached`, `samples`) are never
/// used for the result; one that contradicts effbench's count is recorded as a warning.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct TrainReply {
    #[serde(default)]
    pub steps: Option<u64>,
    #[serde(default)]
    pub busy_s: Option<f64>,
    #[serde(default)]
    pub reached: Option<bool>,
    #[serde(default)]
    pub samples: Option<u64>,
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
    fn v1_1_requests_and_hello_ops() {
        let op = Op::Evaluate { samples: 2048, output: "/w/outputs/e8.bin".into() };
        let line = serde_json::to_string(&Request { v: 1, id: 8, op: &op }).unwrap();
        assert_eq!(line, r#"{"v":1,"id":8,"op":"evaluate","samples":2048,"output":"/w/outputs/e8.bin"}"#);
        let line = serde_json::to_string(&Request { v: 1, id: 7, op: &Op::Train { repeat: 0, seed: 0 } }).unwrap();
        assert_eq!(line, r#"{"v":1,"id":7,"op":"train","repeat":0,"seed":0}"#);
        let h = r#"{"protocol":1,"runner":"r","vendor":"v","device":{"name":"d"},"precisions":["f32"]}"#;
        let v1: HelloReply = serde_json::from_str(h).unwrap();
        assert!(v1.supports("infer") && !v1.supports("train"));
        let h11 = h.replace(r#""precisions""#, r#""minor":1,"ops":["train"],"precisions""#);
        let v11: HelloReply = serde_json::from_str(&h11).unwrap();
        assert!(v11.supports("train") && !v11.supports("infer") && v11.minor == 1);
        assert!(v11.features.is_empty());
        let f: HelloReply =
            serde_json::from_str(&h11.replace(r#""ops""#, r#""features":["reuse_batches","x"],"ops""#)).unwrap();
        assert_eq!(f.features, ["reuse_batches", "x"]);
        assert_eq!(BatchFiles::from_features(&f.features), BatchFiles::Reuse);
        let both = ["x", "reuse_batches", "mapped_batches"].map(String::from);
        assert_eq!(BatchFiles::from_features(&both), BatchFiles::Mapped);
        let all = ["prefetch_batches", "reuse_batches", "mapped_batches"].map(String::from);
        assert_eq!(BatchFiles::from_features(&all), BatchFiles::Prefetch);
        assert_eq!(BatchFiles::from_features(&[]), BatchFiles::Fresh);
        let modes = [BatchFiles::Fresh, BatchFiles::Reuse, BatchFiles::Mapped, BatchFiles::Prefetch];
        let wire: Vec<_> = modes.map(BatchFiles::wire).into();
        assert_eq!(wire, [None, Some("reuse"), Some("mapped"), Some("prefetch")]);
        assert_eq!(modes.map(BatchFiles::slots), [0, 1, 1, 2]);
        assert_eq!(modes.map(BatchFiles::sized_once), [false, false, true, true]);
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
