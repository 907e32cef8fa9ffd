#!/usr/bin/env python3
"""The ratio tables of compare.sh from its rows.jsonl, per workload: min/median/max over the
rounds of each side's median time (wall) and CPU time, and of their ratio effbench / peer
taken round by round (a pair of runs next to each other in time). Training rows (a step, in
ms) are paired with JAX's; inference rows (per query, in µs) with onnxruntime's.

Usage: python3 ratio_table.py rows.jsonl
"""
import json
import statistics
import sys

KINDS = [
    # (what, unit key, unit, peer side, peer name)
    ("step", "ms", "ms/step", "jax", "JAX"),
    ("query", "us", "µs/query", "onnxruntime", "onnxruntime"),
]


def spread(xs, fmt):
    return f"{fmt(min(xs))} / {fmt(statistics.median(xs))} / {fmt(max(xs))}"


def num(v):
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def pairs(rows, unit, peer_side):
    """{(round, workload): (effbench row, peer row)} for rows timed in `unit`, same batch."""
    key = f"median_{unit}"
    eff = {(r["round"], r["row"]["workload"]): r["row"] for r in rows
           if r["side"] == "effbench" and key in r["row"]}
    out = {}
    for r in rows:
        if r["side"] != peer_side:
            continue
        w = r.get("workload", r["row"].get("workload"))
        e = eff.get((r["round"], w))
        if e and r["row"]["batch"] == e["batch"] and key in r["row"]:
            out[(r["round"], w)] = (e, r["row"])
    order = list(dict.fromkeys(w for _, w in eff))
    return order, out


def table(rows, unit, label, peer_side, peer):
    order, paired = pairs(rows, unit, peer_side)
    if not order:
        return
    med, cpu_key = f"median_{unit}", f"cpu_{unit}"
    x = lambda v: f"{v:.2f}x"  # noqa: E731
    print(f"| workload | batch | threads | rounds | effbench {label} | {peer} {label} | ratio (wall) "
          f"| effbench CPU {label} | {peer} CPU {label} | ratio (CPU) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for w in order:
        got = [paired[k] for k in sorted(paired) if k[1] == w]
        if not got:
            print(f"| {w} | - | - | 0 | - | - | - | - | - | - |")
            continue
        e, p = [a for a, _ in got], [b for _, b in got]
        wall = [a[med] / b[med] for a, b in got]
        cpu = [a[cpu_key] / b[cpu_key] for a, b in got if b.get(cpu_key)]
        cells = [w, str(e[0]["batch"]), str(e[0]["threads"]), str(len(got)),
                 spread([a[med] for a in e], num), spread([b[med] for b in p], num), spread(wall, x),
                 spread([a[cpu_key] for a in e], num),
                 spread([b[cpu_key] for b in p if b.get(cpu_key)], num) if cpu else "-",
                 spread(cpu, x) if cpu else "-"]
        print("| " + " | ".join(cells) + " |")
    print(f"\nmin / median / max over rounds; ratios are effbench / {peer} per round (below 1: effbench faster)\n")


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    for _, unit, label, side, peer in KINDS:
        table(rows, unit, label, side, peer)


if __name__ == "__main__":
    main()
