"""Summary of bench/runner-overhead.sh: pairs of repeats (same round, same seed) bare and
through effbench, their walls and rates, and the medians.

Through effbench, two walls: the measured window of the repeat (the result's `wall_s`, what
energy is integrated over) and the runner's own `train` wall from its log line. Overhead is
wall through effbench / wall bare - 1 for the same work (the same samples to target)."""

import glob
import json
import os
import re
import statistics
import sys

LINE = re.compile(r"train: (\d+) steps in ([\d.]+) s: busy ([\d.]+) s, waiting for effbench ([\d.]+) s, "
                  r"the rest \([^)]*\) ([\d.]+) s")


def rounds(out):
    for bare in sorted(glob.glob(os.path.join(out, "bare-*.jsonl")), key=lambda p: int(re.findall(r"\d+", p)[-1])):
        r = re.findall(r"(\d+)\.jsonl$", bare)[0]
        yield r, [json.loads(l) for l in open(bare) if l.startswith("{")], os.path.join(out, "through-" + r)


def through_repeats(d, workload):
    res = json.load(open(os.path.join(d, workload + ".json")))
    log = open(os.path.join(d, workload + ".runner.log")).read()
    lines = [tuple(float(v) for v in m.groups()) for m in LINE.finditer(log)]
    return res["repeats"], lines


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main(out, workload):
    pairs = []
    for r, bare, d in rounds(out):
        reps, lines = through_repeats(d, workload)
        if len(lines) != len(reps):
            sys.exit("%s: %d repeats but %d runner train lines" % (d, len(reps), len(lines)))
        for b, t, (steps, twall, busy, wait, rest) in zip(bare, reps, lines):
            pairs.append(dict(round=r, seed=t["seed"], bare_samples=b["samples"], samples=t["units_processed"],
                              valid=t["valid"], bare_wall=b["wall_s"], bare_busy=b["busy_s"], window=t["wall_s"],
                              train_wall=twall, busy=busy, wait=wait, rest=rest, effbench_cpu=t["cpu_s"]))
    print("round seed samples(bare/through)  bare s  window s  runner train s  (busy / waiting / rest)  overhead")
    for p in pairs:
        p["overhead"] = p["window"] / p["bare_wall"] - 1
        same = "" if p["bare_samples"] == p["samples"] else "  DIFFERENT WORK"
        print("%5s %4d %7d/%-7d %8.3f %9.3f %15.3f  (%.3f / %.3f / %.3f)  %+6.1f%%%s" % (
            p["round"], p["seed"], p["bare_samples"], p["samples"], p["bare_wall"], p["window"], p["train_wall"],
            p["busy"], p["wait"], p["rest"], 100 * p["overhead"], same))
    same = [p for p in pairs if p["bare_samples"] == p["samples"]]
    if not same:
        sys.exit("no pair did the same work")
    ov = sorted(p["overhead"] for p in same)
    print("\n%d of %d pairs did the same work; over them:" % (len(same), len(pairs)))
    print("overhead (window / bare - 1): median %+.1f%%, min %+.1f%%, max %+.1f%%" % (100 * med(ov), 100 * ov[0], 100 * ov[-1]))
    rate_b = med([p["samples"] / p["bare_wall"] for p in same])
    rate_t = med([p["samples"] / p["window"] for p in same])
    print("samples/s: bare %.0f, through effbench %.0f (medians; %.1f%% of bare)" % (rate_b, rate_t, 100 * rate_t / rate_b))
    for k, what in [("bare_busy", "bare busy s"), ("busy", "through busy s"), ("wait", "runner waiting for effbench s"),
                    ("rest", "runner's rest s"), ("bare_wall", "bare wall s"), ("train_wall", "runner train wall s"),
                    ("window", "effbench window s")]:
        print("  %-32s median %.4f" % (what, med([p[k] for p in same])))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
