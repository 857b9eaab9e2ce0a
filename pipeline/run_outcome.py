"""What one run of the pipeline did, in a few facts: each component's state and time, the gate metric of its
candidate (overall and per slice), the blessings, the version pushed. Read from MLMD and the run's artifacts
(pipeline/report/'s readers); `tfxp run` and `tfxp dev` print it and remember it (pipeline/history.py).
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Dict, List, Optional, Tuple

from pipeline import report, run_summary
from tfxp import nodes

log = logging.getLogger(__name__)

OVERALL = "Overall"  # TFMA's name of the overall slice (tfma.slicer.stringify_slice_key(()))


@dataclasses.dataclass
class Outcome:
    run_id: str
    components: List[Tuple[str, str, Optional[float]]]   # (node id, executed | cached | failed | ..., seconds)
    gate_metric: str                                     # the gate's metric (accuracy, mae, ...)
    higher_is_better: bool
    gate_value: Optional[float]                          # the candidate's, overall slice
    slices: Dict[str, Tuple[float, int]]                 # slice -> (the candidate's gate metric, example count)
    evaluated: bool                                      # the Evaluator executed in this run (not cached)
    blessed: Optional[bool]                              # the Evaluator's verdict
    infra_blessed: Optional[bool]
    infra_reason: str
    pushed: Optional[str]                                # the version dir name pushed in this run
    push_cached: bool                                    # the Pusher was cached: what it pushed before still serves
    why_not_pushed: str

    def in_state(self, state: str) -> List[Tuple[str, Optional[float]]]:
        return [(node, seconds) for node, s, seconds in self.components if s == state]


def _slice_values(cfg, evaluation_uri: str) -> Dict[str, Tuple[float, int]]:
    """slice -> (the candidate's gate metric, its example count), from TFMA's output."""
    metric = cfg.gate_metric.tfma_name
    values = {}
    for name, metrics in report.read_evaluation(evaluation_uri)["slices"]:
        value = metrics.get(metric, {}).get("candidate")
        if value is not None:
            count = metrics.get("example_count", {}).get("candidate", 0)
            values[name] = (value, int(count))
    return values


def read_outcome(cfg, run_id: Optional[str] = None) -> Outcome:
    """The outcome of run ``run_id`` of ``cfg``'s pipeline (default: the newest)."""
    run = report.read_run(cfg.resolved_metadata_path, cfg.pipeline_name, run_id)
    components = [(c.node_id, c.state, c.seconds) for c in run.components.values()]
    slices: Dict[str, Tuple[float, int]] = {}
    evaluation = run.artifact(nodes.EVALUATOR, "evaluation")
    if evaluation is not None:
        try:
            slices = _slice_values(cfg, evaluation.uri)
        except Exception as e:  # an unreadable evaluation is a missing number, not a failed run
            log.warning("cannot read the evaluation at %s: %s", evaluation.uri, e)
    blessing = run.artifact(nodes.EVALUATOR, "blessing")
    verdict = run_summary.blessing_from(blessing.mlmd_artifact) if blessing is not None else None
    push = report.push_section(run, _describe_gate(cfg), cfg.resolved_pipeline_root)
    pushed = push["push"]
    metric = cfg.gate_metric
    return Outcome(
        run_id=run.run_id, components=components, gate_metric=metric.name, higher_is_better=metric.higher_is_better,
        gate_value=slices.get(OVERALL, (None, 0))[0], slices=slices,
        evaluated=run.components.get(nodes.EVALUATOR) is not None
        and run.components[nodes.EVALUATOR].state == "executed",
        blessed=verdict[0] if verdict else None, infra_blessed=push["infra_blessed"], infra_reason=push["infra_reason"],
        pushed=(pushed.get("version") or None) if pushed.get("note") is None and pushed.get("pushed")
        and not pushed.get("cached") else None,
        push_cached=bool(pushed.get("cached")),
        why_not_pushed=pushed.get("why", "") or pushed.get("note") or "")


def _describe_gate(cfg) -> str:
    from pipeline.evaluation import describe_gate

    return describe_gate(cfg)


def moved_slices(before: Outcome, after: Outcome, limit: int = 3) -> List[Tuple[str, float, float, int]]:
    """The slices whose gate metric changed most between two outcomes: (slice, before, after, examples)."""
    common = [name for name in after.slices if name in before.slices and name != OVERALL]
    moved = sorted(common, key=lambda n: abs(after.slices[n][0] - before.slices[n][0]), reverse=True)
    return [(n, before.slices[n][0], after.slices[n][0], after.slices[n][1]) for n in moved[:limit]
            if after.slices[n][0] != before.slices[n][0]]
