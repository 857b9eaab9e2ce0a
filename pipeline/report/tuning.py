"""The report's tuning section: the Tuner's trials (components/custom/tuner.py's trials.json in its
tuner_results output), each trial's hyperparameters and objective, the best one marked, and a plot of the
objective per trial. A run without a Tuner (tuning off) has no such section."""
from __future__ import annotations

from typing import Any, Dict, List

import pipeline.report.plots as plots
from pipeline.report.runs import Run
from tfxp import nodes


def _value(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def trials_view(record: Dict[str, Any], uri: str = "") -> Dict[str, Any]:
    """The section's content from a trials.json record."""
    trials: List[Dict[str, Any]] = record["trials"]
    names = sorted({name for t in trials for name in t["hyperparameters"]})
    best = record.get("best_trial_id")
    rows = [{"trial_id": t["trial_id"], "status": t["status"], "score": t["score"], "best": t["trial_id"] == best,
             "cells": [_value(t["hyperparameters"][n]) if n in t["hyperparameters"] else "–" for n in names],
             "seconds": t.get("seconds"), "worker": t.get("worker"), "error": t.get("error")} for t in trials]
    objective = record["objective"]
    completed = [t for t in trials if t["score"] is not None]
    return {"note": None, "uri": uri, "objective": objective["name"], "direction": objective["direction"],
            "algorithm": record.get("algorithm"), "max_trials": record.get("max_trials"),
            "workers": record.get("workers", 1), "search_seconds": record.get("search_seconds"),
            "names": names, "rows": rows, "best": next((r for r in rows if r["best"]), None),
            "failed": sum(t["status"] == "FAILED" for t in trials),
            "plot": plots.trials_plot([(t["trial_id"], t["score"]) for t in trials], objective["name"],
                                      objective["direction"], best) if completed else None}


def tuning_section(run: Run) -> Dict[str, Any]:
    """{"present": False} when the run has no Tuner; a note when it has no trials to show."""
    from components.custom.tuner import read_trials

    if nodes.TUNER not in run.components:
        return {"present": False}
    note = run.missing(nodes.TUNER)
    if note is not None:
        return {"present": True, "note": note}
    uri = run.artifact(nodes.TUNER, "tuner_results").uri
    return {"present": True, **trials_view(read_trials(uri), uri)}
