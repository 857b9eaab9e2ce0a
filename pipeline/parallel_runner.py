"""TFX's LocalDagRunner, but components whose inputs are ready run at the same time.

LocalDagRunner (TFX 1.16) launches one component after another ("TODO(b/171319478): ... used
multi-threaded execution so that independent components can be run in parallel"). After the
Trainer, the Evaluator, the InfraValidator and the TFLite branch depend only on it; before the
Transform, the schema import needs nothing. Each launch here is exactly LocalDagRunner's (the same
`Launcher`, its own MLMD connection, the same log lines); only the order is a DAG walk over the
IR's ``upstream_nodes`` with up to ``max_parallel`` launches in threads. A failed component stops
new launches; those already running finish, then the first error is raised.
"""
from __future__ import annotations

import concurrent.futures
import datetime
from typing import Dict, Optional, Set

from absl import logging
from tfx.dsl.compiler import constants
from tfx.orchestration import metadata
from tfx.orchestration.local import runner_utils
from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.orchestration.portable import launcher, runtime_parameter_utils
from tfx.proto.orchestration import pipeline_pb2
from tfx.utils import telemetry_utils


class ParallelLocalDagRunner(LocalDagRunner):

    def __init__(self, max_parallel: int = 2):
        super().__init__()
        self.max_parallel = max_parallel

    def run_with_ir(self, pipeline: pipeline_pb2.Pipeline,
                    run_options: Optional[pipeline_pb2.RunOptions] = None) -> None:
        if run_options is not None or self.max_parallel <= 1:
            return super().run_with_ir(pipeline, run_options)  # partial runs: TFX's own walk
        runtime_parameter_utils.substitute_runtime_parameter(
            pipeline, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: datetime.datetime.now().isoformat()})
        deployment_config = runner_utils.extract_local_deployment_config(pipeline)
        connection_config = getattr(
            deployment_config.metadata_connection_config,
            deployment_config.metadata_connection_config.WhichOneof("connection_config"))
        nodes = [node.pipeline_node for node in pipeline.nodes]  # topological order

        def launch(pipeline_node) -> None:
            node_id = pipeline_node.node_info.id
            component_launcher = launcher.Launcher(
                pipeline_node=pipeline_node,
                mlmd_connection=metadata.Metadata(connection_config),
                pipeline_info=pipeline.pipeline_info,
                pipeline_runtime_spec=pipeline.runtime_spec,
                executor_spec=runner_utils.extract_executor_spec(deployment_config, node_id),
                custom_driver_spec=runner_utils.extract_custom_driver_spec(deployment_config, node_id))
            logging.info("Component %s is running.", node_id)
            component_launcher.launch()
            logging.info("Component %s is finished.", node_id)

        done: Set[str] = set()
        started: Set[str] = set()
        running: Dict[concurrent.futures.Future, str] = {}
        error: Optional[BaseException] = None
        with telemetry_utils.scoped_labels({telemetry_utils.LABEL_TFX_RUNNER: "local"}), \
                concurrent.futures.ThreadPoolExecutor(self.max_parallel, thread_name_prefix="component") as pool:
            while True:
                if error is None:
                    for node in nodes:
                        node_id = node.node_info.id
                        if node_id in started or len(running) >= self.max_parallel:
                            continue
                        if set(node.upstream_nodes) <= done:
                            started.add(node_id)
                            if node.execution_options.HasField("skip"):
                                logging.info("Skipping component %s.", node_id)
                                done.add(node_id)
                                continue
                            running[pool.submit(launch, node)] = node_id
                if not running:
                    break
                finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in finished:
                    node_id = running.pop(future)
                    if future.exception() is not None:
                        error = error or future.exception()
                    else:
                        done.add(node_id)
        if error is not None:
            raise error
        if len(done) < len(nodes):
            raise RuntimeError(f"components never became ready: {sorted(set(n.node_info.id for n in nodes) - done)}")
