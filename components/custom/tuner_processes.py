"""KerasTuner's distributed mode on this machine: trials in parallel (``tuning.workers`` > 1).

KerasTuner runs one chief oracle that serves trials over gRPC (``KERASTUNER_TUNER_ID=chief``) and workers that
ask it for trials and report their results (``KERASTUNER_TUNER_ID=tuner<N>``, ``KERASTUNER_ORACLE_IP``,
``KERASTUNER_ORACLE_PORT``). The Tuner's executor starts them here as fresh processes (this module's
``main``: each runs ``tuner_fn`` and ``tuner.search`` under its role) on loopback, a free port:

* the chief keeps the oracle's state in its project folder (``<working dir>/chief/search``);
* the workers share one folder (``<working dir>/workers/search``, not wiped by a worker: Hyperband continues a
  trial from another worker's checkpoint), and each writes the seconds of the trials it ran (only it knows);
* when every worker has exited (the oracle has handed out ``max_trials`` trials and each was reported), the
  chief is stopped (KerasTuner's chief looks for the end only every 20 s) and the oracle is read back from the
  chief's folder: the executor then writes the best hyperparameters and trials.json as it does in-process.

A worker (or the chief) that dies stops the others and fails the Tuner in one line naming it and the end of its
log. The processes' logs are copied to ``<tuner_results>/workers/``. Several machines: docs/tuning.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Tuple

from absl import logging

from components.training import launcher

CHIEF = "chief"
CHIEF_DIR, WORKERS_DIR = "chief", "workers"
# A search that outlives this is stopped (a worker waits for the chief up to KerasTuner's own 60 min).
TIMEOUT_SECONDS = 24 * 3600
SECONDS_SUFFIX = ".seconds.json"


def worker_names(workers: int) -> List[str]:
    return [f"tuner{index}" for index in range(workers)]


def role_environment(base: Dict[str, str], name: str, port: int, ip: str = "127.0.0.1") -> Dict[str, str]:
    """KerasTuner's distributed-mode variables for the process ``name`` (``chief`` or ``tuner<N>``)."""
    return dict(base, KERASTUNER_TUNER_ID=name, KERASTUNER_ORACLE_IP=ip, KERASTUNER_ORACLE_PORT=str(port))


def _last_line(path: str) -> str:
    lines = [line.strip() for line in launcher.tail(path).splitlines() if line.strip()]
    return lines[-1] if lines else "(empty log)"


def watch(processes: Dict[str, subprocess.Popen], logs: Dict[str, str], logs_dir: str, timeout: float) -> None:
    """Returns when every worker has exited 0; raises one line when a process fails or time runs out."""
    names = list(processes)
    deadline = time.monotonic() + timeout
    while True:
        index = launcher.first_failure([processes[n] for n in names])
        if index is not None:
            name = names[index]
            raise launcher.WorkerFailedError(
                f"tuning {'chief' if name == CHIEF else 'worker ' + name} (pid {processes[name].pid}) "
                f"{launcher.exit_words(processes[name].poll())}; stopped the others. Its log "
                f"({logs_dir}/{os.path.basename(logs[name])}) ends: {_last_line(logs[name])}")
        if all(processes[n].poll() == 0 for n in names if n != CHIEF):
            return
        if processes[CHIEF].poll() == 0:
            raise launcher.WorkerFailedError(f"the tuning chief exited while workers still ran; logs: {logs_dir}")
        if time.monotonic() > deadline:
            raise launcher.WorkerFailedError(f"tuning did not finish within {timeout:.0f}s; logs: {logs_dir}")
        time.sleep(launcher.POLL_SECONDS)


def search_in_processes(input_dict, exec_properties: Dict[str, Any], working_dir: str, workers: int,
                        user_package: str, logs_dir: str, timeout: float = TIMEOUT_SECONDS
                        ) -> Tuple[str, Dict[str, Dict[str, float]], float]:
    """Runs the chief and ``workers`` workers to the end of the search: (the chief's working folder,
    {worker: {trial id: seconds}}, seconds the search took)."""
    from tfx.types import artifact_utils

    local_dir = tempfile.mkdtemp(prefix="tfxp-tuning-")
    job_path = os.path.join(local_dir, "job.json")
    with open(job_path, "w") as f:
        json.dump({"input_dict": artifact_utils.jsonify_artifact_dict(input_dict),
                   "exec_properties": exec_properties}, f)
    port = launcher.free_ports(1)[0]
    base = launcher.worker_environment(user_package)
    directories = {CHIEF: os.path.join(working_dir, CHIEF_DIR)}
    directories.update({name: os.path.join(working_dir, WORKERS_DIR) for name in worker_names(workers)})
    logging.info("tuning: a chief oracle on 127.0.0.1:%d and %d worker process(es); logs in %s (copied to %s)",
                 port, workers, local_dir, logs_dir)
    processes: Dict[str, subprocess.Popen] = {}
    logs = {name: os.path.join(local_dir, f"{name}.log") for name in directories}
    start = time.monotonic()
    try:
        for name, directory in directories.items():
            with open(logs[name], "w") as log_file:
                processes[name] = subprocess.Popen(
                    [sys.executable, "-m", "components.custom.tuner_processes", "--job", job_path,
                     "--working-dir", directory, "--seconds", os.path.join(local_dir, name + SECONDS_SUFFIX)],
                    env=role_environment(base, name, port), stdout=log_file, stderr=subprocess.STDOUT)
        watch(processes, logs, logs_dir, timeout)
        seconds = time.monotonic() - start
        trial_seconds: Dict[str, Dict[str, float]] = {}
        for name in worker_names(workers):
            with open(os.path.join(local_dir, name + SECONDS_SUFFIX)) as f:
                trial_seconds[name] = json.load(f)
    finally:
        launcher.stop_processes(list(processes.values()))  # the chief, once the workers are done
        launcher.publish(local_dir, logs_dir, [os.path.basename(p) for p in logs.values()])
        shutil.rmtree(local_dir, ignore_errors=True)
    return directories[CHIEF], trial_seconds, seconds


def read_oracle(tuner, chief_directory: str):
    """``tuner`` (tuner_fn's, in this process) with the chief's oracle state: its trials, their scores."""
    oracle = tuner.oracle
    oracle._set_project_dir(chief_directory, tuner.project_name)
    oracle.trials = {}
    oracle.reload()
    return tuner


def main(argv=None) -> None:
    """One process of the search, its role from KERASTUNER_TUNER_ID."""
    from tfx.components.trainer import fn_args_utils
    from tfx.components.util import udf_utils
    from tfx.types import artifact_utils

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", required=True)
    parser.add_argument("--working-dir", required=True)
    parser.add_argument("--seconds", required=True, help="where a worker writes its trials' seconds")
    args = parser.parse_args(argv)
    logging.set_verbosity(logging.INFO)
    with open(args.job) as f:
        job = json.load(f)
    input_dict = artifact_utils.parse_artifact_dict(job["input_dict"])
    fn_args = fn_args_utils.get_common_fn_args(input_dict, job["exec_properties"], args.working_dir)
    result = udf_utils.get_fn(job["exec_properties"], "tuner_fn")(fn_args)
    result.tuner.search(**result.fit_kwargs)  # the chief: serves the oracle until the end
    if os.environ["KERASTUNER_TUNER_ID"] != CHIEF:
        with open(args.seconds, "w") as f:
            json.dump(getattr(result.tuner, "trial_seconds", {}), f)


if __name__ == "__main__":
    main()
