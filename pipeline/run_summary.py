"""What the latest pipeline run did, read from MLMD: which components executed, which were cached."""
from __future__ import annotations

from typing import Dict

# MLMD execution states, by name (ml_metadata.proto.metadata_store_pb2.Execution.State).
EXECUTED, CACHED, FAILED = "COMPLETE", "CACHED", "FAILED"


def _store(metadata_path: str):
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def latest_run_states(metadata_path: str, pipeline_name: str) -> Dict[str, str]:
    """{node id: 'COMPLETE' | 'CACHED' | 'FAILED' | ...} for the newest run of ``pipeline_name``."""
    from ml_metadata.proto import metadata_store_pb2

    store = _store(metadata_path)
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is None:
        return {}
    pipeline_executions = store.get_executions_by_context(pipeline.id)
    if not pipeline_executions:
        return {}
    # The run of the pipeline's newest execution (pipeline_run contexts do not name their pipeline).
    newest = max(pipeline_executions, key=lambda e: (e.create_time_since_epoch, e.id))
    run_type = store.get_context_type("pipeline_run").id
    run = next(c for c in store.get_contexts_by_execution(newest.id) if c.type_id == run_type)
    run_executions = {e.id for e in store.get_executions_by_context(run.id)}
    type_names = {t.id: t.name for t in store.get_execution_types()}
    prefix = pipeline_name + "."
    states = {}
    for node in store.get_contexts_by_type("node"):
        if not node.name.startswith(prefix):
            continue
        for execution in store.get_executions_by_context(node.id):
            # Resolvers (the baseline lookup) re-resolve every run; they are not components.
            if execution.id in run_executions and not type_names[execution.type_id].endswith("Resolver"):
                state = metadata_store_pb2.Execution.State.Name(execution.last_known_state)
                states[node.name[len(prefix):]] = state
    return states


def latest_output_uri(metadata_path: str, pipeline_name: str, node_id: str, output_key: str):
    """URI of ``node_id``'s ``output_key`` artifact in its newest execution (executed or cached), or None."""
    artifact = latest_output_artifact(metadata_path, pipeline_name, node_id, output_key)
    return artifact.uri if artifact is not None else None


def latest_output_artifact(metadata_path: str, pipeline_name: str, node_id: str, output_key: str):
    """``node_id``'s ``output_key`` MLMD artifact in its newest execution (executed or cached), or None."""
    from ml_metadata.proto import metadata_store_pb2

    store = _store(metadata_path)
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


def blessing_of(metadata_path: str, pipeline_name: str, node_id: str):
    """(blessed, reason) of ``node_id``'s newest blessing, or None when it has none."""
    artifact = latest_output_artifact(metadata_path, pipeline_name, node_id, "blessing")
    if artifact is None or "blessed" not in artifact.custom_properties:
        return None
    reason = artifact.custom_properties["reason"].string_value if "reason" in artifact.custom_properties else ""
    return bool(artifact.custom_properties["blessed"].int_value), reason


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
    for node, key in [("Trainer", "model"), ("Transform", "transform_graph"),
                      ("Transform", "transformed_examples")]:
        uri = latest_output_uri(cfg.resolved_metadata_path, cfg.pipeline_name, node, key) \
            if os.path.exists(cfg.resolved_metadata_path) else None
        if uri is None:
            raise FileNotFoundError(f"no {node} output of pipeline {cfg.pipeline_name!r} in "
                                    f"{cfg.resolved_metadata_path}: run `make run` (or `tfxp run`) first")
        found[key] = uri
    return found
