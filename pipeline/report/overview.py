"""The report's header (the run: status, start, wall time) and its components section (state, wall
time, timeline), from the run's executions alone."""
from __future__ import annotations

import datetime
from typing import Any, Dict

import pipeline.report.plots as plots
from pipeline.report.runs import Run


def header(run: Run) -> Dict[str, Any]:
    failed, unfinished = run.in_state("failed"), run.in_state("running") + run.in_state("canceled")
    if failed:
        status, level = f"failed: {', '.join(failed)}", "failed"
    elif unfinished:
        status, level = f"unfinished: {', '.join(unfinished)}", "running"
    else:
        executed, cached = len(run.in_state("executed")), len(run.in_state("cached"))
        status, level = f"all {len(run.components)} components complete ({executed} executed, {cached} cached)", "ok"
    started = datetime.datetime.fromtimestamp(run.start_ms / 1000).astimezone()
    return {"pipeline": run.pipeline_name, "run_id": run.run_id, "status": status, "level": level,
            "started": started.strftime("%Y-%m-%d %H:%M:%S %Z"), "seconds": (run.end_ms - run.start_ms) / 1000}


def components_section(run: Run) -> Dict[str, Any]:
    components = list(run.components.values())
    return {"rows": [{"node_id": c.node_id, "type": c.type_name, "state": c.state, "seconds": c.seconds,
                      "offset": (c.start_ms - run.start_ms) / 1000, "message": c.message}
                     for c in components],
            "not_run": run.not_run,
            "plot": plots.timeline_plot(components, run.start_ms, run.end_ms) if components else None}
