#!/usr/bin/env python3
"""Summarizes benches/load/run.sh's results.csv: per scenario and server, the medians of
req/s, p50/p99 latency and peak RSS, each also as the median of per-round ratios to the
bare server of the same round (adjacent runs, so drift cancels).

    python3 benches/load/summarize.py target/load/results.csv target/load/summary.json

Prints Markdown tables (as BENCHMARKS.md shows them) and writes the JSON that
benches/load/plot.py reads. Standard library only.
"""

import csv
import json
import statistics
import sys
from collections import defaultdict


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def load(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def summarize(rows):
    by_run = {}
    order = defaultdict(list)
    for r in rows:
        key = (r["scenario"], r["round"], r["server"])
        by_run[key] = r
        if r["server"] not in order[r["scenario"]]:
            order[r["scenario"]].append(r["server"])
    out = {}
    for scenario, servers in order.items():
        rounds = sorted({k[1] for k in by_run if k[0] == scenario}, key=int)
        entries = {}
        for server in servers:
            acc = defaultdict(list)
            for rnd in rounds:
                r = by_run.get((scenario, rnd, server))
                bare = by_run.get((scenario, rnd, "bare"))
                if r is None:
                    continue
                req = int(r["requests"])
                vals = {
                    "rps": float(r["rps"]),
                    "p50_us": float(r["p50_us"]),
                    "p99_us": float(r["p99_us"]),
                    "hwm_kb": float(r["hwm_kb"]),
                }
                for k, v in vals.items():
                    acc[k].append(v)
                    if bare is not None and float(bare[k]) > 0:
                        acc[k + "_ratio"].append(v / float(bare[k]))
                acc["requests"].append(req)
                acc["non2xx_share"].append(int(r["non2xx"]) / max(req, 1))
                acc["errors"].append(int(r["errors"]))
                if r.get("script_calls"):
                    acc["script_calls_per_request"].append(int(r["script_calls"]) / max(req, 1))
                if bare is not None and scenario.startswith("churn") and server != "bare":
                    # Every churn request is a new key; what the server holds beyond the
                    # bare server's peak, per key sent.
                    extra = (float(r["hwm_kb"]) - float(bare["hwm_kb"])) * 1024
                    acc["bytes_per_key"].append(extra / max(req, 1))
            entries[server] = {k: median(v) for k, v in acc.items()}
            entries[server]["rounds"] = len(acc["rps"])
        out[scenario] = entries
    return out


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


def table(summary):
    lines = []
    for scenario, entries in summary.items():
        lines.append(f"\n### {scenario}\n")
        head = "| server | req/s | ×bare | p50 µs | ×bare | p99 µs | ×bare | peak RSS MiB | ×bare | non-2xx |"
        extra_cols = []
        if scenario.startswith("churn"):
            extra_cols.append(("bytes_per_key", "B/key", ".0f"))
        if any("script_calls_per_request" in e for e in entries.values()):
            extra_cols.append(("script_calls_per_request", "script calls/req", ".4f"))
        for _, title, _ in extra_cols:
            head += f" {title} |"
        lines.append(head)
        lines.append("|---" * (10 + len(extra_cols)) + "|")
        for server, e in entries.items():
            row = (
                f"| {server} | {fmt(e.get('rps'), '.0f')} | {fmt(e.get('rps_ratio'), '.3f')} "
                f"| {fmt(e.get('p50_us'), '.0f')} | {fmt(e.get('p50_us_ratio'), '.2f')} "
                f"| {fmt(e.get('p99_us'), '.0f')} | {fmt(e.get('p99_us_ratio'), '.2f')} "
                f"| {fmt(e['hwm_kb'] / 1024 if e.get('hwm_kb') else None, '.1f')} "
                f"| {fmt(e.get('hwm_kb_ratio'), '.2f')} | {fmt(e.get('non2xx_share'), '.0%')} |"
            )
            for k, _, spec in extra_cols:
                row += f" {fmt(e.get(k), spec)} |"
            lines.append(row)
    return "\n".join(lines)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "target/load/results.csv"
    dst = sys.argv[2] if len(sys.argv) > 2 else "target/load/summary.json"
    summary = summarize(load(src))
    with open(dst, "w") as f:
        json.dump(summary, f, indent=2)
    print(table(summary))


if __name__ == "__main__":
    main()
