"""Reading a run's component states from a real MLMD (sqlite) store shared by two pipelines,
laid out as TFX records runs: pipeline, pipeline_run and node contexts around each execution."""
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

from pipeline import run_summary


def _store(path):
    config = mlmd.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = mlmd.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return metadata_store.MetadataStore(config)


def _record_run(store, pipeline, run_name, states, types):
    pipeline_ctx = store.get_context_by_type_and_name("pipeline", pipeline)
    if pipeline_ctx is None:
        pipeline_ctx = mlmd.Context(type_id=types["pipeline"], name=pipeline)
        pipeline_ctx.id = store.put_contexts([pipeline_ctx])[0]
    run_ctx = mlmd.Context(type_id=types["pipeline_run"], name=run_name)
    run_ctx.id = store.put_contexts([run_ctx])[0]
    for node, state in states.items():
        node_name = f"{pipeline}.{node}"
        node_ctx = store.get_context_by_type_and_name("node", node_name)
        if node_ctx is None:
            node_ctx = mlmd.Context(type_id=types["node"], name=node_name)
            node_ctx.id = store.put_contexts([node_ctx])[0]
        execution_type = types["Resolver" if node.endswith("resolver") else "Executor"]
        execution = mlmd.Execution(type_id=execution_type, last_known_state=state)
        execution_id = store.put_executions([execution])[0]
        store.put_attributions_and_associations(
            [], [mlmd.Association(context_id=c.id, execution_id=execution_id)
                 for c in (pipeline_ctx, run_ctx, node_ctx)])


def test_states_are_those_of_the_named_pipelines_newest_run(tmp_path):
    store = _store(tmp_path / "metadata.db")
    types = {name: store.put_context_type(mlmd.ContextType(name=name)) for name in ("pipeline", "pipeline_run", "node")}
    types["Executor"] = store.put_execution_type(mlmd.ExecutionType(name="tfx.components.trainer.component.Trainer"))
    types["Resolver"] = store.put_execution_type(mlmd.ExecutionType(name="tfx.dsl.components.common.resolver.Resolver"))

    _record_run(store, "taxi", "run-1", {"Trainer": mlmd.Execution.COMPLETE, "pusher": mlmd.Execution.COMPLETE}, types)
    _record_run(store, "taxi", "run-2", {"Trainer": mlmd.Execution.CACHED, "pusher": mlmd.Execution.CACHED,
                                         "latest_blessed_model_resolver": mlmd.Execution.COMPLETE}, types)
    # Another pipeline runs later in the same database.
    _record_run(store, "other", "run-3", {"Trainer": mlmd.Execution.FAILED}, types)

    path = str(tmp_path / "metadata.db")
    assert run_summary.latest_run_states(path, "taxi") == {"Trainer": "CACHED", "pusher": "CACHED"}
    assert run_summary.latest_run_states(path, "other") == {"Trainer": "FAILED"}
    assert run_summary.latest_run_states(path, "nobody") == {}
