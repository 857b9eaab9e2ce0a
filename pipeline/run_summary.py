"""What pipeline runs did, read from MLMD: the runs, which components executed or were cached, the blessings."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

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


def run_executions(store, pipeline_name: str, run) -> Dict[str, Any]:
    """{node id: its MLMD execution} of the components in ``run`` (a pipeline_run context)."""
    in_run = {e.id for e in store.get_executions_by_context(run.id)}
    type_names = {t.id: t.name for t in store.get_execution_types()}
    prefix = pipeline_name + "."
    found = {}
    for node in store.get_contexts_by_type("node"):
        if not node.name.startswith(prefix):
            continue
        for execution in store.get_executions_by_context(node.id):
            # Resolvers (the baseline lookup) re-resolve every run; they are not components.
            if execution.id in in_run and not type_names[execution.type_id].endswith("Resolver"):
                found[node.name[len(prefix):]] = execution
    return found


def latest_run_states(metadata_path: str, pipeline_name: str) -> Dict[str, str]:
    """{node id: 'COMPLETE' | 'CACHED' | 'FAILED' | ...} for the newest run of ``pipeline_name``."""
    from ml_metadata.proto import metadata_store_pb2

    store = open_store(metadata_path)
    runs = pipeline_runs(store, pipeline_name)
    if not runs:
        return {}
    return {node: metadata_store_pb2.Execution.State.Name(execution.last_known_state)
            for node, execution in run_executions(store, pipeline_name, runs[-1]).items()}


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
    events = [e for e in store.get_events_by_execution_ids([latest.id])
              if e.type == metadata_store_pb2.Event.OUTPUT
              and any(step.key == output_key for step in e.path.steps)]
    if not events:
        return None
    return store.get_artifacts_by_id([events[0].artifact_id])[0]


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
    import os

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
