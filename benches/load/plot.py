#!/usr/bin/env python3
"""Draws BENCHMARKS.md's figure as a dependency-free SVG.

    python3 benches/load/plot.py [summary.json] [out.svg]

Inputs (each optional; missing ones are left out of the figure):
  * target/load/summary.json (benches/load/run.sh): per HTTP scenario, req/s and p99
    latency of every server as ratios to bare in the same rounds, side by side;
  * target/criterion/<group>/<function>/new/estimates.json (cargo bench): the median
    time of the middleware and core benches;
  * target/callgrind/results.csv (benches/load/callgrind.sh): instructions per request.
Default output: target/load/plot.svg.
"""

import csv
import glob
import json
import os
import sys
from html import escape

COLORS = {
    "bare": "#9e9e9e",
    "ours": "#1f77b4",
    "ours_noheaders": "#6baed6",
    "governor": "#d62728",
    "governor_headers": "#ff9896",
    "redis": "#2ca02c",
    "redis_example": "#2ca02c",
}
OTHER = "#7f7f7f"

BAR_H = 16
GAP = 4
LABEL_W = 150
PANEL_W = 330
VALUE_W = 70


def color(name):
    if name in COLORS:
        return COLORS[name]
    if "governor" in name:
        return COLORS["governor"]
    if "ours" in name:
        return COLORS["ours"]
    if "bare" in name:
        return COLORS["bare"]
    return OTHER


class Svg:
    def __init__(self):
        self.parts = []
        self.height = 0

    def text(self, x, y, s, size=12, anchor="start", weight="normal"):
        self.parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}">{escape(s)}</text>'
        )

    def rect(self, x, y, w, h, fill):
        self.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{h}" fill="{fill}"/>')

    def line(self, x1, y1, x2, y2, stroke="#333", dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}"{d}/>')

    def render(self, width):
        body = "\n".join(self.parts)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{self.height}" '
            f'viewBox="0 0 {width} {self.height}" font-family="sans-serif">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n{body}\n</svg>\n'
        )


def bars(svg, x0, y0, title, items, fmt, reference=None):
    """Horizontal bars: items = [(label, value)]; returns the panel's height."""
    svg.text(x0, y0 + 12, title, size=12, weight="bold")
    y = y0 + 20
    vmax = max([v for _, v in items] + ([reference] if reference else []) + [1e-9])
    scale = (PANEL_W - LABEL_W - VALUE_W) / vmax
    for label, v in items:
        svg.text(x0 + LABEL_W - 6, y + BAR_H - 4, label, size=11, anchor="end")
        svg.rect(x0 + LABEL_W, y, v * scale, BAR_H, color(label.split("/")[-1]))
        svg.text(x0 + LABEL_W + v * scale + 4, y + BAR_H - 4, fmt(v), size=11)
        y += BAR_H + GAP
    if reference:
        rx = x0 + LABEL_W + reference * scale
        svg.line(rx, y0 + 18, rx, y, stroke="#555", dash="3,3")
    return y - y0 + 10


def criterion_medians(root="target/criterion"):
    out = {}
    for path in sorted(glob.glob(os.path.join(root, "*", "*", "new", "estimates.json"))):
        parts = path.split(os.sep)
        group, func = parts[-4], parts[-3]
        with open(path) as f:
            est = json.load(f)
        out[(group, func)] = est["median"]["point_estimate"]
    return out


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "target/load/summary.json"
    dst = sys.argv[2] if len(sys.argv) > 2 else "target/load/plot.svg"
    svg = Svg()
    width = 2 * PANEL_W + 40
    y = 10
    svg.text(10, y + 16, "tower-ratelimit vs tower_governor (ratios to bare, same rounds)", size=15, weight="bold")
    y += 34
    if os.path.exists(src):
        with open(src) as f:
            summary = json.load(f)
        for scenario, entries in summary.items():
            svg.text(10, y + 12, scenario, size=13, weight="bold")
            y += 16
            rps = [(s, e["rps_ratio"]) for s, e in entries.items() if e.get("rps_ratio") is not None]
            p99 = [(s, e["p99_us_ratio"]) for s, e in entries.items() if e.get("p99_us_ratio") is not None]
            h1 = bars(svg, 10, y, "req/s ×bare (higher is better)", rps, lambda v: f"{v:.2f}", 1.0)
            h2 = bars(svg, 20 + PANEL_W, y, "p99 latency ×bare (lower is better)", p99, lambda v: f"{v:.2f}", 1.0)
            y += max(h1, h2)
    crit = criterion_medians()
    groups = ["allow", "allow_headers", "deny"]
    items = [(f"{g}/{fn}", ns) for (g, fn), ns in crit.items() if g in groups]
    core = [(f"{g}/{fn}", ns) for (g, fn), ns in crit.items() if g not in groups and g not in ("headers", "render")]
    if items or core:
        svg.text(10, y + 12, "criterion medians (ns per request / check, lower is better)", size=13, weight="bold")
        y += 16
        h1 = bars(svg, 10, y, "middleware", items, lambda v: f"{v:.0f} ns") if items else 0
        h2 = bars(svg, 20 + PANEL_W, y, "core", core, lambda v: f"{v:.1f} ns") if core else 0
        y += max(h1, h2)
    cg = "target/callgrind/results.csv"
    if os.path.exists(cg):
        with open(cg, newline="") as f:
            rows = list(csv.DictReader(f))
        items = [(r["stack"], float(r["per_request"])) for r in rows]
        svg.text(10, y + 12, "callgrind: instructions per request (lower is better)", size=13, weight="bold")
        y += 16
        y += bars(svg, 10, y, "in-process stack", items, lambda v: f"{v:.0f}")
    svg.height = int(y + 10)
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    with open(dst, "w") as f:
        f.write(svg.render(width))
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
