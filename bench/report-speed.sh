#!/usr/bin/env bash
# Speed and memory of `effbench report` (issue 12, "Speed, measured not asserted").
#
#   a. suite: 13 results of 5 repeats each, every one with a 10 Hz trace of WINDOW seconds per
#      repeat (plus a 10 s idle window), reported in every format against the fixture baseline;
#   b. long:  one result with a 1 kHz trace of one hour (3,600,000 rows);
#   c. many:  for each count in MANY (default "100 1000 10000"), that many result files, half
#      with a trace (cases many-100, many-1000, ...): peak RSS should not grow with the count,
#      and time should grow about linearly.
#
# Every input is a copy of the real results in harness/tests/fixtures/report/results (one
# digits-mlp-train run with its 10 Hz trace, one fmnist-mlp-infer run): result files are
# copied unchanged (hard links where the file system allows), and the longer traces repeat the
# fixture trace's own readings in order on a new time axis (the row's time and window label
# are rewritten, never its watts). The copies only give `report` realistic work; no figure in
# them is a new measurement.
#
# Each case runs RUNS times (default 5) under /usr/bin/time -v; the script prints every run and
# the median wall time and peak RSS. It never judges: the goals (a < 2 s, b < 5 s on 2 cores,
# c bounded memory) are read off the figures. The load average is printed first: on shared
# cores the wall time includes waiting for a core, the CPU time does not.
#
# Usage: bench/report-speed.sh [WORK_DIR]
#   env: EFFBENCH (target/release/effbench), RUNS (5), WINDOW (60), MANY ("100 1000 10000"),
#        FORMATS (html,md,bmf,prometheus,csv), CASES ("suite long many")
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-results/report-speed}
EFFBENCH=${EFFBENCH:-target/release/effbench}
RUNS=${RUNS:-5}
WINDOW=${WINDOW:-60}
MANY=${MANY:-100 1000 10000}
FORMATS=${FORMATS:-html,md,bmf,prometheus,csv}
CASES=${CASES:-suite long many}
FIX=harness/tests/fixtures/report
[ -x "$EFFBENCH" ] || { echo "report-speed: $EFFBENCH not found; cargo build --release -p effbench" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "report-speed: /usr/bin/time (GNU time) is needed: apt-get install time" >&2; exit 2; }
rm -rf "$WORK"
mkdir -p "$WORK"

# gen KIND DIR [COUNT]: writes the inputs of one case.
gen() {
    python3 - "$FIX/results" "$1" "$2" "$WINDOW" "${3:-0}" <<'EOF'
import os, shutil, sys
fix, kind, out, window, many = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
os.makedirs(out, exist_ok=True)
train, infer = os.path.join(fix, "digits-mlp-train.json"), os.path.join(fix, "fmnist-mlp-infer.json")
lines = open(os.path.join(fix, "digits-mlp-train.trace.csv")).read().splitlines()
header, rows = lines[0], [l.split(",", 2) for l in lines[1:] if l]
watts = [r[2] for r in rows]  # the fixture's own readings, reused in order

def copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)

def trace(path, hz, repeat_s, idle_s=10.0, repeats=5):
    """A trace of idle_s + repeats * repeat_s seconds at hz: window labels by time, watts cycled."""
    n = int(round((idle_s + repeats * repeat_s) * hz))
    with open(path, "w") as f:
        f.write(header + "\n")
        for i in range(n):
            t = i / hz
            label = "idle" if t < idle_s else "repeat-%d" % min(repeats - 1, int((t - idle_s) // repeat_s))
            f.write("%.6f,%s,%s\n" % (t, label, watts[i % len(watts)]))

if kind == "suite":
    for k in range(13):
        src = train if k < 7 else infer
        stem = "w%02d-%s" % (k, os.path.basename(src)[:-5])
        copy(src, os.path.join(out, stem + ".json"))
        trace(os.path.join(out, stem + ".trace.csv"), 10.0, window)
elif kind == "long":
    copy(train, os.path.join(out, "digits-mlp-train.json"))
    trace(os.path.join(out, "digits-mlp-train.trace.csv"), 1000.0, (3600.0 - 10.0) / 5)
elif kind == "many":
    fixture_trace = os.path.join(fix, "digits-mlp-train.trace.csv")
    for k in range(many):
        src = train if k % 2 == 0 else infer
        stem = "r%05d-%s" % (k, os.path.basename(src)[:-5])
        copy(src, os.path.join(out, stem + ".json"))
        if src == train:
            copy(fixture_trace, os.path.join(out, stem + ".trace.csv"))
EOF
}

# measure NAME INPUT_DIR: RUNS reports of INPUT_DIR, each timed; prints the runs and medians.
measure() {
    local name=$1 input=$2 log="$WORK/$1.time" i
    : >"$log"
    for i in $(seq "$RUNS"); do
        rm -rf "$WORK/$name-report"
        /usr/bin/time -v -o "$WORK/$name.run" "$EFFBENCH" report "$input" --out "$WORK/$name-report" \
            --baseline "$FIX/baselines" --format "$FORMATS" >"$WORK/$name.out" 2>&1 \
            || { echo "report-speed: $name: effbench report failed:" >&2; cat "$WORK/$name.out" >&2; exit 1; }
        cat "$WORK/$name.run" >>"$log"
    done
    python3 - "$name" "$log" "$(du -sk "$WORK/$name-report" | cut -f1)" <<'EOF'
import re, statistics, sys
name, log, kib = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]
def secs(s):
    parts = [float(p) for p in s.split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
wall = [secs(m) for m in re.findall(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", log)]
rss = [int(m) / 1024 for m in re.findall(r"Maximum resident set size \(kbytes\): (\d+)", log)]
cpu = [float(u) + float(s) for u, s in zip(re.findall(r"User time \(seconds\): (\S+)", log),
                                             re.findall(r"System time \(seconds\): (\S+)", log))]
print("%-6s runs=%d  wall s: median %.3f (min %.3f, max %.3f)  cpu s: median %.3f  peak RSS MiB: median %.1f (min %.1f, max %.1f)  report %.1f MiB"
      % (name, len(wall), statistics.median(wall), min(wall), max(wall), statistics.median(cpu),
         statistics.median(rss), min(rss), max(rss), int(kib) / 1024))
EOF
}

echo "report-speed: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $EFFBENCH"
for c in $CASES; do
    counts=0
    [ "$c" = many ] && counts=$MANY
    for n in $counts; do
        name=$c
        [ "$c" = many ] && name=many-$n
        rm -rf "$WORK/$name"
        gen "$c" "$WORK/$name" "$n"
        echo "report-speed: $name: $(find "$WORK/$name" -name '*.json' | wc -l) result(s), $(du -sh "$WORK/$name" | cut -f1) of input, trace rows: $(find "$WORK/$name" -name '*.trace.csv' -exec cat {} + 2>/dev/null | wc -l)"
        measure "$name" "$WORK/$name"
        rm -rf "$WORK/$name-report"
    done
done
