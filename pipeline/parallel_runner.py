"""TFX's LocalDagRunner, but components whose inputs are ready run at the same time.

LocalDagRunner (TFX 1.16) launches one component after another ("TODO(b/171319478): ... used
multi-threaded execution so that independent components can be run in parallel"). After the
Trainer, the Evaluator, the InfraValidator and the TFLite branch depend only on it; before the
Transform, the schema import needs nothing. Each launch here is exactly LocalDagRunner's (the same
`Launcher`, its own MLMD connection, the same log lines); only the order is a DAG walk over the
IR's ``upstream_nodes`` with up to ``max_parallel`` launches in threads. A failed component stops
new launches; those already running finish, then the first error is raised. Among ready components,
what the served model waits for (``first``: the Pusher and its upstream) starts before a side branch.
"""
from __future__ import annotations

import concurrent.futures
import datetime
import threading
from typing import Callable, Dict, Iterable, List, Optional, Set

from absl import logging
from tfx.dsl.compiler import constants
from tfx.orchestration import metadata
from tfx.orchestration.local import runner_utils
from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.orchestration.portable import launcher, runtime_parameter_utils
from tfx.proto.orchestration import pipeline_pb2
from tfx.utils import telemetry_utils


class RunStopped(RuntimeError):
    """The run was asked to stop (``stop`` set): the components that were running finished, no other started."""


class ParallelLocalDagRunner(LocalDagRunner):
    """``first``: node ids launched before other ready nodes (with what they need first: e.g. the Pusher, so
    that the served model does not wait for a side branch). ``stop``: once set, no new component starts; the
    running ones finish, then the run raises RunStopped."""

    def __init__(self, max_parallel: int = 2, *, first: Iterable[str] = (), stop: Optional[threading.Event] = None,
                 first_alone: bool = False, on_launch: Optional[Callable[[str], None]] = None,
                 on_done: Optional[Callable[[str], None]] = None):
        super().__init__()
        self.max_parallel = max_parallel
        self.first = set(first)
        self.stop = stop or threading.Event()
        self.first_alone = first_alone  # True: nothing else starts before ``first`` and its upstream are done
        self.on_launch = on_launch      # called with a node id in its thread before it is launched
        self.on_done = on_done          # called with a node id in its thread once it completed (or was cached)

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
        needed = _upstream_closure(self.first, nodes)
        nodes = [n for n in nodes if n.node_info.id in needed] + [n for n in nodes if n.node_info.id not in needed]

        def launch(pipeline_node) -> None:
            node_id = pipeline_node.node_info.id
            component_launcher = launcher.Launcher(
                pipeline_node=pipeline_node,
                mlmd_connection=metadata.Metadata(connection_config),
                pipeline_info=pipeline.pipeline_info,
                pipeline_runtime_spec=pipeline.runtime_spec,
                executor_spec=runner_utils.extract_executor_spec(deployment_config, node_id),
                custom_driver_spec=runner_utils.extract_custom_driver_spec(deployment_config, node_id))
            if self.on_launch is not None:
                self.on_launch(node_id)
            logging.info("Component %s is running.", node_id)
            component_launcher.launch()
            logging.info("Component %s is finished.", node_id)
            if self.on_done is not None:
                self.on_done(node_id)

        done: Set[str] = set()
        started: Set[str] = set()
        running: Dict[concurrent.futures.Future, str] = {}
        error: Optional[BaseException] = None
        with telemetry_utils.scoped_labels({telemetry_utils.LABEL_TFX_RUNNER: "local"}), \
                concurrent.futures.ThreadPoolExecutor(self.max_parallel, thread_name_prefix="component") as pool:
            while True:
                if error is None and not self.stop.is_set():
                    for node in nodes:
                        node_id = node.node_info.id
                        if node_id in started or len(running) >= self.max_parallel:
                            continue
                        if self.first_alone and node_id not in needed and not needed <= done:
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
        if self.stop.is_set() and len(done) < len(nodes):
            raise RunStopped(f"stopped before {', '.join(n.node_info.id for n in nodes if n.node_info.id not in done)}")
        if len(done) < len(nodes):
            raise RuntimeError(f"components never became ready: {sorted(set(n.node_info.id for n in nodes) - done)}")


def _upstream_closure(first: Set[str], nodes: List) -> Set[str]:
    """The node ids of ``first`` (those in the pipeline) and of everything upstream of them."""
    by_id = {node.node_info.id: node for node in nodes}
    needed, pending = set(), [node_id for node_id in first if node_id in by_id]
    while pending:
        node_id = pending.pop()
        if node_id not in needed:
            needed.add(node_id)
            pending.extend(by_id[node_id].upstream_nodes)
    return needed
