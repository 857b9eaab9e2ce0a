"""The drift check's page, in the run report's style (pipeline/templates/drift.html.j2): per feature, the two
distributions overlaid, the distance, the threshold and the verdict; then any other anomaly TFDV found."""
from __future__ import annotations

from typing import Any, Dict

from pipeline.report import plots
from pipeline.report.data import describe_feature, feature_plot
from pipeline.report.render import render_template


def _by_name(statistics) -> tuple:
    stats = statistics.datasets[0]
    return {".".join(f.path.step) or f.name: f for f in stats.features}, stats.num_examples


def render_page(cfg, result, current_stats, reference_stats) -> str:
    current, current_rows = _by_name(current_stats)
    reference, reference_rows = _by_name(reference_stats)
    roles = ["reference", "current"]
    features = []
    for row in sorted(result.rows, key=lambda r: (not r.crossed, -(r.value or 0.0), r.feature)):
        sides = {role: side.get(row.feature) for role, side in zip(roles, (reference, current))}
        present = {role: f for role, f in sides.items() if f is not None}
        features.append({
            "name": row.feature, "measure": row.measure, "threshold": row.threshold, "origin": row.threshold_from,
            "value": row.value, "crossed": row.crossed,
            "plot": feature_plot(present) if len(present) == 2 else None,
            "sides": [dict(describe_feature(f, rows), role=role) for (role, f), rows in
                      zip(present.items(), (reference_rows, current_rows))],
        })
    context: Dict[str, Any] = {
        "pipeline": cfg.pipeline_name, "kind": "skew" if result.skew else "drift",
        "summary": result.summary(), "crossed": len(result.crossed), "compared": len(result.rows),
        "current": result.current.describe(), "reference": result.reference_text,
        "versions": sorted(result.current.versions.items()), "features": features,
        "others": result.other_anomalies, "seconds": result.seconds,
        "colors": dict(zip(roles, plots.SPLIT_COLORS)),
    }
    return render_template("drift.html.j2", **context)
