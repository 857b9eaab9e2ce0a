"""TFX's Tuner, with an executor that keeps the trials that succeeded and says which failed.

TFX's Tuner executor calls ``tuner_fn`` (components/training/tuning.py), runs ``tuner.search`` and writes the
best trial's hyperparameters (``best_hyperparameters/best_hyperparameters.txt``, a KerasTuner
HyperParameters config, which TFX's Trainer reads into ``fn_args.hyperparameters``) and the completed trials
(``tuner_results/tuner_results.json``). This executor does the same through the same functions, and:

* a search that KerasTuner stops after ``tuning.max_consecutive_failed_trials`` failed trials in a row still
  ends with the best trial that completed; when none completed, the Tuner fails with one line naming model.py
  and the first failed trial's values (TFX's would write a failed trial's values as the best);
* each failed trial is one line in the log (model.py's line, the trial's values, the error);
* ``tuner_results/trials.json`` holds every trial, failed ones included, for the run report (TRIALS_FILE).

``run_search`` is where the search runs in this process; with ``tuning.workers`` > 1,
``run_distributed_search`` runs it in KerasTuner's distributed mode (components/custom/tuner_processes.py).
"""
from __future__ import annotations

import json
import os
import re
import time
from typing import Any, Dict, List, Optional

from absl import logging
from tfx.components.trainer import fn_args_utils
from tfx.components.tuner import component as tfx_tuner
from tfx.components.tuner import executor as tfx_executor
from tfx.components.util import udf_utils
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, json_utils

from components.core.user_code import UserCodeError, load_user_code
from components.custom import tuner_processes

TRIALS_FILE = "trials.json"
TRIALS_FORMAT = 1
# KerasTuner's own keys among a trial's values (Hyperband's schedule): shown apart from the model's.
TUNER_PREFIX = "tuner/"
COMPLETED, FAILED = "COMPLETED", "FAILED"


def _values(trial) -> Dict[str, Any]:
    return {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith(TUNER_PREFIX)}


def _describe(values: Dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def failure_line(trial, model_file: str, objective_name: str) -> str:
    """Why ``trial`` failed, in one line: the last line of its traceback (the tuning module words it:
    model.py's line, the values, the error), or a NaN score."""
    lines = [line.strip() for line in (trial.message or "").splitlines() if line.strip()]
    if lines:
        return re.sub(r"^(?:[\w.]+\.)?TrialFailed: ", "", lines[-1])
    return f"{model_file}: training with {_describe(_values(trial))} gave no {objective_name} (NaN: it diverged)"


def stopped_by_failures(oracle) -> bool:
    """KerasTuner stopped the search because the last trials failed in a row (its RuntimeError)."""
    ended = [oracle.trials[trial_id].status for trial_id in oracle.end_order]
    limit = oracle.max_consecutive_failed_trials
    return len(ended) >= limit and all(status == FAILED for status in ended[-limit:])


def run_search(input_dict, exec_properties, working_dir: str):
    """tuner_fn's tuner, after its search: (tuner, seconds the search took). Failed trials are logged;
    when none completed, one UserCodeError line."""
    fn_args = fn_args_utils.get_common_fn_args(input_dict, exec_properties, working_dir)
    result = udf_utils.get_fn(exec_properties, "tuner_fn")(fn_args)
    tuner = result.tuner
    tuner.search_space_summary()
    start = time.monotonic()
    try:
        tuner.search(**result.fit_kwargs)
    except RuntimeError:  # KerasTuner's "Number of consecutive failures exceeded the limit"
        if not stopped_by_failures(tuner.oracle):
            raise
        logging.warning("tuning stopped after %d failed trials in a row (tuning.max_consecutive_failed_trials)",
                        tuner.oracle.max_consecutive_failed_trials)
    seconds = time.monotonic() - start
    tuner.results_summary()
    check_trials(tuner.oracle, load_user_code(fn_args.custom_config["user_package"]).file("model"))
    return tuner, seconds


def run_distributed_search(input_dict, output_dict, exec_properties, working_dir: str, workers: int,
                           user_package: str):
    """run_search in KerasTuner's distributed mode (tuner_processes.py): a chief and ``workers`` worker processes;
    then tuner_fn's tuner in this process, holding the chief's oracle."""
    logs_dir = os.path.join(artifact_utils.get_single_uri(output_dict[standard_component_specs.TUNER_RESULTS_KEY]),
                            tuner_processes.WORKERS_DIR)
    chief_dir, trial_seconds, seconds = tuner_processes.search_in_processes(
        input_dict, exec_properties, working_dir, workers, user_package, logs_dir)
    fn_args = fn_args_utils.get_common_fn_args(input_dict, exec_properties, os.path.join(working_dir, "reader"))
    tuner = tuner_processes.read_oracle(udf_utils.get_fn(exec_properties, "tuner_fn")(fn_args).tuner, chief_dir)
    tuner.workers = workers
    tuner.trial_seconds = {trial: s for by_trial in trial_seconds.values() for trial, s in by_trial.items()}
    tuner.trial_workers = {trial: name for name, by_trial in trial_seconds.items() for trial in by_trial}
    tuner.results_summary()
    check_trials(tuner.oracle, load_user_code(user_package).file("model"))
    return tuner, seconds


def check_trials(oracle, model_file: str) -> None:
    """Logs each failed trial in one line; raises one line when no trial completed."""
    trials = sorted(oracle.trials.values(), key=lambda t: t.trial_id)
    failed = [t for t in trials if t.status == FAILED]
    for trial in failed:
        logging.warning("tuning: trial %s failed: %s", trial.trial_id,
                        failure_line(trial, model_file, oracle.objective.name))
    if failed and not any(t.status == COMPLETED for t in trials):
        stopped = (f"; the search stops after {oracle.max_consecutive_failed_trials} in a row "
                   f"(tuning.max_consecutive_failed_trials)") if stopped_by_failures(oracle) else ""
        raise UserCodeError(f"tuning: all {len(failed)} trial(s) failed{stopped}; trial {failed[0].trial_id}: "
                            f"{failure_line(failed[0], model_file, oracle.objective.name)}")


def trials_record(tuner, seconds: float, model_file: str) -> Dict[str, Any]:
    """What TRIALS_FILE holds: the objective, the best trial, and every trial in the order they were created."""
    oracle = tuner.oracle
    best = [t for t in oracle.get_best_trials(1) if t.status == COMPLETED]
    trial_seconds = getattr(tuner, "trial_seconds", {})
    trial_workers = getattr(tuner, "trial_workers", {})  # distributed mode: which worker ran each trial
    trials = []
    for trial in sorted(oracle.trials.values(), key=lambda t: t.trial_id):
        schedule = {k[len(TUNER_PREFIX):]: v for k, v in trial.hyperparameters.values.items()
                    if k.startswith(TUNER_PREFIX)}
        trials.append({
            "trial_id": trial.trial_id, "status": trial.status,
            "score": None if trial.score is None or trial.score != trial.score else float(trial.score),
            "hyperparameters": _values(trial),
            "metrics": {name: _number(trial.metrics.get_last_value(name)) for name in trial.metrics.metrics},
            "seconds": trial_seconds.get(trial.trial_id),
            "error": failure_line(trial, model_file, oracle.objective.name) if trial.status == FAILED else None,
            **({"hyperband": schedule} if schedule else {}),
            **({"worker": trial_workers[trial.trial_id]} if trial.trial_id in trial_workers else {}),
        })
    return {"format": TRIALS_FORMAT,
            "objective": {"name": oracle.objective.name, "direction": oracle.objective.direction},
            "algorithm": type(oracle).__name__, "max_trials": oracle.max_trials, "search_seconds": seconds,
            "workers": getattr(tuner, "workers", 1),
            "best_trial_id": best[0].trial_id if best else None, "trials": trials}


def _number(value) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if value != value else value


def write_trials(tuner, output_dict, seconds: float, model_file: str) -> str:
    path = os.path.join(artifact_utils.get_single_uri(output_dict[standard_component_specs.TUNER_RESULTS_KEY]),
                        TRIALS_FILE)
    io_utils.write_string_file(path, json.dumps(trials_record(tuner, seconds, model_file), indent=1))
    return path


def read_trials(tuner_results_uri: str) -> Dict[str, Any]:
    """TRIALS_FILE of a TunerResults artifact (the run report's reader)."""
    return json.loads(io_utils.read_string_file(os.path.join(tuner_results_uri, TRIALS_FILE)))


class Executor(tfx_executor.Executor):

    def Do(self, input_dict: Dict[str, List], output_dict: Dict[str, List], exec_properties: Dict[str, Any]) -> None:
        if tfx_executor.get_tune_args(exec_properties):
            raise ValueError("TuneArgs is not supported by this Tuner's Executor.")
        custom_config = json_utils.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY, "null"))
        workers = int(custom_config.get("tuning", {}).get("workers", 1))
        if workers > 1:
            tuner, seconds = run_distributed_search(input_dict, output_dict, exec_properties, self._get_tmp_dir(),
                                                    workers, custom_config["user_package"])
        else:
            tuner, seconds = run_search(input_dict, exec_properties, self._get_tmp_dir())
        tfx_executor.write_best_hyperparameters(tuner, output_dict)
        write_trials(tuner, output_dict, seconds, load_user_code(custom_config["user_package"]).file("model"))


def make_artifact(cls, uri: str, **properties):
    """A TFX artifact of class ``cls`` at ``uri`` with ``properties`` (to call an executor outside a pipeline)."""
    made = cls()
    made.uri = uri
    for name, value in properties.items():
        setattr(made, name, value)
    return made


def run_executor(examples_uri: str, transform_graph_uri: str, directory: str, custom_config: Dict[str, Any], *,
                 tuner_fn: str, train_steps: int, eval_steps: int) -> Dict[str, str]:
    """This executor outside a pipeline, on a Transform output (its transformed examples and graph), as the
    pipeline configures it: {output key: its folder under ``directory``}. The tests and bench/tuning_bench.py."""
    from tfx.proto import trainer_pb2
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    outputs = {"best_hyperparameters": os.path.join(directory, "best_hyperparameters"),
               "tuner_results": os.path.join(directory, "tuner_results")}
    for uri in outputs.values():
        os.makedirs(uri)
    input_dict = {"examples": [make_artifact(standard_artifacts.Examples, examples_uri,
                                             split_names='["train", "eval"]')],
                  "transform_graph": [make_artifact(standard_artifacts.TransformGraph, transform_graph_uri)]}
    output_dict = {"best_hyperparameters": [make_artifact(standard_artifacts.HyperParameters,
                                                     outputs["best_hyperparameters"])],
                   "tuner_results": [make_artifact(standard_artifacts.TunerResults, outputs["tuner_results"])]}
    exec_properties = {
        "tuner_fn": tuner_fn,
        "train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs(num_steps=train_steps)),
        "eval_args": proto_utils.proto_to_json(trainer_pb2.EvalArgs(num_steps=eval_steps)),
        "custom_config": json_utils.dumps(custom_config)}
    Executor(Executor.Context(tmp_dir=os.path.join(directory, "tmp"), unique_id="1")).Do(
        input_dict, output_dict, exec_properties)
    return outputs


class Tuner(tfx_tuner.Tuner):
    """TFX's Tuner component with the executor above (same spec, inputs and outputs)."""
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
