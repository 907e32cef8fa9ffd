#!/usr/bin/env python3
"""The ratio table of compare.sh from its rows.jsonl: per workload, min/median/max over the
rounds of effbench's and JAX's median step (wall) and CPU time per step, and of their ratio
effbench / JAX taken round by round (a pair of runs next to each other in time).

Usage: python3 ratio_table.py rows.jsonl
"""
import json
import statistics
import sys


def spread(xs, fmt):
    return f"{fmt(min(xs))} / {fmt(statistics.median(xs))} / {fmt(max(xs))}"


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    eff = {(r["round"], r["row"]["workload"]): r["row"] for r in rows if r["side"] == "effbench"}
    order = list(dict.fromkeys(w for _, w in eff))
    jax = {}
    for r in rows:
        if r["side"] != "jax":
            continue
        e = eff.get((r["round"], r["workload"]))
        if e and r["row"]["batch"] == e["batch"]:
            jax[(r["round"], r["workload"])] = r["row"]
    ms = lambda v: f"{v:.3f}" if v < 10 else f"{v:.1f}"  # noqa: E731
    x = lambda v: f"{v:.2f}x"  # noqa: E731
    print("| workload | batch | threads | rounds | effbench ms/step | JAX ms/step | ratio (wall) "
          "| effbench CPU ms/step | JAX CPU ms/step | ratio (CPU) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for w in order:
        keys = [k for k in eff if k[1] == w and k in jax]
        if not keys:
            print(f"| {w} | - | - | 0 | - | - | - | - | - | - |")
            continue
        e, j = [eff[k] for k in keys], [jax[k] for k in keys]
        wall = [a["median_ms"] / b["median_ms"] for a, b in zip(e, j)]
        cpu = [a["cpu_ms"] / b["cpu_ms"] for a, b in zip(e, j) if b.get("cpu_ms")]
        cells = [w, str(e[0]["batch"]), str(e[0]["threads"]), str(len(keys)),
                 spread([a["median_ms"] for a in e], ms), spread([b["median_ms"] for b in j], ms),
                 spread(wall, x), spread([a["cpu_ms"] for a in e], ms),
                 spread([b["cpu_ms"] for b in j if b.get("cpu_ms")], ms) if cpu else "-",
                 spread(cpu, x) if cpu else "-"]
        print("| " + " | ".join(cells) + " |")
    print("\nmin / median / max over rounds; ratios are effbench / JAX per round (below 1: effbench faster)")


if __name__ == "__main__":
    main()
