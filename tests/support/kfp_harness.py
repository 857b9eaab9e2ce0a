"""Runs a compiled KFP v2 PipelineSpec (what `tfxp compile` writes) task by task, as Kubeflow would.

Each container task runs the IR's own command and arguments (TFX's v2 container entrypoint,
``kubeflow_v2_run_executor``) in a fresh process and an empty working directory, with the
``{{$}}`` placeholder replaced by an ExecutorInput built from the IR: constant parameters from
the task, run parameters (``componentInputParameter``) as Kubeflow's driver resolves them (the run's
``parameter_values``, else the root's ``inputDefinitions`` defaults), input artifacts from the upstream
tasks' ``executor_output.json`` (their metadata, e.g. ``split_names`` or ``blessed``), artifact types from the component definitions (the output file
omits them), and output URIs under ``<pipeline_root>/<run>/<task>/<key>`` as Kubeflow lays them
out. Resolver tasks are MLMD queries that Kubeflow's driver answers, not containers: on a
pipeline's first run nothing is blessed yet, so they resolve to no artifact.

After each task, the working directory must still be empty: code that treats a ``gs://`` URI as a
local path (``os.makedirs``, ``open``) silently creates ``./gs:/...`` there.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from typing import Any, Dict, List, Optional, Set


class TaskFailed(AssertionError):
    pass


def _tasks(spec) -> Dict:
    return spec["root"]["dag"]["tasks"]


def _upstream(spec, name) -> Set[str]:
    task = _tasks(spec)[name]
    upstream = set(task.get("dependentTasks", []))
    return upstream | {a["taskOutputArtifact"]["producerTask"] for a in task.get("inputs", {}).get("artifacts", {}).values()
                       if "taskOutputArtifact" in a}


def topological_order(spec) -> List[str]:
    tasks, order, done = _tasks(spec), [], set()

    def visit(name):
        if name in done:
            return
        for dependency in sorted(_upstream(spec, name)):
            visit(dependency)
        done.add(name)
        order.append(name)

    for name in sorted(tasks):
        visit(name)
    return order


def _component(spec, task_name):
    return spec["components"][_tasks(spec)[task_name]["componentRef"]["name"]]


def _artifact_type(definition) -> Dict:
    artifact_type = definition["artifactType"]
    return ({"instanceSchema": artifact_type["instanceSchema"]} if "instanceSchema" in artifact_type
            else {"schemaTitle": artifact_type["schemaTitle"]})


def _executor(spec, task_name):
    return spec["deploymentSpec"]["executors"][_component(spec, task_name)["executorLabel"]]


def run_parameters(spec, parameter_values: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The run's parameters as Kubeflow's driver resolves them: the given values, else the root's defaults."""
    definitions = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    unknown = sorted(set(parameter_values or {}) - set(definitions))
    if unknown:
        raise TaskFailed(f"the pipeline has no parameter(s) {unknown}; it has {sorted(definitions)}")
    values = {name: d["defaultValue"] for name, d in definitions.items() if "defaultValue" in d}
    values.update(parameter_values or {})
    missing = sorted(set(definitions) - set(values))
    if missing:
        raise TaskFailed(f"parameter(s) {missing} have no default and no value for this run")
    return values


class CompiledPipelineRun:
    """One run of the compiled pipeline; ``outputs[task][key]`` are the artifacts each task wrote,
    ``peak_rss_mb[task]`` the most memory its process and their children held resident at once (sampled)."""

    def __init__(self, spec: Dict, pipeline_root: str, run_name: str, env: Dict[str, str], timeout: float = 900,
                 parameter_values: Optional[Dict[str, Any]] = None):
        self.spec, self.pipeline_root, self.run_name = spec, pipeline_root.rstrip("/"), run_name
        self.env, self.timeout = env, timeout
        self.parameters = run_parameters(spec, parameter_values)
        self.outputs: Dict[str, Dict[str, List[Dict]]] = {}
        self.logs: Dict[str, str] = {}
        self.seconds: Dict[str, float] = {}
        self.peak_rss_mb: Dict[str, float] = {}

    def run_all(self, parallel: int = 2) -> List[str]:
        """Runs every task once its upstream tasks are done, up to ``parallel`` at a time (Kubeflow runs
        independent tasks at once too); returns the container tasks in the order they finished."""
        order, ran, running, done = topological_order(self.spec), [], {}, set()
        with futures.ThreadPoolExecutor(max_workers=parallel) as pool:
            while len(done) < len(order):
                progressed = False
                for name in order:
                    if name in done or name in running or not _upstream(self.spec, name) <= done:
                        continue
                    if "container" not in _executor(self.spec, name):
                        # A resolver: the latest blessed model, of which there is none on a first run.
                        outputs = _component(self.spec, name).get("outputDefinitions", {}).get("artifacts", {})
                        self.outputs[name] = {key: [] for key in outputs}
                        done.add(name)
                        progressed = True
                    elif len(running) < parallel:
                        running[name] = pool.submit(self.run_task, name)
                if not running:
                    if not progressed:
                        raise TaskFailed(f"no task can start: {sorted(set(order) - done)} wait on each other")
                    continue
                finished, _ = futures.wait(running.values(), return_when=futures.FIRST_COMPLETED)
                for name in [n for n, f in running.items() if f in finished]:
                    running.pop(name).result()  # a failed task raises TaskFailed here
                    done.add(name)
                    ran.append(name)
        return ran

    def _inputs(self, task_name) -> Dict:
        task = _tasks(self.spec)[task_name]
        artifacts = {}
        for key, source in task.get("inputs", {}).get("artifacts", {}).items():
            producer = source["taskOutputArtifact"]
            artifacts[key] = {"artifacts": self.outputs[producer["producerTask"]][producer["outputArtifactKey"]]}
        parameters = {}
        for key, value in task.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in value:
                parameters[key] = self.parameters[value["componentInputParameter"]]
            else:
                parameters[key] = value["runtimeValue"]["constant"]
        return {"artifacts": artifacts, "parameterValues": parameters}

    def _declared_outputs(self, task_name: str) -> Dict:
        """The task's output artifacts where Kubeflow puts them: <pipeline_root>/<run>/<task>/<key>."""
        definitions = _component(self.spec, task_name).get("outputDefinitions", {}).get("artifacts", {})
        return {key: {"artifacts": [{
            "name": f"{self.run_name}-{task_name}-{key}",
            "uri": f"{self.pipeline_root}/{self.run_name}/{task_name}/{key}",
            "type": _artifact_type(definition)}]} for key, definition in definitions.items()}

    def assume_upstream_ran(self, task_name: str) -> None:
        """For one task run alone: its upstream tasks' outputs as declared (their URIs, no metadata)."""
        for upstream in _upstream(self.spec, task_name):
            if "container" in _executor(self.spec, upstream):
                self.outputs[upstream] = {key: value["artifacts"]
                                          for key, value in self._declared_outputs(upstream).items()}

    def entrypoint_args(self, task_name: str, output_file: str) -> List[str]:
        """The IR's arguments of the task's container, its ExecutorInput in place of ``{{$}}``."""
        container = _executor(self.spec, task_name)["container"]
        executor_input = {"inputs": self._inputs(task_name),
                          "outputs": {"artifacts": self._declared_outputs(task_name), "outputFile": output_file}}
        return [json.dumps(executor_input) if a == "{{$}}" else a for a in container["args"]]

    def run_task(self, task_name: str, task_root: Optional[str] = None) -> Dict:
        """Runs one task. ``task_root``: where its executor_output.json goes, whose folder TFX's entrypoint also
        makes the executor's temp dir (Kubeflow's gcsOutputDirectory: gs://); default: a local temp folder."""
        container = _executor(self.spec, task_name)["container"]
        outputs = self._declared_outputs(task_name)
        with tempfile.TemporaryDirectory(prefix=f"kfp-{task_name}-") as workdir:
            output_file = (f"{task_root.rstrip('/')}/{task_name}/executor_output.json" if task_root else
                           os.path.join(tempfile.mkdtemp(prefix="kfp-out-"), "executor_output.json"))
            args = self.entrypoint_args(task_name, output_file)
            command = [sys.executable] + container["command"][1:]  # the image's `python`: this environment's
            start = time.monotonic()
            returncode, stderr, peak_mb = _run(command + args, workdir, self.env, self.timeout)
            self.seconds[task_name] = time.monotonic() - start
            self.logs[task_name] = stderr
            self.peak_rss_mb[task_name] = peak_mb
            if returncode is None:
                raise TaskFailed(f"task {task_name} took more than {self.timeout:.0f} s:\n{stderr[-6000:]}")
            if returncode != 0:
                raise TaskFailed(f"task {task_name} failed (exit {returncode}):\n{stderr[-6000:]}")
            leftovers = os.listdir(workdir)
            if leftovers:
                raise TaskFailed(f"task {task_name} wrote to the local disk instead of the artifact store: "
                                 f"{leftovers} in its working directory")
        from tfx.dsl.io import fileio

        with fileio.open(output_file) as f:
            written = json.load(f).get("artifacts", {})
        self.outputs[task_name] = {}
        for key, declared in outputs.items():
            artifact = dict(declared["artifacts"][0])
            produced = written.get(key, {}).get("artifacts", [{}])[0]
            artifact["metadata"] = produced.get("metadata", {})
            artifact["uri"] = produced.get("uri", artifact["uri"])
            self.outputs[task_name][key] = [artifact]
        return self.outputs[task_name]


def _resident_mb(pid: int) -> float:
    """Resident memory of the process and its children now (Beam's and the launcher's worker processes), MB."""
    import psutil

    try:
        process = psutil.Process(pid)
        tree = [process] + process.children(recursive=True)
    except psutil.Error:
        return 0.0
    total = 0
    for member in tree:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total / 2 ** 20


def _run(command: List[str], cwd: str, env: Dict[str, str], timeout: float):
    """(exit code or None when killed at the timeout, stderr, peak resident MB of its process tree, sampled every
    0.2 s) of one task's process."""
    with tempfile.TemporaryFile(mode="w+") as stderr:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
        deadline, peak_mb = time.monotonic() + timeout, 0.0
        try:
            while process.poll() is None and time.monotonic() < deadline:
                peak_mb = max(peak_mb, _resident_mb(process.pid))
                time.sleep(0.2)
        finally:
            timed_out = process.poll() is None
            if timed_out:
                process.kill()
                process.wait()
        stderr.seek(0)
        return None if timed_out else process.returncode, stderr.read(), peak_mb
