#!/usr/bin/env bash
# Calibrates `effbench gate` against this machine's noise (README.md, "Calibration of the gate").
#
# For i in 1..PAIRS it makes three independent runs of one workload, interleaved so that slow
# drift of the machine hits all three alike:
#   A_i  the workload as it is,
#   B_i  the same again (an A/A comparison: any regression the gate reports is a false alarm),
#   S_i  the same with a planted slowdown (`run --plant-slowdown`, a hidden testing flag that
#        busy-waits that fraction of each repeat's own work time inside its window; recorded
#        in the result as `planted_slowdown`),
# and gates B_i and S_i against A_i at the default threshold and repeats. It prints the
# false-alarm rate (A/A comparisons failing the gate) and the detection rate (slowed runs
# failing it), per metric and overall. Runs already in OUT are reused, so an interrupted
# calibration resumes and the gate can be re-evaluated on the same runs.
#
# Usage: bench/calibrate-gate.sh [OUT_DIR]
#   env: WORKLOAD (fmnist-mlp-train), PAIRS (20), SLOWDOWN (0.2), REPEAT (5),
#        EFFBENCH (target/release/effbench), RUN_ARGS (extra `run` flags),
#        GATE_ARGS (extra `gate` flags)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/calibrate-gate}
WORKLOAD=${WORKLOAD:-fmnist-mlp-train}
PAIRS=${PAIRS:-20}
SLOWDOWN=${SLOWDOWN:-0.2}
REPEAT=${REPEAT:-5}
EFFBENCH=${EFFBENCH:-target/release/effbench}
DATA=models/data/fashion-mnist-subset
RUN_ARGS=${RUN_ARGS:-}
GATE_ARGS=${GATE_ARGS:-}
[ -x "$EFFBENCH" ] || { echo "build it first: cargo build --release -p effbench" >&2; exit 2; }

mkdir -p "$OUT/$WORKLOAD"
run() { # run NAME [extra flags]
  local name=$1; shift
  local dir="$OUT/$WORKLOAD/$name"
  [ -f "$dir/$WORKLOAD.json" ] && [ -f "$dir/.done" ] && return 0
  rm -rf "$dir"
  # exit 4 (a repeat missed the quality target) still leaves a result for the gate to judge
  "$EFFBENCH" run --workload "$WORKLOAD" --repeat "$REPEAT" --data-dir "$DATA" --idle-secs 0 \
    --peak-secs 0 --out "$dir" $RUN_ARGS "$@" >/dev/null 2>"$dir.log" || [ $? -eq 4 ]
  touch "$dir/.done"
}

for i in $(seq 1 "$PAIRS"); do
  run "a$i"
  run "b$i"
  run "s$i" --plant-slowdown "$SLOWDOWN"
  echo "pair $i/$PAIRS collected" >&2
done

fa=0; det=0
declare -A fa_metric det_metric
for i in $(seq 1 "$PAIRS"); do
  for kind in b s; do
    cand="$OUT/$WORKLOAD/$kind$i/$WORKLOAD.json"
    base="$OUT/$WORKLOAD/a$i/$WORKLOAD.json"
    json="$OUT/$WORKLOAD/gate-$kind$i.json"
    code=0
    "$EFFBENCH" gate "$cand" --baseline "$base" --json $GATE_ARGS >"$json" 2>/dev/null || code=$?
    if [ "$code" -ge 2 ]; then echo "gate failed on $cand (exit $code)" >&2; exit 2; fi
    failed=$(python3 -c 'import json,sys; print(" ".join(sorted({c["metric"] for c in (c for w in json.load(open(sys.argv[1]))["workloads"] for c in w["cases"]) if c["outcome"] in ("regression","invalid")})))' "$json")
    if [ "$kind" = b ]; then
      [ "$code" -eq 1 ] && fa=$((fa + 1))
      for m in $failed; do fa_metric[$m]=$(( ${fa_metric[$m]:-0} + 1 )); done
    else
      [ "$code" -eq 1 ] && det=$((det + 1))
      for m in $failed; do det_metric[$m]=$(( ${det_metric[$m]:-0} + 1 )); done
    fi
    printf '%s%-3s exit %s %s\n' "$kind" "$i" "$code" "$failed"
  done
done
echo "workload $WORKLOAD, $REPEAT repeats per side, planted slowdown $SLOWDOWN, gate flags: ${GATE_ARGS:-(defaults)}"
echo "false alarms (A/A): $fa / $PAIRS"
for m in "${!fa_metric[@]}"; do echo "  $m: ${fa_metric[$m]}"; done
echo "detected ($SLOWDOWN slowdown): $det / $PAIRS"
for m in "${!det_metric[@]}"; do echo "  $m: ${det_metric[$m]}"; done
