#!/usr/bin/env bash
# The cost of training through Runner Protocol v1.1 (issue 15): the JAX reference runner's
# samples/s through effbench against the same JAX code run bare, on the same work.
#
#   bash bench/runner-overhead.sh [ROUNDS] [REPEATS]      (defaults 3 and 5)
#
# Bare is `runner.py --bench W --data DIR --target Q`: the runner's own training loop with rows
# gathered from memory and its evaluations in-process, on the real Fashion-MNIST as effbench
# serves it, stopping at the first evaluation that meets the target. Through effbench is
# `effbench run --backend external:runners/jax/runner.toml`: every batch fetched by index,
# every evaluation's outputs scored by effbench. Repeat r has seed r on both sides, so a pair
# does the same batches and evaluations and reaches the target at the same sample count (the
# summary says when it did not). Rounds alternate which side goes first. Needs a release
# build (`cargo build --release -p effbench`) and `bash runners/setup.sh`; run it on a quiet
# machine. Prints one line per pair and the medians; the raw files stay in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
REPEATS=${2:-5}
W=${WORKLOAD:-fmnist-mlp-train}
DATA=${DATA:-models/data/fashion-mnist-subset}
OUT=${OUT:-$(mktemp -d /tmp/effbench-runner-overhead.XXXXXX)}
BIN=target/release/effbench
PY=runners/jax/.venv/bin/python
[ -x "$BIN" ] || { echo "no $BIN: run cargo build --release -p effbench" >&2; exit 2; }
[ -x "$PY" ] || { echo "no $PY: run bash runners/setup.sh" >&2; exit 2; }
TARGET=$("$BIN" list --json 2>/dev/null | "$PY" -c "import json,sys; print(next(w['quality_target'] for w in json.load(sys.stdin) if w['id']=='$W'))")
mkdir -p "$OUT"
echo "workload $W, target $TARGET, $ROUNDS rounds of $REPEATS + $REPEATS repeats; raw files in $OUT" >&2

bare() {
  (cd runners/jax && .venv/bin/python runner.py --bench "$W" --data "../../$DATA" --target "$TARGET" \
     --samples 1000000 --repeats "$REPEATS") > "$OUT/bare-$1.jsonl"
}
through() {
  EFFBENCH_STORE=none "$BIN" run --backend external:runners/jax/runner.toml --workload "$W" \
    --repeat "$REPEATS" --idle-secs 0 --peak-secs 0 --data-dir "$DATA" --out "$OUT/through-$1" > "$OUT/through-$1.txt" 2>&1
}
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r: $(cut -d' ' -f1-3 /proc/loadavg) (load 1/5/15 min)" >&2
  if [ $((r % 2)) -eq 1 ]; then bare "$r"; through "$r"; else through "$r"; bare "$r"; fi
done
"$PY" bench/runner_overhead.py "$OUT" "$W"
