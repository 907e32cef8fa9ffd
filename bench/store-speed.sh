#!/usr/bin/env bash
# Measures the history store (README.md, "History"): what recording adds to a run, and
# `history list` over 10,000 runs.
#
# The 10,000 documents are SYNTHETIC: copies of one real result file (SOURCE) that differ only
# in `created_at` (one minute apart), their repeats' seeds, and a `command` entry saying they
# are synthetic copies; they exist to fill a store, never to be read as measurements. They are
# written under OUT/synthetic/ and imported into OUT/speed.sqlite.
#
# Prints: the import's wall time, the time to record one more document into the full store
# (a whole `effbench history import` process: start, open, migrate check, one transaction;
# more than what `run` adds, which has already started), and `history list` over all the
# runs (best and median of RUNS).
#
# Usage: bench/store-speed.sh [OUT_DIR]
#   env: N (10000), RUNS (5), SOURCE (baselines/cpu-amd-epyc-2t/fmnist-mlp-train.json),
#        EFFBENCH (target/release/effbench, else target/debug/effbench)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/store-speed}
N=${N:-10000}
RUNS=${RUNS:-5}
SOURCE=${SOURCE:-baselines/cpu-amd-epyc-2t/fmnist-mlp-train.json}
EFFBENCH=${EFFBENCH:-target/release/effbench}
[ -x "$EFFBENCH" ] || EFFBENCH=target/debug/effbench
[ -x "$EFFBENCH" ] || { echo "no effbench binary: cargo build --release" >&2; exit 2; }

rm -rf "$OUT"
mkdir -p "$OUT/synthetic"
python3 - "$SOURCE" "$OUT/synthetic" "$N" <<'PY'
import datetime, json, sys
src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
doc = json.load(open(src))
t0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
for i in range(n + 1):
    d = json.loads(json.dumps(doc))
    d["created_at"] = (t0 + datetime.timedelta(minutes=i)).isoformat().replace("+00:00", "Z")
    d["command"] = [f"SYNTHETIC copy {i} of {src} by bench/store-speed.sh; not a measurement"] + d["command"]
    for k, r in enumerate(d["repeats"]):
        r["seed"] = i * 1000 + k
    # The last one is kept apart: it is recorded alone into the full store.
    name = f"{out}/{i:05}.json" if i < n else f"{out}/../extra.json"
    with open(name, "w") as f:
        json.dump(d, f, indent=2)
PY
STORE="sqlite:$OUT/speed.sqlite"
# Milliseconds since the nanosecond time $1, in the shell itself (no process of its own).
ms() { local e; e=$(date +%s%N); printf '%d.%01d' $(((e - $1) / 1000000)) $(((e - $1) / 100000 % 10)); }

t=$(date +%s%N)
"$EFFBENCH" history --store "$STORE" import "$OUT/synthetic" >/dev/null
echo "import of $N synthetic documents: $(ms "$t") ms"

t=$(date +%s%N)
"$EFFBENCH" history --store "$STORE" import "$OUT/extra.json" >/dev/null
echo "recording one more document into the full store (a whole process): $(ms "$t") ms"

rows=$("$EFFBENCH" history --store "$STORE" list | tail -n +2 | wc -l)
times=()
for _ in $(seq "$RUNS"); do
  t=$(date +%s%N)
  "$EFFBENCH" history --store "$STORE" list >/dev/null
  times+=("$(ms "$t")")
done
printf '%s\n' "${times[@]}" | sort -n | awk -v rows="$rows" '
  { v[NR] = $1 } END { printf "history list over %d runs: best %.1f ms, median %.1f ms (%d runs)\n", rows, v[1], v[int((NR + 1) / 2)], NR }'
t=$(date +%s%N)
"$EFFBENCH" history --store "$STORE" list --json >/dev/null
echo "history list --json over $rows runs: $(ms "$t") ms"
