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
# With HISTORY=N (e.g. 10) it calibrates the gate from history (`gate --baseline history:N`)
# instead, the way a CI job uses it: the A runs are recorded into a store of their own
# (OUT/WORKLOAD/store.sqlite) as the history, the B and S runs are not (`--store none`). It first
# records N A runs, then for each of PAIRS rounds records one more A run, makes B_i and S_i, and
# gates both at once against the last N A runs in the store (a rolling history, as on a main
# branch that records every run).
#
# Usage: bench/calibrate-gate.sh [OUT_DIR]
#   env: WORKLOAD (fmnist-mlp-train), PAIRS (20), SLOWDOWN (0.2), REPEAT (5),
#        EFFBENCH (target/release/effbench), RUN_ARGS (extra `run` flags),
#        GATE_ARGS (extra `gate` flags), HISTORY (0: gate B and S against A_i; N: against
#        the last N A runs in the store)
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
HISTORY=${HISTORY:-0}
[ -x "$EFFBENCH" ] || { echo "build it first: cargo build --release -p effbench" >&2; exit 2; }

W="$OUT/$WORKLOAD"
[ "$HISTORY" -gt 0 ] && W="$OUT/$WORKLOAD-history$HISTORY"
STORE="sqlite:$W/store.sqlite"
mkdir -p "$W"
run() { # run NAME [extra flags]: only history runs (h*, and a* in history mode) are recorded
  local name=$1; shift
  local dir="$W/$name" store=none
  [ "$HISTORY" -gt 0 ] && case $name in h*|a*) store=$STORE ;; esac
  [ -f "$dir/$WORKLOAD.json" ] && [ -f "$dir/.done" ] && return 0
  rm -rf "$dir"
  # exit 4 (a repeat missed the quality target) still leaves a result for the gate to judge
  "$EFFBENCH" run --workload "$WORKLOAD" --repeat "$REPEAT" --data-dir "$DATA" --idle-secs 0 \
    --peak-secs 0 --out "$dir" --store "$store" $RUN_ARGS "$@" >/dev/null 2>"$dir.log" || [ $? -eq 4 ]
  touch "$dir/.done"
}
gate() { # gate KIND I BASELINE-FLAGS...: once; the JSON and the exit code are kept
  local kind=$1 i=$2; shift 2
  local json="$W/gate-$kind$i.json"
  [ -f "$json.code" ] && return 0
  local code=0
  "$EFFBENCH" gate "$W/$kind$i/$WORKLOAD.json" "$@" --json $GATE_ARGS >"$json" 2>"$json.log" || code=$?
  if [ "$code" -ge 2 ] && [ "$code" -ne 3 ]; then echo "gate failed on $W/$kind$i (exit $code): $(cat "$json.log")" >&2; exit 2; fi
  echo "$code" >"$json.code"
}

if [ "$HISTORY" -gt 0 ]; then
  for j in $(seq 1 "$HISTORY"); do run "h$j"; echo "history run $j/$HISTORY collected" >&2; done
  for i in $(seq 1 "$PAIRS"); do
    run "a$i"
    run "b$i"
    run "s$i" --plant-slowdown "$SLOWDOWN"
    for kind in b s; do gate "$kind" "$i" --baseline "history:$HISTORY" --store "$STORE"; done
    echo "round $i/$PAIRS collected and gated" >&2
  done
else
  for i in $(seq 1 "$PAIRS"); do
    run "a$i"
    run "b$i"
    run "s$i" --plant-slowdown "$SLOWDOWN"
    echo "pair $i/$PAIRS collected" >&2
  done
  for i in $(seq 1 "$PAIRS"); do
    for kind in b s; do gate "$kind" "$i" --baseline "$W/a$i/$WORKLOAD.json"; done
  done
fi

fa=0; det=0
declare -A fa_metric det_metric
for i in $(seq 1 "$PAIRS"); do
  for kind in b s; do
    json="$W/gate-$kind$i.json"
    code=$(cat "$json.code")
    failed=$(python3 -c 'import json,sys; print(" ".join(sorted({c["metric"] for c in (c for w in json.load(open(sys.argv[1]))["workloads"] for c in w["cases"]) if c["outcome"] in ("regression","invalid","undecided")})))' "$json")
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
baseline="A_i"; [ "$HISTORY" -gt 0 ] && baseline="history:$HISTORY"
echo "workload $WORKLOAD, $REPEAT repeats per side, baseline $baseline, planted slowdown $SLOWDOWN, gate flags: ${GATE_ARGS:-(defaults)}"
echo "false alarms (A/A): $fa / $PAIRS"
for m in "${!fa_metric[@]}"; do echo "  $m: ${fa_metric[$m]}"; done
echo "detected ($SLOWDOWN slowdown): $det / $PAIRS"
for m in "${!det_metric[@]}"; do echo "  $m: ${det_metric[$m]}"; done
