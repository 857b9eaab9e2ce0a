"""The few lines `tfxp dev` prints for each iteration, read at a glance:

    iteration 3 (model.py changed)
      served: version 1796243101, 21.4 s after the save: P(big_tipper) = 0.533 (was 0.497) on the first eval example (its label: 0)
      executed  Trainer 14.2 s, evaluator 5.1 s, infra_validator 1.4 s, pusher 0.2 s, tflite_converter 4.0 s, ...
      cached    ImportExampleGen, StatisticsGen, ImportSchemaGen, ExampleValidator, AnomaliesGate, Transform
      accuracy 0.8903 -> 0.8951 (+0.0048); moved most: trip_start_hour=3 0.8125 -> 0.8611 (+0.0486, 144 examples)
      blessed and pushed: version 1796243101, serving on 127.0.0.1:8501 (REST) and :8500 (gRPC)
      done in 30.2 s

The ``served`` line comes as soon as the new version serves; what else the edit affects (the TFLite
branch) runs after it, and the rest comes at the end.
"""
from __future__ import annotations

import dataclasses
import os
from typing import List, Optional, Sequence

from pipeline.run_outcome import Outcome, moved_slices


@dataclasses.dataclass
class Iteration:
    number: int
    changed: List[str]                     # the files whose save started it ([] for the first)
    seconds: float                         # from its start (the save, debounced) to its end
    outcome: Optional[Outcome] = None      # None: it failed before any component ran
    error: str = ""                        # one line: what went wrong, naming the user's file when it can
    served: Optional[int] = None           # the version the server serves after it
    served_after: Optional[float] = None   # seconds from its start until a new version served and answered
    served_error: str = ""                 # a pushed version the server could not load
    prediction: str = ""                   # the new version's answer on the example, in the task's words
    stopped: bool = False


def header(iteration: Iteration) -> str:
    what = ", ".join(os.path.basename(p) for p in iteration.changed) + " changed" if iteration.changed else "start"
    return f"iteration {iteration.number} ({what})"


def served_line(iteration: Iteration, version: int) -> str:
    since = "the save" if iteration.changed else "the start"
    return f"  served: version {version}, {iteration.served_after:.1f} s after {since}: {iteration.prediction}"


def _components(outcome: Outcome, state: str, with_seconds: bool) -> str:
    found = outcome.in_state(state)
    if with_seconds:
        return ", ".join(f"{node} {seconds:.1f} s" if seconds is not None else node for node, seconds in found)
    return ", ".join(node for node, _ in found)


def _signed(value: float) -> str:
    return f"{value:+.4f}"


def gate_line(outcome: Outcome, previous: Optional[Outcome]) -> str:
    """``accuracy 0.8903 -> 0.8951 (+0.0048); moved most: ...``, or the value alone on a first iteration."""
    name, value = outcome.gate_metric, outcome.gate_value
    if value is None:
        return f"{name}: no evaluation in this run"
    before = previous.gate_value if previous is not None else None
    if before is None:
        line = f"{name} {value:.4f}"
    elif before == value:
        line = f"{name} {value:.4f} (unchanged)"
    else:
        line = f"{name} {before:.4f} -> {value:.4f} ({_signed(value - before)})"
    if previous is not None and before is not None and before != value:
        moved = moved_slices(previous, outcome)
        if moved:
            line += "; moved most: " + ", ".join(
                f"{slice_name} {old:.4f} -> {new:.4f} ({_signed(new - old)}, {count} examples)"
                for slice_name, old, new, count in moved)
    return line


def push_line(iteration: Iteration, endpoints: str) -> str:
    outcome = iteration.outcome
    if outcome.pushed:
        if iteration.served_error:
            return f"blessed and pushed: version {outcome.pushed}, but {iteration.served_error}"
        return f"blessed and pushed: version {outcome.pushed}, serving on {endpoints}"
    if outcome.push_cached:
        return f"nothing new to push: version {iteration.served or '-'} still serves"
    return f"not pushed: {outcome.why_not_pushed or 'the Pusher did not run'}"


def format_result(iteration: Iteration, previous: Optional[Outcome], endpoints: str) -> str:
    """The lines after the ``served`` one: components, gate, push, errors, the iteration's time."""
    lines = []
    outcome = iteration.outcome
    if outcome is not None:
        lines.append(f"  executed  {_components(outcome, 'executed', True) or '-'}")
        lines.append(f"  cached    {_components(outcome, 'cached', False) or '-'}")
        for state in ("failed", "canceled", "running"):
            if outcome.in_state(state):
                lines.append(f"  {state:<9} {_components(outcome, state, False)}")
        if not iteration.error and not iteration.stopped:
            lines.append(f"  {gate_line(outcome, previous)}")
            lines.append(f"  {push_line(iteration, endpoints)}")
    if iteration.stopped:
        lines.append("  stopped: the components that were running finished; no other started")
    if iteration.error:
        served = f"version {iteration.served} still serves" if iteration.served else "nothing is served yet"
        lines.append(f"  error: {iteration.error}")
        lines.append(f"  ({served}; fix it and save: the loop reruns)")
    lines.append(f"  done in {iteration.seconds:.1f} s")
    return "\n".join(lines)


def prediction_line(task, output: Sequence[float], label, previous_output: Optional[Sequence[float]]) -> str:
    """The served model's answer in the task's words, beside the previous iteration's and the label."""
    now = task.describe_prediction(output)
    was = f" (was {task.describe_prediction(previous_output)})" if previous_output is not None else ""
    shown = f" (its label: {task.describe_label(label)})" if label is not None else ""
    return f"{now}{was} on the first eval example{shown}"
