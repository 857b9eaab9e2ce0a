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
from typing import List

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
WORKERS_DIR = "workers"


class WorkerFailedError(RuntimeError):
    pass


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


def _tail(path: str, lines: int = 30) -> str:
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

    count = options.num_workers if options.strategy == "multi_worker_mirrored" else 1
    envs = [_worker_environment(job.config.user_package) for _ in range(count)]
    if options.strategy == "multi_worker_mirrored":
        addresses = [f"127.0.0.1:{port}" for port in free_ports(count)]
        for index, env in enumerate(envs):
            env["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses},
                                           "task": {"type": "worker", "index": index}})
    final_dir = os.path.join(job.model_run_dir, WORKERS_DIR)
    log.info("training with %s in %d worker process(es); logs in %s (copied to %s at the end)",
             options.strategy, count, local_dir, final_dir)
    processes, logs = [], []
    try:
        for index, env in enumerate(envs):
            log_path = os.path.join(local_dir, f"worker-{index}.log")
            logs.append(log_path)
            with open(log_path, "w") as log_file:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "components.training.worker", "--job", job_path, "--task-index", str(index)],
                    env=env, stdout=log_file, stderr=subprocess.STDOUT))
        with open(os.path.join(local_dir, "workers.json"), "w") as f:
            # The live logs' local paths too: while training runs, they are only there.
            json.dump({"strategy": options.strategy, "pids": [p.pid for p in processes], "live_logs": logs}, f)
        # Published right away: tests (and people) find the pids while training runs.
        _publish(local_dir, final_dir, ["workers.json"])
        _wait(processes, logs, float(options.worker_timeout_seconds), final_dir)
    finally:
        _publish(local_dir, final_dir, [os.path.basename(p) for p in logs] + ["workers.json"])
        shutil.rmtree(local_dir, ignore_errors=True)


def _worker_environment(user_package: str) -> dict:
    """This process's environment, with the user package importable as it is here (wherever it lives)."""
    from components.core.user_code import load_user_code

    env = dict(os.environ)
    parent = os.path.dirname(os.path.abspath(load_user_code(user_package).directory))
    env["PYTHONPATH"] = os.pathsep.join([parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _publish(local_dir: str, final_dir: str, names: List[str]) -> None:
    from tfx.dsl.io import fileio

    fileio.makedirs(final_dir)
    for name in names:
        source = os.path.join(local_dir, name)
        if os.path.exists(source):
            fileio.copy(source, os.path.join(final_dir, name), overwrite=True)


def _wait(processes, logs, timeout: float, final_dir: str) -> None:
    deadline = time.monotonic() + timeout
    try:
        while True:
            codes = [p.poll() for p in processes]
            for index, code in enumerate(codes):
                if code not in (None, 0):
                    raise WorkerFailedError(
                        f"training worker {index} (pid {processes[index].pid}) "
                        f"{'was killed by signal ' + str(-code) if code < 0 else 'exited with code ' + str(code)}; "
                        f"stopped the other workers. End of its log ({final_dir}/{os.path.basename(logs[index])}):"
                        f"\n{_tail(logs[index])}")
            if all(code == 0 for code in codes):
                return
            if time.monotonic() > deadline:
                raise WorkerFailedError(f"training workers did not finish within {timeout:.0f}s "
                                        f"(training.worker_timeout_seconds); logs: {final_dir}")
            time.sleep(POLL_SECONDS)
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
