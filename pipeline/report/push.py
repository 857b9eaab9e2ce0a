"""The report's TFLite and push sections: the tflite_evaluator's table (its report.json), the
InfraValidator's verdict and what each Pusher pushed where, or why it did not."""
from __future__ import annotations

import json
import os
from typing import Any, Dict

from pipeline import run_summary
from pipeline.report.runs import Run
from tfxp import nodes


def _pushed(run: Run, node_id: str) -> Dict[str, Any]:
    """What ``node_id`` (a Pusher) pushed where, from its PushedModel artifact."""
    note = run.missing(node_id)
    if note is not None:
        return {"note": note}
    artifact = run.artifact(node_id, "pushed_model")
    return {"note": None, "cached": run.components[node_id].state == "cached",
            "pushed": bool(artifact.get_int_custom_property("pushed")),
            "destination": artifact.get_string_custom_property("pushed_destination"),
            "version": artifact.get_string_custom_property("pushed_version")}


def tflite_section(run: Run) -> Dict[str, Any]:
    from components.custom.tflite_evaluator import REPORT_FILE
    from tfx.utils import io_utils

    note = run.missing(nodes.TFLITE_EVALUATOR)
    if note is not None:
        return {"note": note}
    path = os.path.join(run.artifact(nodes.TFLITE_EVALUATOR, "blessing").uri, REPORT_FILE)
    if not os.path.exists(path):
        return {"note": f"the TFLite evaluator left no {REPORT_FILE} in {os.path.dirname(path)}"}
    report = json.loads(io_utils.read_string_file(path))
    return {"note": None, "report": report, "push": _pushed(run, nodes.LITE_PUSHER)}


def push_section(run: Run, gate: str, pipeline_root: str) -> Dict[str, Any]:
    """The InfraValidator's verdict and what the Pusher pushed, or why it did not (the Evaluator's gate: ``gate``)."""
    infra = run.artifact(nodes.INFRA_VALIDATOR, "blessing")
    infra_verdict = run_summary.blessing_from(infra.mlmd_artifact) if infra is not None else None
    push = _pushed(run, nodes.PUSHER)
    if push["note"] is None and not push["pushed"]:
        evaluation = run.artifact(nodes.EVALUATOR, "blessing")
        push["why"] = run_summary.why_not_pushed(
            run_summary.blessing_from(evaluation.mlmd_artifact) if evaluation is not None else None,
            infra_verdict, gate, pipeline_root) or "the Pusher did not push"
    return {"infra_note": run.missing(nodes.INFRA_VALIDATOR) or ("the InfraValidator recorded no verdict"
                                                                 if infra_verdict is None else None),
            "infra_blessed": infra_verdict[0] if infra_verdict else None,
            "infra_reason": infra_verdict[1] if infra_verdict else "", "push": push}
