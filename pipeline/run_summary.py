"""What pipeline runs did, read from MLMD: the runs, which components executed or were cached, their outputs,
the blessings. The one place that opens the store and queries a run's contexts, executions and artifacts
(the run report reads a run through it: pipeline/report/runs.py)."""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, Iterable, List, Optional, Tuple

from tfxp import nodes

# MLMD execution states, by name (ml_metadata.proto.metadata_store_pb2.Execution.State).
EXECUTED, CACHED, FAILED = "COMPLETE", "CACHED", "FAILED"


def open_store(metadata_path: str, writable: bool = False):
    """The MLMD store in the sqlite file ``metadata_path`` (read-only unless ``writable``)."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    mode = metadata_store_pb2.SqliteMetadataSourceConfig
    config.sqlite.connection_mode = mode.READWRITE if writable else mode.READONLY
    return metadata_store.MetadataStore(config)


def pipeline_runs(store, pipeline_name: str) -> List[Any]:
    """``pipeline_name``'s pipeline_run contexts, oldest first (by their newest execution: a run that is
    still going is the newest). pipeline_run contexts do not name their pipeline: a run is the
    pipeline's when one of its executions is."""
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is None:
        return []
    mine = {e.id: e for e in store.get_executions_by_context(pipeline.id)}
    runs = []
    for run in store.get_contexts_by_type("pipeline_run"):
        executions = [mine[e.id] for e in store.get_executions_by_context(run.id) if e.id in mine]
        if executions:
            runs.append((max((e.create_time_since_epoch, e.id) for e in executions), run))
    return [run for _, run in sorted(runs, key=lambda pair: pair[0])]


def open_runs(metadata_path: str, pipeline_name: str):
    """(the MLMD store, read-only; ``pipeline_name``'s runs, oldest first); FileNotFoundError when it has none."""
    if not os.path.exists(metadata_path):
        raise FileNotFoundError(f"no run of pipeline {pipeline_name!r}: the metadata file {metadata_path} "
                                f"does not exist (run `tfxp run` first)")
    store = open_store(metadata_path)
    runs = pipeline_runs(store, pipeline_name)
    if not runs:
        raise FileNotFoundError(f"no run of pipeline {pipeline_name!r} in {metadata_path}: run `tfxp run` first")
    return store, runs


@dataclasses.dataclass
class RunNodes:
    """The pipeline's nodes in one run. Resolvers (the baseline lookup) re-resolve every run; they are not
    components and are in neither list."""
    executions: Dict[str, Any]     # node id -> its MLMD execution in the run
    not_run: List[str]             # the pipeline's other nodes (seen in other runs), sorted
    type_names: Dict[int, str]     # execution type id -> its name, e.g. tfx.components.trainer.component.Trainer


def run_nodes(store, pipeline_name: str, run) -> RunNodes:
    """The nodes of ``pipeline_name`` that executed in ``run`` (a pipeline_run context), and those that did not."""
    in_run = {e.id for e in store.get_executions_by_context(run.id)}
    type_names = {t.id: t.name for t in store.get_execution_types()}
    prefix = pipeline_name + "."
    executions: Dict[str, Any] = {}
    not_run = []
    for node in store.get_contexts_by_type("node"):
        if not node.name.startswith(prefix):
            continue
        node_id, resolver = node.name[len(prefix):], False
        for execution in store.get_executions_by_context(node.id):
            if type_names[execution.type_id].endswith("Resolver"):
                resolver = True
            elif execution.id in in_run:
                executions[node_id] = execution
        if not resolver and node_id not in executions:
            not_run.append(node_id)
    return RunNodes(executions, sorted(not_run), type_names)


def output_artifacts(store, execution_ids: Iterable[int]) -> Dict[int, Dict[str, list]]:
    """{execution id: {output key: [MLMD artifact, ...]}} of the executions ``execution_ids``. A cached
    execution has output events too, to the artifacts it reuses."""
    from ml_metadata.proto import metadata_store_pb2

    ids = list(execution_ids)
    events = [e for e in (store.get_events_by_execution_ids(ids) if ids else [])
              if e.type == metadata_store_pb2.Event.OUTPUT and e.path.steps]
    artifacts = {a.id: a for a in store.get_artifacts_by_id(list({e.artifact_id for e in events}))} if events else {}
    found: Dict[int, Dict[str, list]] = {}
    for event in events:
        found.setdefault(event.execution_id, {}).setdefault(event.path.steps[0].key, []).append(
            artifacts[event.artifact_id])
    return found


def latest_run_states(metadata_path: str, pipeline_name: str) -> Dict[str, str]:
    """{node id: 'COMPLETE' | 'CACHED' | 'FAILED' | ...} for the newest run of ``pipeline_name``."""
    from ml_metadata.proto import metadata_store_pb2

    store = open_store(metadata_path)
    runs = pipeline_runs(store, pipeline_name)
    if not runs:
        return {}
    return {node: metadata_store_pb2.Execution.State.Name(execution.last_known_state)
            for node, execution in run_nodes(store, pipeline_name, runs[-1]).executions.items()}


def latest_output_uri(metadata_path: str, pipeline_name: str, node_id: str, output_key: str):
    """URI of ``node_id``'s ``output_key`` artifact in its newest execution (executed or cached), or None."""
    artifact = latest_output_artifact(metadata_path, pipeline_name, node_id, output_key)
    return artifact.uri if artifact is not None else None


def latest_output_artifact(metadata_path: str, pipeline_name: str, node_id: str, output_key: str):
    """``node_id``'s ``output_key`` MLMD artifact in its newest execution (executed or cached), or None."""
    from ml_metadata.proto import metadata_store_pb2

    store = open_store(metadata_path)
    node = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node_id}")
    if node is None:
        return None
    executions = [e for e in store.get_executions_by_context(node.id)
                  if e.last_known_state in (metadata_store_pb2.Execution.COMPLETE,
                                            metadata_store_pb2.Execution.CACHED)]
    if not executions:
        return None
    latest = max(executions, key=lambda e: (e.create_time_since_epoch, e.id))
    found = output_artifacts(store, [latest.id]).get(latest.id, {}).get(output_key)
    return found[0] if found else None


Blessing = Optional[Tuple[bool, str]]  # (blessed, reason), or None: no blessing


def blessing_of(metadata_path: str, pipeline_name: str, node_id: str) -> Blessing:
    """(blessed, reason) of ``node_id``'s newest blessing, or None when it has none."""
    return blessing_from(latest_output_artifact(metadata_path, pipeline_name, node_id, "blessing"))


def blessing_from(artifact) -> Blessing:
    """(blessed, reason) of an MLMD blessing artifact, or None when it records no verdict."""
    if artifact is None or "blessed" not in artifact.custom_properties:
        return None
    reason = artifact.custom_properties["reason"].string_value if "reason" in artifact.custom_properties else ""
    return bool(artifact.custom_properties["blessed"].int_value), reason


def why_not_pushed(evaluation: Blessing, infra: Blessing, gate: str, pipeline_root: str) -> str:
    """Why a candidate was not pushed, from the blessings of the Evaluator (whose gate is ``gate``, in
    words) and the InfraValidator; "" when neither refused it."""
    reasons = []
    if evaluation is not None and not evaluation[0]:
        reasons.append(f"the Evaluator did not bless it (its gate: {gate}; see the evaluator "
                       f"output under {pipeline_root})")
    if infra is not None and not infra[0]:
        reasons.append(f"the InfraValidator did not bless it: a model server could not serve it ({infra[1]})")
    return "; ".join(reasons)


def format_states(states: Dict[str, str]) -> str:
    executed = [n for n, s in states.items() if s == EXECUTED]
    cached = [n for n, s in states.items() if s == CACHED]
    other = [f"{n} ({s.lower()})" for n, s in states.items() if s not in (EXECUTED, CACHED)]
    lines = [f"  executed: {', '.join(executed) or '-'}", f"  cached:   {', '.join(cached) or '-'}"]
    if other:
        lines.append(f"  other:    {', '.join(other)}")
    return "\n".join(lines)


def latest_pipeline_outputs(cfg) -> Dict[str, str]:
    """URIs of the latest Trainer model and Transform outputs of ``cfg``'s pipeline."""
    found = {}
    for node, key in [(nodes.TRAINER, "model"), (nodes.TRANSFORM, "transform_graph"),
                      (nodes.TRANSFORM, "transformed_examples")]:
        uri = latest_output_uri(cfg.resolved_metadata_path, cfg.pipeline_name, node, key) \
            if os.path.exists(cfg.resolved_metadata_path) else None
        if uri is None:
            raise FileNotFoundError(f"no {node} output of pipeline {cfg.pipeline_name!r} in "
                                    f"{cfg.resolved_metadata_path}: run `make run` (or `tfxp run`) first")
        found[key] = uri
    return found
