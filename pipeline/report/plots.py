"""The report's plots, drawn with matplotlib from plain numbers (the readers beside this module turn the
artifacts into those) and returned as PNG data URIs: the page needs no other file."""
from __future__ import annotations

import base64
import io
from typing import Dict, List, Optional, Sequence, Tuple

from pipeline.report.formats import format_seconds

SPLIT_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"]
STATE_COLORS = {"executed": "#2e7d32", "cached": "#9e9e9e", "failed": "#c62828", "running": "#f9a825",
                "canceled": "#6d4c41", "unknown": "#6d4c41"}

Points = List[Tuple[int, float]]
Histogram = Tuple[List[float], List[float]]  # (bucket edges, fraction of the values per bucket)


def png(figure) -> str:
    """A matplotlib figure as a data URI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight", pad_inches=0.05)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float, height: float):
    # A Figure of its own (not pyplot): no global state, and PNGs are drawn by the Agg renderer.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    figure.set_layout_engine("constrained")
    return figure


def _tiny_axes(figure):
    axes = figure.add_subplot()
    axes.set_yticks([])
    axes.tick_params(axis="x", labelsize=6, length=2, pad=1)
    for side in ("top", "right", "left"):
        axes.spines[side].set_visible(False)
    return axes


def histograms_plot(histograms: Sequence[Optional[Histogram]]) -> Optional[str]:
    """A tiny plot of a numeric feature: each split's histogram (None: it has none) overlaid as fractions,
    so that a shift shows as two shapes. None when no split has one."""
    figure = _figure(2.2, 0.7)
    axes = _tiny_axes(figure)
    ends = []
    for color, histogram in zip(SPLIT_COLORS, histograms):
        if histogram:
            axes.stairs(histogram[1], histogram[0], color=color, fill=False, linewidth=1.2)
            ends += [histogram[0][0], histogram[0][-1]]
    if not ends:
        return None
    low, high = min(ends), max(ends)  # label the range's ends only: there is no room for more
    if high > low:
        axes.set_xlim(low, high)
        axes.set_xticks([low, high], [f"{low:.4g}", f"{high:.4g}"])
        for label, align in zip(axes.get_xticklabels(), ("left", "right")):
            label.set_horizontalalignment(align)
    else:
        axes.set_xticks([low], [f"{low:.4g}"])
    return png(figure)


def top_values_plot(labels: List[str], shares: Sequence[List[float]]) -> Optional[str]:
    """A tiny plot of a string feature: per split (``shares``: one list per split), the share of each of
    the values ``labels``, side by side. None without labels."""
    if not labels:
        return None
    figure = _figure(2.2, 0.7)
    axes = _tiny_axes(figure)
    width = 0.8 / len(shares)
    for i, (color, split_shares) in enumerate(zip(SPLIT_COLORS, shares)):
        axes.bar([x + i * width for x in range(len(labels))], split_shares, width=width, color=color, align="edge")
    axes.set_xticks([])
    return png(figure)


def curves_plot(unit: str, curves: Dict[str, Dict[str, Points]]) -> str:
    """One plot per metric, its splits' curves ({metric: {split: [(step, value)]}}) against ``unit``."""
    columns = min(len(curves), 3)
    rows = -(-len(curves) // columns)
    figure = _figure(4.0 * columns, 2.6 * rows)
    for i, (metric, series) in enumerate(curves.items()):
        axes = figure.add_subplot(rows, columns, i + 1)
        for (split, points), color in zip(series.items(), SPLIT_COLORS):
            if points:
                steps, values = zip(*points)
                axes.plot(steps, values, color=color, marker="o" if len(points) < 30 else None, markersize=4,
                          label=split)
        axes.set_title(metric, fontsize=10)
        axes.set_xlabel(unit, fontsize=8)
        axes.tick_params(labelsize=8)
        axes.grid(alpha=0.3)
        if i == 0:
            axes.legend(fontsize=8)
    return png(figure)


def slices_plot(by_feature: Dict[str, List[Tuple[str, Dict[str, float]]]], metric: str, roles: List[str]) -> str:
    """``metric`` per value of each slicing feature ({feature: [(value, {role: metric value})]}), one bar
    per role (candidate, baseline) side by side."""
    figure = _figure(12, 2.2 * len(by_feature))
    for i, (column, values) in enumerate(by_feature.items()):
        axes = figure.add_subplot(len(by_feature), 1, i + 1)
        width = 0.8 / len(roles)
        for j, (role, color) in enumerate(zip(roles, ["#1f77b4", "#bdbdbd"])):
            axes.bar([x + j * width for x in range(len(values))], [m.get(role, float("nan")) for _, m in values],
                     width=width, align="edge", color=color, label=role)
        axes.set_xticks([x + 0.4 for x in range(len(values))], [label for label, _ in values], fontsize=8)
        axes.set_xlabel(column, fontsize=9)
        axes.set_ylabel(metric, fontsize=9)
        axes.tick_params(axis="y", labelsize=8)
        shown = [m[r] for _, m in values for r in roles if m.get(r) is not None]
        if shown:  # zoom on the differences, on the metric's own scale
            low, high = min(shown), max(shown)
            pad = (high - low) / 2 or abs(high) / 10 or 1.0
            axes.set_ylim(max(0.0, low - pad) if low >= 0 else low - pad, high + pad / 5)
        axes.grid(axis="y", alpha=0.3)
        axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return png(figure)


def timeline_plot(components: Sequence, start_ms: int, end_ms: int) -> str:
    """A bar per component (with node_id, state, start_ms and end_ms: None while unfinished, hatched up to
    ``end_ms``), in seconds since ``start_ms``."""
    figure = _figure(12, 0.25 * len(components) + 0.8)
    axes = figure.add_subplot()
    shortest = (end_ms - start_ms) / 1000 / 300  # a component of a few milliseconds still shows
    for row, component in enumerate(components):
        finish = component.end_ms if component.end_ms is not None else end_ms
        left, width = (component.start_ms - start_ms) / 1000, (finish - component.start_ms) / 1000
        axes.barh(row, max(width, shortest), left=left, color=STATE_COLORS[component.state],
                  hatch=None if component.end_ms is not None else "//")
        axes.text(left + max(width, shortest), row, f" {format_seconds(width)}", va="center", fontsize=7)
    axes.set_yticks(range(len(components)), [c.node_id for c in components], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("seconds since the run started", fontsize=9)
    axes.tick_params(axis="x", labelsize=8)
    axes.grid(axis="x", alpha=0.3)
    return png(figure)


def trials_plot(scores: Sequence[Tuple[str, Optional[float]]], objective: str, direction: str,
                best_id: Optional[str]) -> str:
    """The objective of each trial ([(trial id, score: None when it failed)]) in the order they were created,
    the best so far as a step line, the best trial starred, failed trials as crosses on the axis."""
    figure = _figure(8, 2.6)
    axes = figure.add_subplot()
    done = [(i, score) for i, (_, score) in enumerate(scores) if score is not None]
    xs, ys = zip(*done)
    axes.plot(xs, ys, "o", color=SPLIT_COLORS[0], label="trial")
    best_so_far, running = [], None
    for score in ys:
        running = score if running is None else (max if direction == "max" else min)(running, score)
        best_so_far.append(running)
    axes.step(xs, best_so_far, where="post", color=SPLIT_COLORS[1], alpha=0.6, label="best so far")
    failed = [i for i, (_, score) in enumerate(scores) if score is None]
    if failed:
        axes.plot(failed, [min(ys)] * len(failed), "x", color=STATE_COLORS["failed"], label="failed")
    for i, (trial_id, score) in enumerate(scores):
        if trial_id == best_id and score is not None:
            axes.plot([i], [score], "*", color=STATE_COLORS["executed"], markersize=14, label="best")
    axes.set_xticks(range(len(scores)), [trial_id for trial_id, _ in scores], fontsize=8)
    axes.set_xlabel("trial", fontsize=9)
    axes.set_ylabel(f"{objective} ({direction})", fontsize=9)
    axes.tick_params(axis="y", labelsize=8)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return png(figure)
