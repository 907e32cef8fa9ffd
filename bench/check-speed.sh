#!/usr/bin/env bash
# Speed and memory of `effbench check` (issue 10, "Speed, measured not asserted").
#
# 1. Full-suite size: 13 result directories of 5 repeats each (65 repeats), every repeat a
#    WINDOW-second window traced at 10 Hz, submitted as one bundle; `check` is timed.
# 2. A long, fast trace: one result of 5 repeats of 120 s at 1 kHz (600,000 trace rows over
#    10 minutes); `check`'s peak memory from /usr/bin/time -v.
#
# The results are synthesised from one real run (digits-mlp-train, fake constant power) by
# rewriting its repeats' windows, energy and trace consistently, so they pass every check;
# the script asserts that (`check` exits 0) before reporting a figure.
#
# Usage: bench/check-speed.sh [OUT_DIR]   env: EFFBENCH (target/release/effbench), WINDOW (60)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/check-speed}
EFFBENCH=${EFFBENCH:-target/release/effbench}
WINDOW=${WINDOW:-60}
rm -rf "$OUT"
mkdir -p "$OUT"
"$EFFBENCH" run --workload digits-mlp-train --repeat 5 --fake-power 40 --idle-secs 0.2 --peak-secs 0 \
    --out "$OUT/template" >/dev/null 2>&1

synth() { # template.json out_dir hz window_s
    python3 - "$@" <<'EOF'
import json, math, os, sys
src, out, hz, window = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
r = json.load(open(src))
w = r["workload"]["id"]
os.makedirs(out, exist_ok=True)
rows, t = [], 0.0
def seg(label, n, power):
    # n rows at hz, the printed values are what the checker reads back
    global t
    pts = []
    for i in range(n):
        ts, ps = f"{t:.6f}", f"{power(t):.4f}"
        rows.append(f"{ts},{label},{ps}")
        pts.append((float(ts), float(ps)))
        t += 1.0 / hz
    return pts
idle = seg("idle", int(5 * hz) + 1, lambda t: 40.0)
r["idle_power_w"] = {"cpu": sum(p * (b[0] - a[0]) for a, (_, p), b in zip(idle, idle[1:], idle[1:])) / (idle[-1][0] - idle[0][0])}
for rep in r["repeats"]:
    t += 0.05
    pts = seg(f"repeat-{rep['seed']}", int(window * hz) + 1, lambda t: 40.0 + 5.0 * math.sin(t))
    e = sum(p1 * (t1 - t0) for (t0, _), (t1, p1) in zip(pts, pts[1:]))
    wall = pts[-1][0] - pts[0][0]
    dyn = e - r["idle_power_w"]["cpu"] * wall
    rep.update(wall_s=wall, avg_power_w=e / wall, energy_per_unit_j=e / rep["units_processed"],
               throughput_per_s=rep["units_processed"] / wall, meter_warnings=[])
    rep["energy_j"] = {"total": e, "by_domain": {"cpu": e}}
    rep["dynamic_energy_j"] = {"total": dyn, "by_domain": {"cpu": dyn}}
json.dump(r, open(f"{out}/{w}.json", "w"), indent=2)
with open(f"{out}/{w}.trace.csv", "w") as f:
    f.write("t_s,phase,cpu_w\n" + "\n".join(rows) + "\n")
EOF
}

T="$OUT/template/digits-mlp-train.json"
dirs=()
for i in $(seq 1 13); do
    synth "$T" "$OUT/suite/r$i" 10 "$WINDOW"
    dirs+=("$OUT/suite/r$i")
done
"$EFFBENCH" submit "${dirs[@]}" --out "$OUT/suite-bundle" --submitter bench >/dev/null
rows=$(cat "$OUT"/suite/r*/digits-mlp-train.trace.csv | wc -l)
start=$(date +%s.%N)
"$EFFBENCH" check "$OUT/suite-bundle" >"$OUT/suite-check.txt"
end=$(date +%s.%N)
echo "full suite: 65 repeats, ${WINDOW} s windows at 10 Hz ($rows trace lines): check $(echo "$end - $start" | bc) s"

synth "$T" "$OUT/khz/r1" 1000 120
"$EFFBENCH" submit "$OUT/khz/r1" --out "$OUT/khz-bundle" --submitter bench >/dev/null
rows=$(wc -l <"$OUT/khz/r1/digits-mlp-train.trace.csv")
bytes=$(stat -c %s "$OUT/khz/r1/digits-mlp-train.trace.csv")
/usr/bin/time -v "$EFFBENCH" check "$OUT/khz-bundle" >"$OUT/khz-check.txt" 2>"$OUT/khz-time.txt"
rss=$(grep "Maximum resident" "$OUT/khz-time.txt" | awk '{print $NF}')
wall=$(grep "Elapsed (wall" "$OUT/khz-time.txt" | awk '{print $NF}')
echo "1 kHz, 10 minutes: $rows trace lines ($bytes bytes): check $wall, peak RSS $rss KiB"
