"""One pipeline run as the report sees it: its components (state, times, what a failure recorded) and
their output artifacts, read from MLMD through pipeline/run_summary.py."""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional

from pipeline import run_summary
from pipeline.report.formats import last_line

# MLMD execution states in the report's words.
STATES = {"COMPLETE": "executed", "CACHED": "cached", "FAILED": "failed", "RUNNING": "running", "NEW": "running",
          "CANCELED": "canceled", "UNKNOWN": "unknown"}
FINISHED = ("executed", "cached", "failed")


@dataclasses.dataclass
class Component:
    node_id: str
    type_name: str                 # the component's class, e.g. Trainer
    state: str                     # a value of STATES
    start_ms: int
    end_ms: Optional[int]          # None while unfinished: MLMD's update time is not its end then
    message: str                   # what was recorded of a failure or cancellation ("" when nothing)
    outputs: Dict[str, list]       # TFX artifacts, by output key

    @property
    def done(self) -> bool:
        return self.state in ("executed", "cached")

    @property
    def seconds(self) -> Optional[float]:
        return None if self.end_ms is None else (self.end_ms - self.start_ms) / 1000


@dataclasses.dataclass
class Run:
    pipeline_name: str
    run_id: str
    is_latest: bool
    components: Dict[str, Component]   # in the order they started
    not_run: List[str]                 # the pipeline's nodes seen in other runs, absent from this one

    @property
    def start_ms(self) -> int:
        return min((c.start_ms for c in self.components.values()), default=0)

    @property
    def end_ms(self) -> int:
        return max([c.end_ms for c in self.components.values() if c.end_ms is not None] + [self.start_ms])

    def in_state(self, state: str) -> List[str]:
        return [c.node_id for c in self.components.values() if c.state == state]

    def artifact(self, node_id: str, key: str):
        """``node_id``'s first output artifact under ``key`` when it completed in this run, else None."""
        component = self.components.get(node_id)
        found = component.outputs.get(key) if component is not None and component.done else None
        return found[0] if found else None

    def missing(self, node_id: str) -> Optional[str]:
        """None when ``node_id`` completed in this run (executed or cached), else why it has no output."""
        component = self.components.get(node_id)
        if component is None:
            stopped = self.in_state("failed") or self.in_state("running") or self.in_state("canceled")
            return f"{node_id} did not run in this run" + (" (the run stopped before it)" if stopped else "")
        if component.state == "failed":
            return f"{node_id} failed" + (f": {last_line(component.message)}" if component.message else "")
        if not component.done:
            return f"{node_id} is {component.state}" + (f": {component.message}" if component.message else "")
        return None


def read_run(metadata_path: str, pipeline_name: str, run_id: Optional[str] = None) -> Run:
    """Run ``run_id`` of ``pipeline_name`` (default: its newest), with each component's artifacts."""
    store, runs = run_summary.open_runs(metadata_path, pipeline_name)
    run = runs[-1] if run_id is None else next((r for r in runs if r.name == run_id), None)
    if run is None:
        raise FileNotFoundError(f"no run {run_id!r} of pipeline {pipeline_name!r} in {metadata_path}; its newest "
                                f"runs: {', '.join(r.name for r in runs[-5:])}")
    nodes = run_summary.run_nodes(store, pipeline_name, run)
    outputs = _tfx_artifacts(store, run_summary.output_artifacts(store, [e.id for e in nodes.executions.values()]))
    components = sorted((_component(node_id, execution, nodes.type_names, outputs.get(execution.id, {}))
                         for node_id, execution in nodes.executions.items()), key=lambda c: c.start_ms)
    return Run(pipeline_name, run.name, run.id == runs[-1].id, {c.node_id: c for c in components}, nodes.not_run)


def _tfx_artifacts(store, outputs: Dict[int, Dict[str, list]]) -> Dict[int, Dict[str, list]]:
    """``outputs`` ({execution id: {key: [MLMD artifact]}}) with TFX artifacts of their classes instead."""
    from tfx.types import artifact_utils

    # The classes artifacts deserialize to (TFX finds only those imported).
    from components.custom import anomalies_gate, tflite_converter  # noqa: F401
    from tfx.types import standard_artifacts  # noqa: F401

    type_ids = {a.type_id for keyed in outputs.values() for found in keyed.values() for a in found}
    types = {t.id: t for t in store.get_artifact_types_by_id(list(type_ids))} if type_ids else {}
    return {execution_id: {key: [artifact_utils.deserialize_artifact(types[a.type_id], a) for a in found]
                           for key, found in keyed.items()}
            for execution_id, keyed in outputs.items()}


def _component(node_id: str, execution, type_names: Dict[int, str], outputs: Dict[str, list]) -> Component:
    from ml_metadata.proto import metadata_store_pb2 as mlmd
    from tfx.orchestration.portable.mlmd import execution_lib

    state = STATES.get(mlmd.Execution.State.Name(execution.last_known_state), "unknown")
    result = execution_lib.get_execution_result(execution, ignore_parse_errors=True)
    abandoned = execution.custom_properties.get("abandoned_by")  # pipeline/run_guard.py
    return Component(node_id, type_names[execution.type_id].rsplit(".", 1)[-1], state,
                     execution.create_time_since_epoch,
                     execution.last_update_time_since_epoch if state in FINISHED else None,
                     (result.result_message if result else "") or (abandoned.string_value if abandoned else ""),
                     outputs)
