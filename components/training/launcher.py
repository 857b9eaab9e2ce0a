"""Runs the Trainer's training in fresh worker processes on this machine (process management only:
each worker runs components/training/worker.py).

Used when the strategy needs a process of its own (TrainingOptions.needs_own_processes):

* multi_worker_mirrored: ``num_workers`` processes, each with its role in ``TF_CONFIG``
  (loopback ports). Worker 0 is the chief and exports into the Trainer's serving model dir;
  the others export into temporary dirs that are removed (MultiWorkerMirroredStrategy needs
  every worker to take part in saving).
* parameter_server: one coordinator process hosting an in-process cluster of
  ``num_workers`` workers and ``num_parameter_servers`` parameter servers, as TensorFlow's own
  tutorial does; ``Model.fit`` with a DatasetCreator.
* mirrored over ``cpu_devices`` logical CPUs: one fresh process (the CPU can only be split
  before TensorFlow initializes its devices).
* multi_worker_mirrored on an engine (Vertex AI, a TFJob: components/training/engines.py), which starts one
  replica per machine, each running the Trainer's executor with a ``TF_CONFIG`` of its own (cluster keys
  ``chief`` and ``worker``): one worker process for this replica, with that TF_CONFIG (a fresh process, for
  the same reason as above). The chief exports; a worker replica then waits until the chief's model is in the
  Trainer's model dir (shared storage, e.g. gs://), because TFX's executor fails a replica whose model dir
  is missing after ``run_fn``. Logs are named by role (``chief-0.log``, ``worker-0.log``).

The launcher watches the processes: when one exits with an error or is killed, the others are
stopped and the Trainer fails at once, naming the worker and showing the end of its log; a job
that outlives ``worker_timeout_seconds`` is stopped too. The job file and the workers' logs live
in a local temporary folder while they run (a process writes its log to a local file); at the
end, succeeded or not, the logs and ``workers.json`` (their pids) are copied to
``<model_run_dir>/workers/`` through TFX's fileio, so this works when model_run_dir is gs://.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
WORKERS_DIR = "workers"
WORKERS_JSON = "workers.json"
# A worker replica waits this long for the chief's export (the chief saves right after the shared last step).
CHIEF_EXPORT_WAIT_SECONDS = 600
CHIEF_TYPES = ("chief", "master")


class WorkerFailedError(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class Replica:
    """This process's role in a cluster that TF_CONFIG describes (``{"cluster": {...}, "task": {...}}``)."""
    task_type: str
    index: int
    cluster: Dict[str, List[str]]

    @property
    def name(self) -> str:
        return f"{self.task_type}-{self.index}"

    @property
    def is_chief(self) -> bool:
        """TensorFlow's rule (multi_worker_util.is_chief): the chief task; in a cluster without one, worker 0."""
        if self.task_type in CHIEF_TYPES:
            return True
        return self.task_type == "worker" and self.index == 0 and not set(CHIEF_TYPES) & set(self.cluster)


def replica_from_tf_config(text: Optional[str]) -> Optional[Replica]:
    """The role TF_CONFIG gives this process, or None without a cluster (one machine, no roles)."""
    if not text:
        return None
    try:
        config = json.loads(text)
        cluster = config.get("cluster") or {}
        task = config.get("task") or {}
        return Replica(str(task["type"]), int(task.get("index", 0)), cluster) if cluster else None
    except (ValueError, KeyError, AttributeError, TypeError) as e:
        raise WorkerFailedError(f"TF_CONFIG is not a TensorFlow cluster configuration ({type(e).__name__}: {e}): "
                                f"{text[:200]}") from None


def free_ports(count: int) -> List[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tail(path: str, lines: int = 30) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


def train_in_worker_processes(job) -> None:
    """``job``: a trainer.TrainerJob. Blocks until every worker is done; raises WorkerFailedError."""
    options = job.config.options
    local_dir = tempfile.mkdtemp(prefix="tfxp-workers-")
    job_path = os.path.join(local_dir, "job.json")
    with open(job_path, "w") as f:
        json.dump(dataclasses.asdict(job), f)

    # On an engine, TF_CONFIG is already in this replica's environment: one worker process inherits it.
    replica = replica_from_tf_config(os.environ.get("TF_CONFIG")) if options.strategy == "multi_worker_mirrored" \
        else None
    if replica is not None:
        names, pids_file = [replica.name], f"{replica.name}.json"
    else:
        count = options.num_workers if options.strategy == "multi_worker_mirrored" else 1
        names, pids_file = [f"worker-{index}" for index in range(count)], WORKERS_JSON
    envs = [worker_environment(job.config.user_package) for _ in names]
    if options.strategy == "multi_worker_mirrored" and replica is None:
        addresses = [f"127.0.0.1:{port}" for port in free_ports(len(names))]
        for index, env in enumerate(envs):
            env["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses},
                                           "task": {"type": "worker", "index": index}})
    final_dir = os.path.join(job.model_run_dir, WORKERS_DIR)
    log.info("training with %s in %d worker process(es)%s; logs in %s (copied to %s at the end)",
             options.strategy, len(names), f" as replica {replica.name} of the engine's cluster" if replica else "",
             local_dir, final_dir)
    processes, logs = [], []
    try:
        for name, env in zip(names, envs):
            log_path = os.path.join(local_dir, f"{name}.log")
            logs.append(log_path)
            with open(log_path, "w") as log_file:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "components.training.worker", "--job", job_path, "--name", name],
                    env=env, stdout=log_file, stderr=subprocess.STDOUT))
        with open(os.path.join(local_dir, pids_file), "w") as f:
            # The live logs' local paths too: while training runs, they are only there.
            json.dump({"strategy": options.strategy, "pids": [p.pid for p in processes], "live_logs": logs}, f)
        # Published right away: tests (and people) find the pids while training runs.
        publish(local_dir, final_dir, [pids_file])
        _wait(processes, logs, float(options.worker_timeout_seconds), final_dir)
    finally:
        publish(local_dir, final_dir, [os.path.basename(p) for p in logs] + [pids_file])
        shutil.rmtree(local_dir, ignore_errors=True)
    if replica is not None and not replica.is_chief:
        wait_for_chief_export(job.serving_model_dir, replica, final_dir)


def wait_for_chief_export(serving_model_dir: str, replica: Replica, logs_dir: str,
                          timeout: float = CHIEF_EXPORT_WAIT_SECONDS) -> None:
    """Returns when the chief's SavedModel is in the Trainer's model dir: TFX's GenericExecutor fails every
    replica whose ``serving_model_dir`` is missing after ``run_fn``, and only the chief writes it."""
    from tfx.dsl.io import fileio

    marker = os.path.join(serving_model_dir, "saved_model.pb")
    deadline = time.monotonic() + timeout
    log.info("replica %s trained; waiting for the chief's model in %s", replica.name, serving_model_dir)
    while not fileio.exists(marker):
        if time.monotonic() > deadline:
            raise WorkerFailedError(f"replica {replica.name} trained, but the chief's model did not appear in "
                                    f"{serving_model_dir} within {timeout:.0f} s: see the chief's log in {logs_dir}")
        time.sleep(POLL_SECONDS * 4)
    log.info("the chief's model is in %s", serving_model_dir)


def worker_environment(user_package: str) -> dict:
    """This process's environment, with the user package importable as it is here (wherever it lives)."""
    from components.core.user_code import load_user_code

    env = dict(os.environ)
    parent = os.path.dirname(os.path.abspath(load_user_code(user_package).directory))
    env["PYTHONPATH"] = os.pathsep.join([parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def publish(local_dir: str, final_dir: str, names: List[str]) -> None:
    from tfx.dsl.io import fileio

    fileio.makedirs(final_dir)
    for name in names:
        source = os.path.join(local_dir, name)
        if os.path.exists(source):
            fileio.copy(source, os.path.join(final_dir, name), overwrite=True)


def exit_words(code: int) -> str:
    """A process's non-zero exit code in words."""
    return f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"


def first_failure(processes) -> Optional[int]:
    """The index of the first process that exited with an error (None: none has)."""
    return next((index for index, p in enumerate(processes) if p.poll() not in (None, 0)), None)


def stop_processes(processes) -> None:
    for p in processes:
        if p.poll() is None:
            p.kill()
            p.wait()


def _wait(processes, logs, timeout: float, final_dir: str) -> None:
    deadline = time.monotonic() + timeout
    try:
        while True:
            index = first_failure(processes)
            if index is not None:
                raise WorkerFailedError(
                    f"training worker {index} (pid {processes[index].pid}) {exit_words(processes[index].poll())}; "
                    f"stopped the other workers. End of its log ({final_dir}/{os.path.basename(logs[index])}):"
                    f"\n{tail(logs[index])}")
            if all(p.poll() == 0 for p in processes):
                return
            if time.monotonic() > deadline:
                raise WorkerFailedError(f"training workers did not finish within {timeout:.0f}s "
                                        f"(training.worker_timeout_seconds); logs: {final_dir}")
            time.sleep(POLL_SECONDS)
    finally:
        stop_processes(processes)
