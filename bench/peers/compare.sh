#!/usr/bin/env bash
# effbench's training step against JAX's, interleaved: per round and per workload, effbench's
# step (models/examples/peer_steps.rs: `train::step` as `effbench run` calls it) and then the
# same model, batch, optimizer and thread count in JAX (jax_steps.py). Prints, per workload,
# min/median/max over the rounds of each side's median step time and of the ratio
# effbench / JAX taken round by round, for the wall time of one step and for the CPU time of
# all the process's threads per step (on a shared machine the wall time includes waiting
# for a CPU; the CPU time does not, but it counts a peer's spinning threads).
#
# Inference, in the same rounds: effbench's inference pass (models/examples/peer_infer.rs:
# `InferSession::pass` as a measured pass of `effbench run` does it) and then onnxruntime's on
# the same queries, ONNX model (`effbench export`), batch size and thread count
# (ort_infer.py, as runners/reference/runner.py sets up its session); time per query.
#
# Usage: bench/peers/compare.sh [ROUNDS]        (default 3)
# env:   WORKLOADS  space-separated training workloads (default: all five; "" for none)
#        INFER_WORKLOADS  inference workloads (default: all eight; "" for none)
#        EFFBENCH_ORT_VENV  the onnxruntime venv (default runners/reference/.venv,
#                           made by runners/reference/setup.sh)
#        MIN_SECONDS  timed seconds per workload and side per round (default 2)
#        EFFBENCH_PEERS_VENV  the JAX venv of setup.sh (default /tmp/effbench-peers-venv)
#        OUT  where the raw rows go (default results/peers-<UTC time>)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
WORKLOADS=${WORKLOADS-"digits-mlp-train fmnist-mlp-train fmnist-cnn-train charlm-austen-train ae-machine-train"}
INFER_WORKLOADS=${INFER_WORKLOADS-"fmnist-mlp-infer fmnist-mlp-infer-b250 fmnist-cnn-infer fmnist-cnn-infer-b250 charlm-austen-infer charlm-austen-infer-b250 ae-machine-infer ae-machine-infer-b250"}
ORT_VENV=${EFFBENCH_ORT_VENV:-runners/reference/.venv}
MIN_SECONDS=${MIN_SECONDS:-2}
VENV=${EFFBENCH_PEERS_VENV:-/tmp/effbench-peers-venv}
OUT=${OUT:-results/peers-$(date -u +%Y%m%dT%H%M%SZ)}
[ -z "$WORKLOADS" ] || [ -x "$VENV/bin/python" ] || { echo "no JAX venv at $VENV: run bash bench/peers/setup.sh" >&2; exit 2; }
[ -z "$INFER_WORKLOADS" ] || [ -x "$ORT_VENV/bin/python" ] ||
    { echo "no onnxruntime venv at $ORT_VENV: run bash runners/reference/setup.sh" >&2; exit 2; }
mkdir -p "$OUT"
cargo build -q -j1 --release -p effbench-models --example peer_steps --example peer_infer
cargo build -q -j1 --release -p effbench
BIN=target/release/examples/peer_steps
if [ -n "$INFER_WORKLOADS" ]; then
    # shellcheck disable=SC2046 # one --workload per word
    target/release/effbench export $(printf -- '--workload %s ' $INFER_WORKLOADS) --out "$OUT/export" >/dev/null
fi

# The JAX model of each workload, and the thread count the workload runs with.
jax_model() { case $1 in digits-mlp-train) echo digits-mlp ;; fmnist-mlp-train) echo fmnist-mlp ;;
    fmnist-cnn-train) echo fmnist-cnn ;; charlm-austen-train) echo charlm-austen ;; ae-machine-train) echo ae-machine ;;
    *) echo "unknown workload $1" >&2; exit 2 ;; esac; }

for r in $(seq 1 "$ROUNDS"); do
    for w in $WORKLOADS; do
        row=$("$BIN" "$w" --min-seconds "$MIN_SECONDS")
        threads=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["threads"])' "$row")
        echo "{\"round\":$r,\"side\":\"effbench\",\"loadavg\":\"$(cut -d' ' -f1 /proc/loadavg)\",\"row\":$row}" >>"$OUT/rows.jsonl"
        "$VENV/bin/python" bench/peers/jax_steps.py --threads "$threads" --models "$(jax_model "$w")" \
            --min-seconds "$MIN_SECONDS" --json "$OUT/jax-tmp.json" >/dev/null 2>&1
        python3 - "$OUT" "$r" "$w" <<'EOF'
import json, sys
out, r, w = sys.argv[1], int(sys.argv[2]), sys.argv[3]
load = open("/proc/loadavg").read().split()[0]
with open(f"{out}/rows.jsonl", "a") as f:
    for row in json.load(open(f"{out}/jax-tmp.json")):
        f.write(json.dumps({"round": r, "side": "jax", "workload": w, "loadavg": load, "row": row}) + "\n")
EOF
        rm -f "$OUT/jax-tmp.json"
    done
    for w in $INFER_WORKLOADS; do
        row=$(target/release/examples/peer_infer "$w" --min-seconds "$MIN_SECONDS")
        threads=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["threads"])' "$row")
        echo "{\"round\":$r,\"side\":\"effbench\",\"loadavg\":\"$(cut -d' ' -f1 /proc/loadavg)\",\"row\":$row}" >>"$OUT/rows.jsonl"
        row=$("$ORT_VENV/bin/python" bench/peers/ort_infer.py "$OUT/export/$w" --threads "$threads" --min-seconds "$MIN_SECONDS")
        echo "{\"round\":$r,\"side\":\"onnxruntime\",\"loadavg\":\"$(cut -d' ' -f1 /proc/loadavg)\",\"row\":$row}" >>"$OUT/rows.jsonl"
    done
done
python3 bench/peers/ratio_table.py "$OUT/rows.jsonl"
echo "raw rows: $OUT/rows.jsonl"
